"""Choose the end-of-turn detector's `min_silence_ms` by measurement.

The agent decides that the user has finished speaking when Silero VAD has heard
`min_silence_ms` of silence after speech (models/speech/turns.py). That wait is paid on every turn:
the answer cannot start before it has passed, so a shorter wait means a sooner answer. But
people pause inside a turn too, between clauses, on a comma, on a hesitation ("అంటే...",
"ఆ..."), and a wait shorter than those pauses cuts the turn in half: the agent answers the
first half and then talks over the second.

This benchmark synthesizes Telugu user turns with such internal pauses (espeak-ng, several
voices and speeds, clauses joined by commas and hesitations, some code-mixed Telugu-English,
plus inserted silences of seeded random length between clauses), each followed by a long
silence. It runs Silero VAD once per turn, caches the per-window probabilities, and replays
them through TurnDetector for each candidate `min_silence_ms`, reporting:

- false-split rate: the fraction of turns in which the detector declared end of turn before
  the turn's last speech;
- end-of-turn delay: the time the detector decided end of turn (the end of the VAD window
  that completed the silence) minus the true end of speech (the turn's last sample above
  -40 dBFS), median and p95, in ms. It excludes network, jitter-buffer and compute time.

It recommends the smallest candidate whose false-split rate is at most --max-false-split.
The result depends on the pause lengths synthesized (--pause-ms): it holds for speech whose
pauses are like these, so it is printed together with the pauses the turns really contain.

Usage: python benchmarks/turn_silence.py [--seed 7] [--turns 60] [--max-false-split 0.05]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from dataclasses import dataclass

import numpy as np
import torch

from models.data.espeak import synthesize
from models.speech.audio import MODEL_RATE
from models.speech.turns import TurnConfig, TurnDetector, TurnEventKind
from models.speech.vad import WINDOW, WINDOW_MS, SileroVAD

DEFAULT_CANDIDATES = (160, 224, 320, 416, 480, 576, 704, 800)
SPEECH_DBFS = -40.0
"""A sample at or above this level is speech, for the true end of a turn and its pauses."""
LEAD_S = 0.5
"""Silence before each turn."""
TAIL_S = 1.5
"""Silence after each turn: longer than any candidate, so every turn can end."""
GAP_HOP_MS = 10
"""Resolution of the internal-pause measurement."""

VOICES = ("te", "te+m1", "te+m3", "te+f2", "te+f4")
SPEEDS = (130, 175)
"""espeak-ng words per minute, drawn per speaker within this range."""

SENTENCES = (
    "నమస్కారం, మీరు ఎలా ఉన్నారు",
    "ఈ రోజు వాతావరణం చాలా బాగుంది",
    "నిన్న క్రికెట్ మ్యాచ్ చూశారా",
    "నాకు పులిహోర అంటే చాలా ఇష్టం",
    "రేపు ఉదయం హైదరాబాద్ కి వెళ్ళాలి",
    "మా అమ్మగారు ఇంట్లో లేరు",
    "ఆ పుస్తకం నేను ఇంకా చదవలేదు",
    "బస్సు ఎన్ని గంటలకు వస్తుంది",
    "మా ఊరిలో వర్షం బాగా పడింది",
    "పిల్లలు బడికి వెళ్ళారు",
    "దగ్గరలో మంచి హోటల్ ఏదైనా ఉందా",
    "ఈ సంవత్సరం పంట బాగా వచ్చింది",
    "నాకు తెలుగు పాటలు వినడం ఇష్టం",
    "సాయంత్రం ఆరు గంటలకు కలుద్దాం",
)
CODE_MIXED = (
    "నా phone battery చాలా fast గా అయిపోతుంది",
    "ఈ weekend మనం movie కి వెళ్దామా",
    "office meeting ఎప్పుడు start అవుతుంది",
    "నాకు ఒక cab book చేయండి",
    "bank account balance ఒకసారి check చేయాలి",
    "ఆ online order ఇంకా deliver కాలేదు",
    "train ticket confirm అయిందా",
)
HESITATIONS = ("అంటే...", "ఏమిటంటే,", "ఆ...", "మరి,", "ఇంకా,", "అదీ...", "ఉమ్...")
CONNECTIVES = (",", ", అంటే,", "... ఆ,", ", ఇంకా", ", కానీ")

ClauseCache = dict[tuple[str, str, int], np.ndarray]
"""Trimmed clause audio by (text, voice, speed), so a repeated clause is synthesized once."""


@dataclass(frozen=True)
class Turn:
    """One synthesized user turn inside its own stream of lead silence + speech + tail."""

    text: str
    voice: str
    speed: int
    audio: np.ndarray
    """The whole stream at 16 kHz, a whole number of VAD windows."""
    speech_start: int
    """Stream sample of the turn's first sample at or above SPEECH_DBFS."""
    speech_end: int
    """Stream sample just after the turn's last sample at or above SPEECH_DBFS."""
    pauses_ms: tuple[float, ...]
    """Silences inside the turn (below SPEECH_DBFS, 100 ms or longer), measured."""


def speech_extent(pcm: np.ndarray) -> tuple[int, int]:
    """First sample and one past the last sample at or above SPEECH_DBFS (0, 0 if none)."""
    loud = np.flatnonzero(np.abs(pcm) >= 10 ** (SPEECH_DBFS / 20))
    if loud.size == 0:
        return 0, 0
    return int(loud[0]), int(loud[-1]) + 1


def internal_pauses(speech: np.ndarray) -> tuple[float, ...]:
    """Lengths in ms of the runs of GAP_HOP_MS hops below SPEECH_DBFS, 100 ms or longer."""
    hop = MODEL_RATE * GAP_HOP_MS // 1000
    frames = len(speech) // hop
    peak = np.abs(speech[: frames * hop]).reshape(frames, hop).max(axis=1)
    quiet = peak < 10 ** (SPEECH_DBFS / 20)
    pauses, run = [], 0
    for q in quiet:
        if q:
            run += 1
            continue
        if run * GAP_HOP_MS >= 100:
            pauses.append(float(run * GAP_HOP_MS))
        run = 0
    return tuple(pauses)


def clause_text(rng: random.Random) -> str:
    """A clause as people say it: maybe a hesitation, a sentence, maybe a connective."""
    pool = CODE_MIXED if rng.random() < 0.3 else SENTENCES
    text = rng.choice(pool)
    if rng.random() < 0.45:
        text = f"{rng.choice(HESITATIONS)} {text}"
    if rng.random() < 0.35:
        text = f"{text}{rng.choice(CONNECTIVES)}"
    return text


def make_turn(
    rng: random.Random, pause_ms: tuple[int, int], noise_dbfs: float, cache: ClauseCache
) -> Turn:
    """Synthesize one turn of 2-4 clauses with seeded inserted pauses between them."""
    voice = rng.choice(VOICES)
    speed = rng.randint(*SPEEDS)
    clauses = [clause_text(rng) for _ in range(rng.randint(2, 4))]
    pieces: list[np.ndarray] = []
    for i, text in enumerate(clauses):
        # A speaker's rate drifts a little from clause to clause.
        clause_speed = max(80, speed + rng.randint(-10, 10))
        key = (text, voice, clause_speed)
        if key not in cache:
            pcm = synthesize(text, MODEL_RATE, voice=voice, speed=clause_speed)
            start, end = speech_extent(pcm)
            cache[key] = pcm[start:end]
        if i:
            gap = rng.uniform(*pause_ms) / 1000
            pieces.append(np.zeros(int(gap * MODEL_RATE), dtype=np.float32))
        pieces.append(cache[key])
    speech = np.concatenate(pieces)
    lead = int(LEAD_S * MODEL_RATE)
    total = lead + len(speech) + int(TAIL_S * MODEL_RATE)
    total += -total % WINDOW
    audio = np.zeros(total, dtype=np.float32)
    audio[lead : lead + len(speech)] = speech
    start, end = speech_extent(audio)
    if noise_dbfs > -120:
        # A quiet microphone noise floor; the true speech extent is taken before it.
        noise = np.random.default_rng(rng.getrandbits(32)).standard_normal(total)
        audio += (10 ** (noise_dbfs / 20) * noise).astype(np.float32)
    return Turn(
        text=" | ".join(clauses),
        voice=voice,
        speed=speed,
        audio=audio,
        speech_start=start,
        speech_end=end,
        pauses_ms=internal_pauses(speech),
    )


def vad_probs(vad: SileroVAD, audio: np.ndarray) -> np.ndarray:
    """Silero probability of every window of one stream, from a fresh state."""
    vad.reset()
    windows = audio.reshape(-1, WINDOW)
    return np.array([vad.prob(np.ascontiguousarray(w)) for w in windows], dtype=np.float32)


@dataclass(frozen=True)
class Outcome:
    """What one detector setting did with one turn."""

    split: bool
    """End of turn was declared before the turn's last speech."""
    delay_ms: float | None
    """First end of turn at or after the true end of speech, minus it; None if none."""


def replay(probs: np.ndarray, turn: Turn, min_silence_ms: int) -> Outcome:
    """Run TurnDetector over cached probabilities; compare its decisions with the truth."""
    detector = TurnDetector(TurnConfig(min_silence_ms=min_silence_ms))
    split, delay = False, None
    for i, prob in enumerate(probs):
        decided = (i + 1) * WINDOW  # the window is complete when its last sample arrives
        event = detector.update(float(prob), decided / MODEL_RATE)
        if event is None or event.kind is not TurnEventKind.END_OF_TURN:
            continue
        if decided < turn.speech_end:
            split = True
        else:
            delay = (decided - turn.speech_end) * 1000 / MODEL_RATE
            break
    return Outcome(split, delay)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthesized turns")
    parser.add_argument("--turns", type=int, default=60, help="how many turns to synthesize")
    parser.add_argument(
        "--max-false-split",
        type=float,
        default=0.05,
        help="highest acceptable false-split rate for the recommendation",
    )
    parser.add_argument(
        "--candidates",
        type=lambda s: sorted({int(v) for v in s.split(",") if v.strip()}),
        default=list(DEFAULT_CANDIDATES),
        help="comma-separated min_silence_ms values to try",
    )
    parser.add_argument(
        "--pause-ms",
        type=lambda s: tuple(int(v) for v in s.split(",")),
        default=(150, 600),
        help="range (lo,hi) of the silences inserted between clauses",
    )
    parser.add_argument(
        "--noise-dbfs",
        type=float,
        default=-60.0,
        help="level of the white noise floor added to every stream (<= -120: none)",
    )
    args = parser.parse_args(argv)
    if len(args.pause_ms) != 2 or not 0 <= args.pause_ms[0] <= args.pause_ms[1]:
        parser.error("--pause-ms takes two increasing numbers, like 150,600")
    if not args.candidates or min(args.candidates) <= 0:
        parser.error("--candidates takes positive integers, like 320,480")
    return args


def pct(values: list[float], q: float) -> float | None:
    """Percentile rounded to 0.1, or None for no values."""
    return round(float(np.percentile(values, q)), 1) if values else None


def main(argv: list[str] | None = None) -> None:
    """Synthesize, run the VAD, replay every candidate, print the table and the JSON line."""
    args = parse_args(argv)
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed (make test installs it)")
    torch.set_num_threads(1)
    began = time.perf_counter()

    rng = random.Random(args.seed)
    cache: ClauseCache = {}
    turns = [make_turn(rng, args.pause_ms, args.noise_dbfs, cache) for _ in range(args.turns)]
    synthesized = time.perf_counter()

    vad = SileroVAD()
    probs = [vad_probs(vad, turn.audio) for turn in turns]
    vad_done = time.perf_counter()

    pauses = [p for turn in turns for p in turn.pauses_ms]
    longest = [max(turn.pauses_ms, default=0.0) for turn in turns]
    speech_s = sum(t.speech_end - t.speech_start for t in turns) / MODEL_RATE
    print(
        f"{len(turns)} turns, seed {args.seed}, {speech_s:.1f} s from first to last speech, "
        f"voices {sorted({t.voice for t in turns})}, "
        f"speeds {min(t.speed for t in turns)}-{max(t.speed for t in turns)} wpm, "
        f"inserted pauses {args.pause_ms[0]}-{args.pause_ms[1]} ms"
    )
    print(
        f"pauses inside turns (below {SPEECH_DBFS:.0f} dBFS, >= 100 ms): {len(pauses)}, "
        f"p50 {pct(pauses, 50)} ms, p95 {pct(pauses, 95)} ms, max {pct(pauses, 100)} ms; "
        f"longest per turn p50 {pct(longest, 50)} ms"
    )
    print(
        f"synthesis {synthesized - began:.1f} s, VAD {vad_done - synthesized:.1f} s "
        f"({sum(len(p) for p in probs)} windows of {WINDOW_MS} ms)"
    )
    print()

    header = (
        f"{'min_silence_ms':>14}  {'windows':>7}  {'false splits':>12}  {'rate':>6}  "
        f"{'eot p50 ms':>10}  {'eot p95 ms':>10}  {'eot max ms':>10}  {'no eot':>6}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for candidate in args.candidates:
        outcomes = [replay(p, t, candidate) for p, t in zip(probs, turns, strict=True)]
        splits = sum(o.split for o in outcomes)
        delays = [o.delay_ms for o in outcomes if o.delay_ms is not None]
        missing = len(outcomes) - len(delays)
        rate = splits / len(outcomes)
        row = {
            "min_silence_ms": candidate,
            "false_split_rate": round(rate, 4),
            "eot_delay_ms_p50": pct(delays, 50),
            "eot_delay_ms_p95": pct(delays, 95),
        }
        results.append(row)
        print(
            f"{candidate:>14}  {-(-candidate // WINDOW_MS):>7}  "
            f"{f'{splits}/{len(outcomes)}':>12}  {rate:>6.3f}  "
            f"{row['eot_delay_ms_p50']!s:>10}  {row['eot_delay_ms_p95']!s:>10}  "
            f"{pct(delays, 100)!s:>10}  {missing:>6}"
        )

    fitting = [r for r in results if r["false_split_rate"] <= args.max_false_split]
    recommended = fitting[0]["min_silence_ms"] if fitting else None
    print()
    if recommended is None:
        print(f"no candidate keeps false splits at or below {args.max_false_split:.3f}")
    else:
        print(
            f"recommended min_silence_ms: {recommended} "
            f"(smallest with false-split rate <= {args.max_false_split:.3f}; "
            f"current default {TurnConfig().min_silence_ms})"
        )
    print(f"wall time {time.perf_counter() - began:.1f} s")
    summary = {
        "candidates": results,
        "recommended_min_silence_ms": recommended,
        "turns": len(turns),
        "seed": args.seed,
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

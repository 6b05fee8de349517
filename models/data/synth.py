"""The synthetic Telugu conversational corpus, spoken by espeak-ng (docs/data.md): the text
bank's intents (models/data/bank.py) and the slot intents, whose answers say the user's value
back (models/data/slots.py).

Four personas (models.controls.SPEAKERS, models/data/voices.py) are espeak-ng voice variants
with their own pitch and rate; emotions are prosody (pitch, pitch range, rate, loudness) plus
laughter for LAUGH and hesitations for THINKING. User turns carry pauses of 200-600 ms (silence
or a breath) between clauses. Everything is 16 kHz mono, loudness-normalised, and a pure
function of the seed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.controls import EMOTIONS
from models.data.bank import HESITATIONS, INTENTS, OPENERS, Intent
from models.data.espeak import synthesize
from models.data.manifest import Dialogue, Entry, write_manifest
from models.data.slots import SLOT_INTENTS, VALUES, SlotIntent, values_for
from models.data.voices import PERSONAS, Persona, bank_splits, voice_bank
from models.data.wording import digest, ranked_splits, wording_splits
from models.speech.audio import MODEL_RATE, write_audio

RATE = MODEL_RATE
TARGET_DB = -23.0
"""Speech level (dBFS RMS over active frames) of a NEUTRAL file; emotions add their gain."""
BREATH_DB = -30.0
"""Level of a breath between clauses, relative to the speech around it."""
USER_PAUSE_S = (0.2, 0.6)
"""Range of a pause between clauses of a user turn (people pause 150-600 ms)."""

SLOT_VALUES = 20
"""Values per slot type in the default corpus (models/data/slots.py: 14 train, 3 each held out)."""

BANK_ANSWERS = 12
"""Answers each voice of the voice bank speaks in the default corpus."""

SMALL_CORPUS: dict[str, Any] = {
    "intents": 3,
    "paraphrases_per_intent": 3,
    "emotions": ("NEUTRAL", "LAUGH", "THINKING"),
    "slot_intents": 2,
    "slot_values": 4,
    "bank_voices": 3,
    "bank_answers": 2,
}
"""Keyword arguments of synthesize_corpus for a corpus made in seconds (tests, --small)."""


@dataclass(frozen=True)
class Prosody:
    pitch: int = 0
    """Added to the persona's -p."""
    range: int = 100
    """SSML <prosody range>, percent: how much the pitch moves."""
    rate: float = 1.0
    """Times the persona's speed."""
    gain_db: float = 0.0
    """Loudness relative to TARGET_DB."""


PROSODY: dict[str, Prosody] = {
    "NEUTRAL": Prosody(),
    "HAPPY": Prosody(pitch=8, range=140, rate=1.05, gain_db=1.0),
    "LAUGH": Prosody(pitch=10, range=150, rate=1.05, gain_db=1.0),
    "EXCITED": Prosody(pitch=15, range=170, rate=1.15, gain_db=3.0),
    "EMPATHY": Prosody(pitch=-8, range=70, rate=0.88, gain_db=-3.0),
    "SURPRISE": Prosody(pitch=18, range=200, gain_db=2.0),
    "THINKING": Prosody(pitch=-4, range=80, rate=0.85, gain_db=-2.0),
    # espeak-ng has no Telugu accents: only the rhythm and the pitch movement change.
    "TELUGU_ACCENT_HEAVY": Prosody(range=160, rate=0.85),
    "TELUGU_ACCENT_MILD": Prosody(range=85, rate=1.08),
}


def espeak(
    text: str, voice: str, speed: int, pitch: int, amplitude: int = 100, range_pct: int = 100
) -> np.ndarray:
    """Speak `text` in a persona's voice at RATE, leading and trailing silence trimmed."""
    pcm = synthesize(
        text,
        RATE,
        voice=voice,
        speed=int(np.clip(speed, 80, 450)),
        pitch=int(np.clip(pitch, 0, 99)),
        amplitude=amplitude,
        range_pct=range_pct,
    )
    return _trim(pcm)


def _trim(pcm: np.ndarray, margin_s: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(pcm) > 0.02 * np.abs(pcm).max())
    if len(loud) == 0:
        return pcm
    margin = int(margin_s * RATE)
    return pcm[max(0, loud[0] - margin) : loud[-1] + margin]


def speech_level_db(pcm: np.ndarray) -> float:
    """RMS in dBFS over the 20 ms frames within 40 dB of the loudest (silence left out)."""
    hop = RATE // 50
    frames = pcm[: len(pcm) // hop * hop].reshape(-1, hop)
    power = (frames.astype(np.float64) ** 2).mean(axis=1)
    active = power[power >= power.max() * 1e-4]
    return float(10 * np.log10(active.mean() + 1e-20))


def normalise(pcm: np.ndarray, target_db: float) -> np.ndarray:
    """Scale to `target_db` speech level, then down if a peak would pass -1 dBFS."""
    out = pcm * 10 ** ((target_db - speech_level_db(pcm)) / 20)
    peak = np.abs(out).max()
    return (out * min(1.0, 0.89 / peak) if peak > 0 else out).astype(np.float32)


def clauses(text: str) -> list[str]:
    """Split after commas, full stops, "?", "!" and "..." (the mark stays with its clause)."""
    return [c for c in re.split(r"(?<=[,.?!])\s+", text.strip()) if c]


def _noise(n: int, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Gaussian noise band-limited to [low, high] Hz, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.sqrt((noise**2).mean()) + 1e-12)


def pause(seconds: float, rng: np.random.Generator, breath_rms: float = 0.0) -> np.ndarray:
    """A pause; with `breath_rms` > 0, a soft breath (shaped noise) fills its middle."""
    n = int(seconds * RATE)
    out = np.zeros(n, dtype=np.float32)
    length = int(n * rng.uniform(0.4, 0.7))
    if breath_rms > 0 and length > 0:
        start = (n - length) // 2
        breath = _noise(length, rng, 400, 3000) * np.hanning(length) * breath_rms * 1.6
        out[start : start + length] = breath
    return out


def laughter(persona: Persona, rng: np.random.Generator) -> np.ndarray:
    """A laugh: quick high-pitched "హ" syllables with breathy noise on their envelope."""
    syllables = " ".join(["హ"] * int(rng.integers(3, 6)))
    speed, pitch = int(persona.speed * 1.4), persona.pitch + 25
    voiced = espeak(syllables, persona.voice, speed, pitch, range_pct=200)
    window = np.hanning(RATE // 50)
    envelope = np.convolve(np.abs(voiced), window / window.sum(), mode="same")
    breath = _noise(len(voiced), rng, 800, 5000) * envelope * 0.8
    return (voiced + breath).astype(np.float32)


def render_user(text: str, persona: Persona, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A user turn (transcript, audio): at least two clauses (a filler is put first when the
    text has one, sometimes anyway) with a USER_PAUSE_S pause or breath between each."""
    parts = clauses(text)
    if len(parts) < 2 or rng.random() < 0.25:
        fillers = [h for h in HESITATIONS if h != parts[0]]
        parts.insert(0, fillers[int(rng.integers(len(fillers)))])
    pitch = persona.pitch + int(rng.integers(-6, 7))
    speed = round(persona.speed * rng.uniform(0.92, 1.08))
    speech = [
        espeak(p, persona.voice, speed, pitch, 75 if p in HESITATIONS else 100) for p in parts
    ]
    breath_rms = 10 ** ((speech_level_db(np.concatenate(speech)) + BREATH_DB) / 20)
    pieces = [pause(rng.uniform(0.05, 0.3), rng), speech[0]]
    for clip in speech[1:]:
        seconds = rng.uniform(*USER_PAUSE_S)
        pieces += [pause(seconds, rng, breath_rms if rng.random() < 0.5 else 0.0), clip]
    pieces.append(pause(rng.uniform(0.1, 0.3), rng))
    return " ".join(parts), normalise(np.concatenate(pieces), TARGET_DB)


def _answer_pause(clause: str, emotion: str, rng: np.random.Generator) -> float:
    if clause.endswith("...") and emotion == "THINKING":
        return rng.uniform(0.4, 0.9)
    if clause.endswith((".", "?", "!")):
        return rng.uniform(0.25, 0.45)
    return rng.uniform(0.1, 0.25)


def render_answer(
    answer: str, persona: Persona, emotion: str, rng: np.random.Generator
) -> tuple[str, np.ndarray]:
    """The agent's answer (transcript, audio) in a persona and emotion: the emotion's opener,
    its prosody, a laugh for LAUGH's opener, a hesitation mid-answer for THINKING."""
    prosody = PROSODY[emotion]
    opener = OPENERS[emotion].strip()
    parts = ([opener] if opener else []) + clauses(answer)
    if emotion == "THINKING":  # a hesitation between two clauses of the answer, or after హ్మ్
        parts.insert(int(rng.integers(2, len(parts))) if len(parts) > 2 else 1, "ఊ...")
    pitch = persona.pitch + prosody.pitch
    speed = round(persona.speed * prosody.rate)
    pieces = [pause(rng.uniform(0.05, 0.2), rng)]
    for i, part in enumerate(parts):
        if emotion == "LAUGH" and i == 0:
            clip = laughter(persona, rng)
        elif part in HESITATIONS or (emotion == "THINKING" and i == 0):
            clip = espeak(part, persona.voice, int(speed * 0.8), pitch, 70, prosody.range)
        else:
            clip = espeak(part, persona.voice, speed, pitch, 100, prosody.range)
        pieces += [clip, pause(_answer_pause(part, emotion, rng), rng)]
    pcm = normalise(np.concatenate(pieces), TARGET_DB + prosody.gain_db)
    return " ".join(parts), pcm


def hold_out(items: Sequence[str]) -> dict[str, str]:
    """Split of each answer (voice and emotion of an intent): with three or more, about 10 %
    (at least one) each to test and validation, the rest to train; chosen by hash, so the
    same whatever the seed. User wordings are held out by models/data/wording.py."""
    ranked = sorted(items, key=digest)
    held = max(1, round(len(items) * 0.1)) if len(items) >= 3 else 0
    return ranked_splits(ranked, held, held)


@dataclass(frozen=True)
class _Job:
    key: str
    role: str
    text: str
    """The user's wording, or the answer without its emotion's opener."""
    speaker: str
    emotion: str
    split: str
    extra: dict[str, Any]
    """The entry's extra: intent, paraphrase (user turns), slot and value (slot intents)."""
    pair: str | None = None


def _render(job: _Job, out_dir: Path, seed: int) -> Entry:
    rng = np.random.default_rng([seed, digest(job.key)])
    persona = PERSONAS.get(job.speaker) or voice_bank()[job.speaker]
    if job.role == "agent":
        text, pcm = render_answer(job.text, persona, job.emotion, rng)
    else:
        text, pcm = render_user(job.text, persona, rng)
    audio = f"{job.role}/{job.key}.wav"
    write_audio(out_dir / audio, pcm, RATE)
    return Entry(
        audio=audio,
        duration=round(len(pcm) / RATE, 3),
        text=text,
        speaker=job.speaker,
        emotion=job.emotion,
        split=job.split,
        dialogue=Dialogue(id=job.key, role=job.role, pair=job.pair),
        key=job.key,
        extra={**job.extra, "source": "synthetic"},
    )


def _answer_voices(intent: int, emotion: int, count: int) -> list[str]:
    """`count` personas for an answer, rotating with intent and emotion so that each persona
    speaks every emotion; with two, always a male and a female voice."""
    names = list(PERSONAS)
    step = len(names) // count if count <= len(names) // 2 else 1
    return [names[(intent + emotion + k * step) % len(names)] for k in range(count)]


def _pick(key: str, candidates: list[str], seed: int) -> str:
    """The answer a user turn is paired with: drawn from `candidates` by the seed and key."""
    rng = np.random.default_rng([seed, digest(key), 1])
    return sorted(candidates)[int(rng.integers(len(candidates)))]


def _jobs(
    intents: Sequence[Intent],
    paraphrases: int | None,
    emotions: Sequence[str],
    answer_voices: int,
    seed: int,
) -> list[_Job]:
    jobs = []
    for i, intent in enumerate(intents):
        combos = {
            f"{intent.name}-{s}-{e.lower()}": (s, e)
            for j, e in enumerate(emotions)
            for s in _answer_voices(i, j, answer_voices)
        }
        answers: dict[str, list[str]] = {}
        combo_splits = hold_out(list(combos))
        extra = {"intent": intent.name}
        for combo, (speaker, emotion) in combos.items():
            key, split = f"a-{combo}", combo_splits[combo]
            answers.setdefault(split, []).append(key)
            jobs.append(_Job(key, "agent", intent.answer, speaker, emotion, split, extra))
        texts = intent.paraphrases[:paraphrases]
        splits = wording_splits(intent.name, texts)
        for index, text in enumerate(texts):
            split = splits[text]
            for speaker in PERSONAS:
                key = f"u-{intent.name}-{index:02d}-{speaker}"
                pair = _pick(key, answers[split], seed)
                turn = {**extra, "paraphrase": index}
                jobs.append(_Job(key, "user", text, speaker, "NEUTRAL", split, turn, pair))
    return jobs


def _slot_jobs(
    intents: Sequence[SlotIntent],
    templates: int | None,
    values: int,
    emotions: Sequence[str],
    answer_voices: int,
    seed: int,
) -> list[_Job]:
    """Every value of a slot intent answered `answer_voices` times (voices and emotions
    rotating) in the value's split; train values said in each train template by one voice
    (rotating), held-out values in each held-out template of their split by every voice."""
    names, jobs = list(PERSONAS), []
    for i, intent in enumerate(intents):
        texts = intent.templates[:templates]
        splits = wording_splits(intent.name, texts)
        for split, said in values_for(intent.slot, values).items():
            for value in said:
                v = VALUES[intent.slot].index(value)
                extra = {"intent": intent.name, "slot": intent.slot, "value": value}
                answers = []
                for k, speaker in enumerate(_answer_voices(i, v, answer_voices)):
                    emotion = emotions[(v + k) % len(emotions)]
                    key = f"a-{intent.name}-v{v:02d}-{speaker}-{emotion.lower()}"
                    answers.append(key)
                    answer = intent.answer_with(value)
                    jobs.append(_Job(key, "agent", answer, speaker, emotion, split, extra))
                for t, text in enumerate(texts):
                    if splits[text] != split:
                        continue
                    voices = names if split != "train" else [names[(v + t) % len(names)]]
                    for speaker in voices:
                        key = f"u-{intent.name}-{t:02d}-v{v:02d}-{speaker}"
                        turn = {**extra, "paraphrase": t}
                        said_text = intent.say(t, value)
                        pair = _pick(key, answers, seed)
                        jobs.append(
                            _Job(key, "user", said_text, speaker, "NEUTRAL", split, turn, pair)
                        )
    return jobs


def _bank_jobs(
    intents: Sequence[Intent], emotions: Sequence[str], voices: int | None, answers: int
) -> list[_Job]:
    """`answers` answers (bank intents and emotions rotating, a different intent each) by each
    of the first `voices` voices of the voice bank (by hash; all by default), each in its
    voice's split: held-out voices are heard only in validation and test."""
    bank = voice_bank()
    splits = bank_splits(list(bank))
    chosen = sorted(bank, key=lambda name: digest(f"{name}-pick"))[:voices]
    jobs = []
    for v, voice in enumerate(chosen):
        for k in range(min(answers, len(intents))):
            intent = intents[(5 * v + k) % len(intents)]
            emotion = emotions[(v + k) % len(emotions)]
            key = f"a-{intent.name}-{voice}-{emotion.lower()}"
            extra = {"intent": intent.name, "voice_bank": True}
            jobs.append(_Job(key, "agent", intent.answer, voice, emotion, splits[voice], extra))
    return jobs


def synthesize_corpus(
    out_dir: str | Path,
    seed: int = 0,
    paraphrases_per_intent: int | None = None,
    intents: int | None = None,
    emotions: Sequence[str] = EMOTIONS,
    answer_voices: int = 2,
    workers: int | None = None,
    slot_intents: int | None = None,
    slot_values: int = SLOT_VALUES,
    bank_voices: int | None = None,
    bank_answers: int = BANK_ANSWERS,
) -> Path:
    """Speak the bank into `out_dir` (user/, agent/, manifest.jsonl); returns the manifest.

    Every paraphrase (the first `paraphrases_per_intent` of the first `intents` intents; all
    by default) in all four voices, paired with one answer of its intent from the same split;
    every answer in each of `emotions`, each spoken by `answer_voices` personas (1-4, rotating).
    Then the first `slot_intents` slot intents (all by default), with about `slot_values`
    values each (0: none), split by value (models/data/slots.py; see _slot_jobs). Then
    `bank_answers` answers by each of `bank_voices` voices of the voice bank (all by default;
    models/data/voices.py), for zero-shot voice training: their speaker is the bank voice,
    their split the voice's (see _bank_jobs).
    Answers are split by hash (hold_out), user wordings so that held-out ones share content
    words with training (models/data/wording.py); the same seed gives byte-identical files,
    whatever `workers`.
    """
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    if not emotions or set(emotions) - set(EMOTIONS):
        raise ValueError(f"emotions must be some of {EMOTIONS}, not {emotions}")
    if not 1 <= answer_voices <= len(PERSONAS):
        raise ValueError(f"answer_voices must be 1-{len(PERSONAS)}, not {answer_voices}")
    out = Path(out_dir)
    for folder in ("user", "agent"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    jobs = _jobs(INTENTS[:intents], paraphrases_per_intent, emotions, answer_voices, seed)
    if slot_values > 0:
        slots = SLOT_INTENTS[:slot_intents]
        jobs += _slot_jobs(
            slots, paraphrases_per_intent, slot_values, emotions, answer_voices, seed
        )
    if bank_answers > 0:
        jobs += _bank_jobs(INTENTS[:intents], emotions, bank_voices, bank_answers)
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        entries = list(pool.map(lambda job: _render(job, out, seed), jobs))
    manifest = out / "manifest.jsonl"
    write_manifest(manifest, entries)
    return manifest

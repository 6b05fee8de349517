"""`telugu-s2s models card`: the model card of a shipped checkpoint, written from what the
recipes recorded (training logs, evaluation JSON files, the corpus manifest), never by hand.

The card states the data (files, hours, speakers, intents per split), the training runs (steps,
wall time, final losses), the machine it was written on, the sizes, and the codec, S2S and
end-of-turn figures of `eval-codec.json`, `eval-s2s.json` and `eval-eot.json` in the checkpoint
directory.
"""

from __future__ import annotations

import json
import os
import platform
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from models.checkpoints import load_config
from models.data.manifest import read_manifest
from models.info import describe
from models.train.common import LOG_FILE, read_log

CARD_FILE = "MODEL_CARD.md"
EVAL_FILES = ("eval-codec.json", "eval-s2s.json", "eval-eot.json")


def cpu_name() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: CPU, cores, GPU if any, torch version."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu_name()}, {cores} cores{gpu}; torch {torch.__version__}"


def data_summary(manifest: Path) -> dict[str, Any]:
    """Files, hours, speakers and intents per split of a manifest."""
    splits: dict[str, dict[str, Any]] = {}
    for entry in read_manifest(manifest):
        split = splits.setdefault(
            entry.split,
            {"files": 0, "hours": 0.0, "speakers": Counter(), "intents": set()},
        )
        split["files"] += 1
        split["hours"] += entry.duration / 3600
        split["speakers"][entry.speaker] += 1
        if "intent" in entry.extra:
            split["intents"].add(entry.extra["intent"])
    return {
        name: {
            "files": s["files"],
            "hours": round(s["hours"], 2),
            "speakers": sorted(s["speakers"]),
            "intents": len(s["intents"]),
        }
        for name, s in sorted(splits.items())
    }


def run_summary(run: Path) -> dict[str, Any]:
    """Steps, wall time and the last logged train (and validation) figures of a run."""
    rows = read_log(run / LOG_FILE)
    if not rows:
        raise ValueError(f"{run / LOG_FILE} has no rows")
    last = rows[-1]
    validated = [r for r in rows if "val_accuracy" in r]
    summary = {
        "steps": int(last["step"]),
        "wall_minutes": round(last["seconds"] / 60, 1),
        "last": {k: v for k, v in last.items() if k not in ("step", "seconds")},
    }
    if validated:
        summary["validation"] = {k: v for k, v in validated[-1].items() if k.startswith("val_")}
    return summary


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _codec_table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"On {result['files']} {result['split']}-split files "
        f"({result['seconds'] / 60:.1f} min of speech):",
        "",
        "| levels | kbps | PESQ-WB | STOI | SI-SDR (dB) | mel distance |",
        "|---|---|---|---|---|---|",
    ]
    for levels, r in result["levels"].items():
        lines.append(
            f"| {levels} | {r['bitrate_bps'] / 1000:.1f} | {_num(r['pesq_wb'], 2)} "
            f"| {_num(r['stoi'], 3)} | {_num(r['si_sdr'], 1)} | {_num(r['mel_distance'], 3)} |"
        )
    return lines


def _s2s_table(result: dict[str, Any]) -> list[str]:
    return [
        f"{result['answers']} answers to {result['turns']} held-out user turns "
        f"({result['split']} split, each answered in all four voices, sampled at temperature "
        f"{result.get('temperature', 0.0):g}, top {result.get('top_k') or 'all'}"
        f"{_guidance(result)}):",
        "",
        "| verdict | accuracy | chance |",
        "|---|---|---|",
        f"| answer of the right intent (DTW on log-mel) | {_pct(result['answer_accuracy'])} "
        f"| {_pct(result['answer_chance'])} |",
        f"| requested voice (speaker embedding) | {_pct(result['voice_accuracy'])} "
        f"| {_pct(result['voice_chance'])} |",
        f"| requested emotion (corpus classifier) | {_pct(result['emotion_accuracy'])} "
        f"| {_pct(result['emotion_majority'])} |",
        "",
        f"The emotion classifier (trained on the codec's renderings of the train answers) is "
        f"right on {_pct(result['emotion_classifier_accuracy'])} of the split's answers as the "
        f"codec renders them. {_pct(result['ended_rate'])} of the answers ended with "
        f"the decoder's end-of-answer token; mean answer length {result['mean_answer_s']:.1f} s.",
        *_voice_notes(result),
        *_listening_notes(result),
        *_text_stream_notes(result),
        *_verdict_notes(result),
    ]


def _text_stream_notes(result: dict[str, Any]) -> list[str]:
    """The verdicts from what the recognizer hears in the answer audio (text streams)."""
    if "heard_intent_accuracy" not in result:
        return []
    own, other = result["text_ce_own_turn"], result["text_ce_other_turn"]
    return [
        "",
        "Judged from the answer audio by the shipped recognizer (models/eval/judge.py), beside "
        "what the model's own text stream meant:",
        "",
        "| verdict | heard in the audio | meant (text stream) |",
        "|---|---|---|",
        f"| answer of the right intent (nearest answer text) | "
        f"{_pct(result['heard_intent_accuracy'])} | {_pct(result['meant_intent_accuracy'])} |",
        f"| slot value said back ({result['slot_answers']} slot answers) | "
        f"{_pct(result['heard_slot_rate'])} | {_pct(result['meant_slot_rate'])} |",
        "",
        f"The answer audio's CER against the text the model meant: "
        f"{_pct(result['answer_cer'])}; real answers of the split after a codec round trip "
        f"alone: {_pct(result['codec_answer_cer'])} (what the codec lets the recognizer read). "
        f"User turns as the agent hears them: CER {_pct(result['user_cer'])}, WER "
        f"{_pct(result['user_wer'])}. The text stream's cross-entropy is {own:.3f} after the "
        f"own user turn and {other:.3f} after another intent's.",
    ]


def _guidance(result: dict[str, Any]) -> str:
    guidance = result.get("guidance", 1.0)
    return "" if guidance == 1 else f", classifier-free guidance {guidance:g}"


def _voice_notes(result: dict[str, Any]) -> list[str]:
    by_speaker = result.get("voice_accuracy_by_speaker")
    if not by_speaker:
        return []
    each = ", ".join(f"{speaker} {_pct(rate)}" for speaker, rate in by_speaker.items())
    lines = ["", f"Requested voice by persona: {each}."]
    through_codec = result.get("codec_voice_accuracy_by_speaker")
    if through_codec:
        each = ", ".join(f"{speaker} {_pct(rate)}" for speaker, rate in through_codec.items())
        lines += [
            "",
            "What the codec alone lets through of the voice (real answers of the split after a "
            f"codec round trip, for comparison with the figures above): {each}.",
        ]
    return lines


LISTENING_MARGIN = 0.01
"""How much worse (cross-entropy) answers must score after another user turn than after their
own for the model to count as listening."""


def _listens(own_ce: float, other_ce: float) -> bool:
    return other_ce > own_ce + LISTENING_MARGIN


def _listening_notes(result: dict[str, Any]) -> list[str]:
    """Whether the answers depend on the user turn (teacher-forced cross-entropies)."""
    if "ce_own_turn" not in result:
        return []
    own, other = result["ce_own_turn"], result["ce_other_turn"]
    text_listens = "text_ce_own_turn" in result and _listens(
        result["text_ce_own_turn"], result["text_ce_other_turn"]
    )
    if _listens(own, other):
        verdict = "the answers depend on what the user said."
    elif text_listens:
        verdict = (
            "the answer's codes barely depend on what the user said; its text stream does (below)."
        )
    else:
        verdict = (
            "**the answers do not depend on what the user said**: the decoder has learned "
            "the sound of the voices and of an answer, not yet to listen."
        )
    return [
        "",
        f"Reference answers score cross-entropy {own:.3f} when the model hears their own user "
        f"turn and {other:.3f} when it hears another intent's: {verdict}",
    ]


def _verdict_notes(result: dict[str, Any]) -> list[str]:
    """Plain words for verdicts that are no better than chance."""
    weak = [
        name
        for name, accuracy, chance in (
            ("the right intent", result["answer_accuracy"], result["answer_chance"]),
            ("the requested emotion", result["emotion_accuracy"], result["emotion_majority"]),
            ("the requested voice", result["voice_accuracy"], result["voice_chance"]),
        )
        if accuracy is not None and accuracy <= 1.5 * chance
    ]
    if not weak:
        return []
    return [
        "",
        f"**Not learned at this training budget:** {', '.join(weak)} (no better than chance).",
    ]


def _eot_table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"On {result['turns']} held-out user turns (delay from the true end of speech to the "
        "decision; false fire = a decision inside the turn):",
        "",
        "| detector | median | p95 | false fires | misses |",
        "|---|---|---|---|---|",
    ]
    rows = [(f"head alone, p > {r['threshold']:g}", r) for r in result["model"]]
    rows += [(f"agent `--eot model`, p >= {r['threshold']:g}", r) for r in result["agent_model"]]
    rows += [(f"Silero silence {r['min_silence_ms']} ms", r) for r in result["silero"]]
    for name, r in rows:
        lines.append(
            f"| {name} | {_ms(r['median_delay_ms'])} | {_ms(r['p95_delay_ms'])} "
            f"| {_pct(r['false_fire_rate'])} | {_pct(r['miss_rate'])} |"
        )
    return lines


def render_card(
    checkpoint: Path,
    codec_run: Path | None,
    s2s_runs: Sequence[Path],
    manifest: Path,
    command: str,
) -> str:
    """The model card's Markdown. `s2s_runs`: the S2S model's training stages in order (each
    started from the one before); the last trained the shipped weights."""
    config = load_config(checkpoint)
    sizes = describe(config)
    files = sorted(p for p in checkpoint.iterdir() if p.suffix == ".safetensors")
    mib = sum(p.stat().st_size for p in files) / 2**20
    data = data_summary(manifest)
    stages = [(f"S2S `{run.name}`" if len(s2s_runs) > 1 else "S2S", run) for run in s2s_runs]
    runs = [(name, run_summary(run)) for name, run in stages]
    s2s = runs[-1][1]
    if codec_run is not None:
        runs.insert(0, ("codec", run_summary(codec_run)))
    evals = {name: json.loads((checkpoint / name).read_text()) for name in EVAL_FILES}
    params = {part: sizes[part]["params"] for part in ("codec", "encoder", "decoder")}
    lines = [
        f"# Model card: `{checkpoint.name}` ({config.name} preset)",
        "",
        "**A demonstration model trained only on synthetic speech.** Every recording it learned "
        "from was rendered by espeak-ng's Telugu voice from a small bank of conversational "
        "intents (see docs/data.md). It answers the corpus's intents in its four synthetic "
        "voices; it has never heard a human voice and is not a general Telugu conversational "
        "model. Train a real one with the same recipes on real corpora (README).",
        "",
        "## Model",
        "",
        f"- Parameters: codec {params['codec'] / 1e6:.2f} M, encoder "
        f"{params['encoder'] / 1e6:.2f} M, decoder {params['decoder'] / 1e6:.2f} M.",
        f"- Codec: {sizes['codec']['num_quantizers']} x {sizes['codec']['codebook_size']} RVQ at "
        f"{sizes['codec']['frame_rate_hz']:g} Hz ({sizes['codec']['bitrate_bps'] / 1000:.1f} "
        f"kbps); decoder step {sizes['decoder']['step_ms']:g} ms.",
        f"- Files: {', '.join(p.name for p in files)}; {mib:.1f} MiB in all (float16 storage).",
        "",
        "## Data",
        "",
        f"Manifest `{manifest.name}` of the synthetic corpus:",
        "",
        "| split | files | hours | intents | speakers |",
        "|---|---|---|---|---|",
    ]
    for name, split in data.items():
        lines.append(
            f"| {name} | {split['files']} | {split['hours']:.2f} | {split['intents']} "
            f"| {', '.join(split['speakers'])} |"
        )
    lines += [
        "",
        "## Training",
        "",
        f"Machine: {machine()}. Written {datetime.now(UTC).date().isoformat()}.",
        "",
        "| run | steps | wall time | last train figures |",
        "|---|---|---|---|",
    ]
    for name, run in runs:
        figures = ", ".join(
            f"{k} {v:.3g}" for k, v in run["last"].items() if not k.startswith("val_") and k != "lr"
        )
        lines.append(f"| {name} | {run['steps']} | {run['wall_minutes']:.1f} min | {figures} |")
    total = sum(run["wall_minutes"] for _, run in runs)
    lines += ["", f"Training wall time in all: {total:.1f} min."]
    if codec_run is None:
        lines.append(
            "The codec was not trained in this run: it is the previous checkpoint's, unchanged "
            "(`train s2s --codec`)."
        )
    if "validation" in s2s:
        val = s2s["validation"]
        lines.append(
            f"S2S validation: token accuracy {_pct(val.get('val_accuracy'))}, cross-entropy "
            f"{val.get('val_ce', float('nan')):.3f}, end-of-turn accuracy "
            f"{_pct(val.get('val_eot_accuracy'))}."
        )
        if "val_ce_other_turn" in val:
            other = val["val_ce_other_turn"]
            verdict = (
                "the decoder uses what the user said."
                if _listens(val["val_ce"], other)
                else "**the decoder's codes do not use what the user said.**"
            )
            lines.append(
                f"With another pair's user turn the same answers score cross-entropy "
                f"{other:.3f}: {verdict}"
            )
        if "val_text_accuracy" in val:
            lines.append(
                f"Text stream: piece accuracy {_pct(val['val_text_accuracy'])}, cross-entropy "
                f"{val['val_text_ce']:.3f} after the own user turn and "
                f"{val['val_text_ce_other_turn']:.3f} after another pair's."
            )
    lines += [
        "",
        "Reproduce:",
        "",
        "```",
        command,
        "```",
        "",
        "## Codec (`telugu-s2s eval codec`)",
        "",
        *_codec_table(evals["eval-codec.json"]),
        "",
        "## Speech to speech (`telugu-s2s eval s2s`)",
        "",
        *_s2s_table(evals["eval-s2s.json"]),
        "",
        "## End of turn (`telugu-s2s eval eot`)",
        "",
        *_eot_table(evals["eval-eot.json"]),
        "",
        "## Limits",
        "",
        "- Synthetic voices and a closed set of intents: speech outside the corpus's bank gets "
        "an answer from the bank, or babble.",
        "- espeak-ng has no Telugu accents and renders emotion only by prosody; the model "
        "learned no more than that.",
        "- The figures above were measured on synthetic test speech of the same renderer, so "
        "they overstate what it does with human speech.",
        "",
    ]
    return "\n".join(lines)


def write_card(
    checkpoint: str | Path,
    codec_run: str | Path | None,
    s2s_runs: Sequence[str | Path],
    manifest: str | Path,
    command: str = "make demo-model",
) -> Path:
    """Write MODEL_CARD.md into the checkpoint directory; returns its path."""
    checkpoint = Path(checkpoint)
    codec = None if codec_run is None else Path(codec_run)
    text = render_card(checkpoint, codec, [Path(r) for r in s2s_runs], Path(manifest), command)
    path = checkpoint / CARD_FILE
    path.write_text(text, encoding="utf-8")
    return path

"""Manifests from public Telugu datasets as they unpack (layouts in docs/data.md).

Every importer reads transcripts and audio metadata (not samples), marks each utterance
NEUTRAL and gives it a split by hashing its speaker and utterance id (hash_split), unless the
dataset states a split.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections.abc import Callable
from itertools import accumulate
from pathlib import Path

import soundfile

from models.controls import emotion_id
from models.data.manifest import SPLITS, Entry, write_manifest

log = logging.getLogger(__name__)

Fractions = tuple[float, float, float]
FRACTIONS: Fractions = (0.9, 0.05, 0.05)
"""Default train, validation and test shares of hash_split."""

_INDICTTS_LINE = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')


def hash_split(speaker: str, utterance: str, fractions: Fractions = FRACTIONS) -> str:
    """train/validation/test for an utterance in proportion to `fractions` (any scale, such as
    90/5/5), the same on every machine and run."""
    digest = hashlib.sha1(f"{speaker}/{utterance}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(fractions)
    for split, edge in zip(SPLITS, accumulate(fractions), strict=True):
        if point < edge:
            return split
    return SPLITS[-1]


def _audio_path(audio: Path, root: Path) -> str:
    """Relative to the manifest's folder when the audio lies under it, else absolute."""
    audio, root = audio.resolve(), root.resolve()
    return audio.relative_to(root).as_posix() if audio.is_relative_to(root) else audio.as_posix()


def _entry(
    audio: Path,
    root: Path,
    text: str,
    speaker: str,
    utterance: str,
    source: str,
    fractions: Fractions,
    emotion: str = "NEUTRAL",
    split: str = "",
) -> Entry | None:
    """An entry for one file, or None (logged) when it is missing or empty."""
    if not audio.is_file():
        log.warning("%s: no audio for %s, skipped", source, utterance)
        return None
    info = soundfile.info(str(audio))
    duration = round(info.frames / info.samplerate, 3)
    if duration <= 0:
        log.warning("%s: empty audio %s, skipped", source, audio)
        return None
    return Entry(
        audio=_audio_path(audio, root),
        duration=duration,
        text=text.strip(),
        speaker=speaker,
        emotion=emotion,
        split=split or hash_split(speaker, utterance, fractions),
        extra={"id": utterance, "source": source},
    )


def indictts(
    src: Path, root: Path, speaker: str | None = None, fractions: Fractions = FRACTIONS
) -> list[Entry]:
    """IndicTTS: `txt.done.data` lines `( <id> "<text>" )` and `wav/<id>.wav`, the wav folder
    beside the transcript or one level up (festival's `etc/`). Speaker: `speaker`, else the
    name of the folder holding wav/."""
    entries = []
    for transcript in sorted(src.rglob("txt.done.data")):
        base = transcript.parent
        if not (base / "wav").is_dir() and (base.parent / "wav").is_dir():
            base = base.parent
        name = speaker or base.name
        for number, line in enumerate(transcript.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            match = _INDICTTS_LINE.match(line.strip())
            if match is None:
                raise ValueError(f'{transcript}:{number}: not ( id "text" ): {line!r}')
            utterance, text = match.groups()
            audio = base / "wav" / f"{utterance}.wav"
            entries.append(_entry(audio, root, text, name, utterance, "indictts", fractions))
    return [e for e in entries if e]


def openslr(
    src: Path, root: Path, speaker: str | None = None, fractions: Fractions = FRACTIONS
) -> list[Entry]:
    """OpenSLR SLR66 (and its siblings): `line_index.tsv` lines `<file id>\\t<text>` and
    `<file id>.wav` anywhere below `src`. Speaker: `speaker`, else the id's first two parts
    (`tem_0001_00123` -> `tem_0001`)."""
    wavs = {path.stem: path for path in src.rglob("*.wav")}
    entries = []
    for index in sorted(src.rglob("line_index.tsv")):
        for number, line in enumerate(index.read_text(encoding="utf-8").splitlines(), 1):
            fields = [f for f in line.split("\t") if f.strip()]
            if not fields:
                continue
            if len(fields) < 2:
                raise ValueError(f"{index}:{number}: expected <file id><TAB><text>: {line!r}")
            utterance, text = fields[0].strip(), fields[-1]
            name = speaker or "_".join(utterance.split("_")[:2])
            audio = wavs.get(utterance, index.parent / f"{utterance}.wav")
            entries.append(_entry(audio, root, text, name, utterance, "openslr", fractions))
    return [e for e in entries if e]


def csv_table(
    src: Path, root: Path, speaker: str | None = None, fractions: Fractions = FRACTIONS
) -> list[Entry]:
    """A CSV with a header row: audio,text,speaker[,emotion,split]; audio paths relative to
    the CSV's folder. `speaker` replaces the speaker column (which may then be left out)."""
    entries = []
    with open(src, encoding="utf-8-sig", newline="") as f:
        rows = csv.DictReader(f)
        missing = {"audio", "text"} | ({"speaker"} if speaker is None else set())
        missing -= set(rows.fieldnames or [])
        if missing:
            raise ValueError(f"{src}: missing columns {sorted(missing)}")
        for number, row in enumerate(rows, 2):
            emotion = (row.get("emotion") or "NEUTRAL").strip()
            name = speaker or (row.get("speaker") or "").strip()
            try:
                if not name or not (row.get("text") or "").strip():
                    raise ValueError("empty speaker or text")
                emotion_id(emotion)
                audio = src.parent / row["audio"]
                split = (row.get("split") or "").strip()
                entries.append(
                    _entry(
                        audio,
                        root,
                        row["text"],
                        name,
                        row["audio"],
                        "csv",
                        fractions,
                        emotion,
                        split,
                    )
                )
            except ValueError as exc:
                raise ValueError(f"{src}:{number}: {exc}") from None
    return [e for e in entries if e]


IMPORTERS: dict[str, Callable[[Path, Path, str | None, Fractions], list[Entry]]] = {
    "indictts": indictts,
    "openslr": openslr,
    "csv": csv_table,
}


def import_dataset(
    fmt: str,
    src: str | Path,
    out: str | Path,
    speaker: str | None = None,
    fractions: Fractions = FRACTIONS,
) -> int:
    """Write the manifest `out` for the dataset at `src` in format `fmt` (a key of IMPORTERS);
    returns how many entries it has."""
    out = Path(out)
    entries = IMPORTERS[fmt](Path(src), out.parent, speaker, fractions)
    if not entries:
        raise ValueError(f"no {fmt} utterances found in {src}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_manifest(out, entries)

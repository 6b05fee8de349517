"""What the text streams train on: the user's words as the recognizer hears them, and each
answer's pieces placed at the decoder steps where their words are spoken.

Both come from the streaming recognizer (models.asr), run once over the manifest's audio and
cached (`text.pt` beside the codes cache, keyed by the recognizer's weights and the manifest):

- user turns: the recognizer's greedy transcript, what the agent will hear in a call (training
  mixes it with the true transcript, so the decoder learns to read both);
- answers: a CTC forced alignment (Viterbi over the recognizer's log-probabilities, restricted
  to the answer's own normalised text) gives the frame of each word's first letter; frames are
  40 ms, so a word's start is known to within a frame or two. espeak-ng does report word
  positions, but only through its C callback API, not its command line; the recognizer is
  already trained on the same voices (answers CER 0.7 %).

Placement (Moshi's inner monologue): a word's pieces go on consecutive steps from
`lead_steps` before its audio starts, after an EPAD step; a word that would overlap the
previous one's pieces is pushed later. Every other step is PAD.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from models.asr.decode import greedy_decode
from models.asr.errors import ErrorRates
from models.asr.model import Recognizer
from models.asr.vocab import BLANK, Vocabulary
from models.data.manifest import Entry, read_manifest
from models.data.text import normalise
from models.text.tokenizer import EPAD, PAD, Tokenizer

log = logging.getLogger(__name__)

TEXT_CACHE = "text.pt"


@dataclass
class HeardText:
    """The recognizer's view of a manifest."""

    heard: dict[str, str]
    """key -> the greedy transcript (every entry)."""
    word_starts: dict[str, list[float]]
    """key -> start (s) of each word of the entry's normalised text, for the entries whose
    forced alignment fits (audio long enough for its letters)."""


def hearing_cer(heard: HeardText, entries: list[Entry]) -> float:
    """CER of the recognizer's transcripts of the user turns among `entries` (those it heard)
    against their text: how well the words the text streams learn from match what was said."""
    rates = ErrorRates()
    for entry in entries:
        user = entry.dialogue is not None and entry.dialogue.role == "user"
        if user and entry.key in heard.heard:
            rates.add(entry.text, heard.heard[entry.key])
    return rates.cer


def forced_align(log_probs: Tensor, labels: list[int]) -> list[int] | None:
    """The frame where each label starts on the likeliest CTC path that spells `labels`
    exactly, from log-probabilities (frames, vocab); None when the frames are too few."""
    frames = log_probs.shape[0]
    states = [BLANK]
    for label in labels:
        states += [label, BLANK]
    n = len(states)
    if not labels or frames < len(labels):
        return None
    lp = log_probs[:, states].double().numpy()
    score = np.full(n, -np.inf)
    score[0] = lp[0, 0]
    score[1] = lp[0, 1]
    back = np.zeros((frames, n), dtype=np.int8)  # how far back the best predecessor is
    skip = np.zeros(n, dtype=bool)  # a label may follow the previous label directly
    for s in range(3, n, 2):
        skip[s] = states[s] != states[s - 2]
    for t in range(1, frames):
        stay = score
        step = np.concatenate(([-np.inf], score[:-1]))
        jump = np.where(skip, np.concatenate(([-np.inf, -np.inf], score[:-2])), -np.inf)
        best = np.maximum(np.maximum(stay, step), jump)
        back[t] = np.where(best == stay, 0, np.where(best == step, 1, 2))
        score = best + lp[t]
    end = n - 1 if score[n - 1] >= score[n - 2] else n - 2
    if not np.isfinite(score[end]):
        return None
    path = np.empty(frames, dtype=np.int64)
    s = end
    for t in range(frames - 1, -1, -1):
        path[t] = s
        s -= int(back[t, s])
    starts: list[int] = []
    for t in range(frames):
        s = int(path[t])
        if s % 2 == 1 and (t == 0 or path[t - 1] != s):
            starts.append(t)
    return starts if len(starts) == len(labels) else None


def word_starts(
    text: str, log_probs: Tensor, vocabulary: Vocabulary, frame_s: float
) -> list[float] | None:
    """Start (s) of each word of normalise(text), by forced alignment; None if it fails."""
    words = normalise(text).split()
    labels: list[int] = []
    firsts: list[int] = []
    for word in words:
        firsts.append(len(labels))
        labels += vocabulary.encode(word).tolist()
        labels.append(vocabulary.index.get(" ", vocabulary.unk))
    starts = forced_align(log_probs, labels[:-1])
    if starts is None:
        return None
    return [starts[i] * frame_s for i in firsts]


def _fingerprint(recognizer: Recognizer, manifest: Path) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(recognizer.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(manifest.read_bytes())
    return digest.hexdigest()


@torch.inference_mode()
def hear_entries(
    recognizer: Recognizer, entries: list[Entry], root: Path, progress: bool = False
) -> HeardText:
    """Transcribe each entry's audio (under `root`) and align the agent turns' text."""
    from models.speech.audio import read_audio  # here: a cached run reads no audio

    recognizer.eval()
    vocabulary = Vocabulary(recognizer.config.letters)
    frame_s = recognizer.config.frame_s
    heard: dict[str, str] = {}
    starts: dict[str, list[float]] = {}
    for entry in tqdm(entries, desc="hearing", unit="file", disable=not progress):
        wav = read_audio(entry.path(root), recognizer.config.sample_rate)
        logits = recognizer(torch.from_numpy(wav)[None])[0]
        heard[entry.key] = greedy_decode(logits, vocabulary, frame_s).text
        if entry.dialogue is not None and entry.dialogue.role == "agent":
            found = word_starts(entry.text, logits.log_softmax(-1), vocabulary, frame_s)
            if found is not None:
                starts[entry.key] = found
    return HeardText(heard, starts)


def hear_manifest(
    recognizer: Recognizer,
    manifest: str | Path,
    cache: str | Path | None = None,
    splits: tuple[str, ...] = ("train", "validation"),
    progress: bool = True,
) -> HeardText:
    """`hear_entries` for every entry of `splits`, cached in `cache` (reused while the
    recognizer weights and the manifest are the same)."""
    manifest = Path(manifest)
    stamp = _fingerprint(recognizer, manifest)
    if cache is not None and Path(cache).is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        if stored.get("fingerprint") == stamp and stored.get("splits") == list(splits):
            return HeardText(stored["heard"], stored["word_starts"])
    entries = [e for e in read_manifest(manifest) if e.split in splits]
    result = hear_entries(recognizer, entries, manifest.parent, progress)
    agents = sum(1 for e in entries if e.dialogue is not None and e.dialogue.role == "agent")
    log.info("aligned %d of %d answers", len(result.word_starts), agents)
    if cache is not None:
        stored = {"fingerprint": stamp, "splits": list(splits)}
        torch.save({**stored, "heard": result.heard, "word_starts": result.word_starts}, cache)
    return result


def place_pieces(word_pieces: list[list[int]], starts: list[int], steps: int, lead: int) -> Tensor:
    """(steps,) the text stream of an answer: each word's pieces on consecutive steps from
    `lead` steps before its start step (EPAD on the step before, when free), never
    overlapping the previous word; PAD elsewhere. Pieces past the last step are dropped."""
    stream = torch.full((steps,), PAD, dtype=torch.long)
    free = 0  # the first step not yet used
    for pieces, start in zip(word_pieces, starts, strict=True):
        first = max(start - lead, free + 1 if free > 0 else 0)
        if 0 < first <= steps and first - 1 >= free:
            stream[first - 1] = EPAD
        for offset, piece in enumerate(pieces):
            if first + offset < steps:
                stream[first + offset] = piece
        free = first + len(pieces)
    return stream


def answer_stream(
    tokenizer: Tokenizer,
    text: str,
    starts_s: list[float] | None,
    steps: int,
    step_s: float,
    lead: int,
) -> Tensor:
    """An answer's text stream of `steps` steps. Without an alignment the words are spread
    evenly over the answer, by their share of the letters (a rough fallback)."""
    words = normalise(text).split()
    pieces = [tokenizer.encode(word) for word in words]
    if starts_s is None or len(starts_s) != len(words):
        total = max(1, sum(len(w) + 1 for w in words))
        span, starts_s, at = steps * step_s, [], 0
        for word in words:
            starts_s.append(span * at / total)
            at += len(word) + 1
    return place_pieces(pieces, [round(s / step_s) for s in starts_s], steps, lead)

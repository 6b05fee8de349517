"""Codec codes of every entry of a manifest, and where its speech ends, computed once with a
trained codec and cached.

Each entry's audio (16 kHz) is zero-padded at the end to a whole number of transformer steps
(`hop * frames_per_step` samples) and encoded. The codec is causal, so a frame's codes depend
only on its own and earlier samples: entries are encoded in batches of similar length, padded
at the end, and each one's frames are cut back out, which gives exactly its own encoding.

The cache is a .pt file holding the codes (in the smallest integer type that holds the
codebook), the speech ends and a fingerprint of the codec weights, the manifest and the step
size; a rerun with the same fingerprint reads it instead of encoding again, and needs no audio:
a cache and its manifest are all S2S training reads, so they can be trained on where the
corpus is not (a GPU machine, say).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from models.codec import TeluCodec
from models.data.manifest import Entry, read_manifest

log = logging.getLogger(__name__)

BATCH_SECONDS = 60.0
"""Audio per encoding batch (padded length x batch size)."""

SPEECH_DBFS = -40.0
"""A sample above this level (re full scale) is speech, for the end-of-turn labels."""


class Encoded(NamedTuple):
    """What encoding entries gives."""

    codes: dict[str, Tensor]
    """key -> LongTensor (Q, F) codes, F a multiple of the step size."""
    speech_ends: dict[str, int]
    """key -> the number of samples up to and including the last speech sample."""


def speech_end(wav: np.ndarray, dbfs: float = SPEECH_DBFS) -> int:
    """Index just after the last sample above `dbfs` (0 when there is none)."""
    loud = np.flatnonzero(np.abs(wav) > 10 ** (dbfs / 20))
    return int(loud[-1]) + 1 if len(loud) else 0


def _stored_dtype(codebook_size: int) -> torch.dtype:
    """The smallest integer type that holds codes below `codebook_size`."""
    if codebook_size <= 256:
        return torch.uint8
    return torch.int16 if codebook_size <= 2**15 else torch.int32


def pad_to_steps(wav: np.ndarray, multiple: int) -> np.ndarray:
    """`wav` zero-padded at the end to a positive multiple of `multiple` samples."""
    length = max(1, -(-len(wav) // multiple)) * multiple
    return np.pad(wav.astype(np.float32), (0, length - len(wav)))


def fingerprint(codec: TeluCodec, manifest: str | Path, frames_per_step: int) -> str:
    """Hash of the codec weights, the manifest text and the step size."""
    digest = hashlib.sha256()
    for name, tensor in sorted(codec.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(Path(manifest).read_bytes())
    digest.update(str(frames_per_step).encode())
    return digest.hexdigest()


@torch.inference_mode()
def encode_entries(
    codec: TeluCodec,
    entries: list[Entry],
    root: Path,
    frames_per_step: int = 1,
    progress: bool = True,
) -> Encoded:
    """The codes (Q, F) of each entry's audio, F a multiple of frames_per_step, and where its
    speech ends."""
    from models.speech.audio import read_audio  # here: training from a cache needs no audio library

    rate = codec.config.sample_rate
    multiple = codec.hop * frames_per_step
    device = next(codec.parameters()).device
    wavs, speech_ends = {}, {}
    for entry in entries:
        wav = read_audio(entry.path(root), rate)
        speech_ends[entry.key] = speech_end(wav)
        wavs[entry.key] = pad_to_steps(wav, multiple)
    order = sorted(wavs, key=lambda k: len(wavs[k]), reverse=True)
    codes: dict[str, Tensor] = {}
    with tqdm(
        total=len(order), desc="encoding", unit="file", leave=False, disable=not progress
    ) as bar:
        start = 0
        while start < len(order):
            longest = len(wavs[order[start]])
            size = max(1, int(BATCH_SECONDS * rate // longest))
            keys = order[start : start + size]
            batch = np.zeros((len(keys), longest), dtype=np.float32)
            for row, key in enumerate(keys):
                batch[row, : len(wavs[key])] = wavs[key]
            encoded = codec.encode(torch.from_numpy(batch).to(device)).cpu()
            for row, key in enumerate(keys):
                codes[key] = encoded[row, :, : len(wavs[key]) // codec.hop].clone()
            start += len(keys)
            bar.update(len(keys))
    return Encoded(codes, speech_ends)


def encode_manifest(
    codec: TeluCodec,
    manifest: str | Path,
    root: str | Path | None = None,
    cache: str | Path | None = None,
    frames_per_step: int = 1,
    progress: bool = True,
) -> Encoded:
    """The codes of every entry of `manifest` (audio resolved against `root`, by default the
    manifest's folder), padded to whole steps of `frames_per_step` frames, and its speech end.

    With `cache`, both are saved there and a later call with the same codec weights, manifest
    and step size loads them instead of reading and encoding the audio again.
    """
    manifest = Path(manifest)
    root = manifest.parent if root is None else Path(root)
    stamp = fingerprint(codec, manifest, frames_per_step) if cache is not None else ""
    if cache is not None and Path(cache).is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        if stored.get("fingerprint") == stamp and "speech_ends" in stored:
            log.info("codes of %s read from %s", manifest, cache)
            codes = {key: value.long() for key, value in stored["codes"].items()}
            return Encoded(codes, stored["speech_ends"])
        log.info("%s is stale (codec, manifest, step size or format changed): encoding", cache)
    codec.eval()
    encoded = encode_entries(codec, read_manifest(manifest), root, frames_per_step, progress)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(cache).with_name(f".{Path(cache).name}.partial")
        dtype = _stored_dtype(codec.config.codebook_size)
        stored = {
            "fingerprint": stamp,
            "codes": {key: value.to(dtype) for key, value in encoded.codes.items()},
            "speech_ends": encoded.speech_ends,
        }
        torch.save(stored, temporary)
        temporary.replace(cache)
    return encoded

"""Which coarse (level 0) codes of a codec stand for silence, found from the codec itself.

A frame's level-0 code says most of what the frame is; when it is a code the codec gives to
near-silent audio, the finer levels only refine a near-silent frame, so a generator can leave
them out (`models.s2s.answer_draw`) and the codec decode the frame from level 0 alone.

The rule, deterministic and without data or training: a level-0 code is *quiet* when the
codec's own encoder gives it to a frame of a probe signal at or below `QUIET_DBFS`: digital
silence, and white and brown (1/f^2) noise from a fixed seed at every 5 dB from -90 dBFS up to
the threshold (a broad and a speech-like low-frequency spectrum: the room tone between words
and the tails of speech sounds). -60 dBFS is the usual silence floor of audio tools (ffmpeg's
`silencedetect` default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from models.codec.codec import TeluCodec

QUIET_DBFS = -60.0
"""The loudest probe level whose codes count as quiet (RMS re full scale 1.0)."""
PROBE_S = 1.0
"""Length of each probe signal."""
PROBE_STEP_DB = 5.0
PROBE_FLOOR_DBFS = -90.0
PROBE_SEED = 0


@dataclass(frozen=True)
class QuietCodes:
    """The quiet level-0 codes of a codec, and the finer codes a left-out frame reads as."""

    quiet: Tensor
    """(codebook_size,) bool: True for the level-0 codes of near-silent audio."""
    fill: Tensor
    """(levels - 1,) long: the codes of levels 1.. that the quantizer gives to a latent
    equal to a level-0 codeword (a residual of zero): what a generator that left a frame's fine
    levels out reads back in their place."""

    def is_quiet(self, codes: Tensor) -> Tensor:
        """Whether each code (any shape, PAD/EOS ids above the codebook allowed) is quiet."""
        size = self.quiet.shape[0]
        known = codes < size
        return known & self.quiet[codes.clamp(0, size - 1)]


def probe_signals(sample_rate: int, hop: int) -> Tensor:
    """The probe signals (n, samples): silence, then white and brown noise at each level from
    PROBE_FLOOR_DBFS to QUIET_DBFS."""
    samples = round(PROBE_S * sample_rate) // hop * hop
    generator = torch.Generator().manual_seed(PROBE_SEED)
    white = torch.randn(samples, generator=generator, dtype=torch.float64)
    brown = torch.cumsum(torch.randn(samples, generator=generator, dtype=torch.float64), 0)
    brown = brown - brown.mean()
    shapes = [s / s.pow(2).mean().sqrt() for s in (white, brown)]
    steps = int((QUIET_DBFS - PROBE_FLOOR_DBFS) // PROBE_STEP_DB) + 1
    levels = [PROBE_FLOOR_DBFS + i * PROBE_STEP_DB for i in range(steps)]
    probes = [torch.zeros(samples, dtype=torch.float64)]
    probes += [shape * 10 ** (db / 20) for db in levels for shape in shapes]
    return torch.stack(probes).float()


@torch.no_grad()
def find_quiet_codes(codec: TeluCodec) -> QuietCodes:
    """The codec's `QuietCodes` (the rule in the module docstring)."""
    param = next(codec.parameters())
    probes = probe_signals(codec.config.sample_rate, codec.hop)
    coarse = codec.encode(probes.to(param.device, param.dtype), levels=1)[:, 0]
    quiet = torch.zeros(codec.config.codebook_size, dtype=torch.bool, device=param.device)
    quiet[coarse.flatten()] = True
    residual = torch.zeros(1, codec.config.latent_dim, device=param.device)
    fill = []
    for codebook in codec.quantizer.levels[1:]:
        code = codebook.nearest(residual)
        residual = residual - codebook.lookup(code).float()
        fill.append(code[0])
    return QuietCodes(quiet, torch.stack(fill))

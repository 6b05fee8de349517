"""Residual vector quantizer with EMA codebooks, dead-code replacement and quantizer dropout.

Each level quantizes what the previous levels left over, with its own codebook of
`codebook_size` codes of `latent_dim` values (no projection to a smaller codebook dim). Codes are
the nearest codewords in Euclidean distance. In training mode each used level:

- moves its codewords by exponential moving average (decay `ema_decay`) towards the mean of the
  vectors assigned to them, and keeps an EMA of how many vectors each code gets per batch;
- replaces every code whose EMA count is below `dead_code_threshold` by a random vector from the
  current batch (so the first training batch initialises the codebooks from data).

The codebooks are parameters only for the orthogonal regularisation: the straight-through
estimator and the detached commitment target give them no other gradient, and the EMA update
blends the current codewords, so what an optimiser step changes is kept. (Keep them out of
weight decay.) Using the first k levels only (quantizer dropout in training, lower bitrate at
inference) still gives a usable approximation, as every level refines the previous ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.config import CodecConfig

ORTHOGONAL_MAX_CODES = 256
"""Codes of a random subset the orthogonal loss is computed on, to bound its cost."""


def orthogonal_loss(codebook: Tensor, max_codes: int = ORTHOGONAL_MAX_CODES) -> Tensor:
    """Mean squared off-diagonal cosine similarity of (a random subset of) the codewords."""
    if codebook.shape[0] > max_codes:
        codebook = codebook[torch.randperm(codebook.shape[0], device=codebook.device)[:max_codes]]
    normed = F.normalize(codebook, dim=-1)
    eye = torch.eye(normed.shape[0], device=normed.device, dtype=normed.dtype)
    return ((normed @ normed.T - eye) ** 2).sum() / normed.shape[0] ** 2


class EMACodebook(nn.Module):
    """One level's codebook: nearest-code search, EMA update and dead-code replacement."""

    def __init__(
        self, dim: int, codebook_size: int, decay: float, dead_code_threshold: float
    ) -> None:
        super().__init__()
        self.decay = decay
        self.dead_code_threshold = dead_code_threshold
        self.codewords = nn.Parameter(torch.randn(codebook_size, dim) * dim**-0.5)
        # EMA of the number of vectors assigned to each code per batch
        self.register_buffer("cluster_size", torch.zeros(codebook_size))

    @torch.no_grad()
    def nearest(self, vectors: Tensor) -> Tensor:
        """Index of the nearest codeword of each of the (N, dim) vectors (in float32 even
        under autocast: bf16 distances can pick the wrong codeword)."""
        with torch.autocast(vectors.device.type, enabled=False):
            codewords = self.codewords.float()
            distances = (codewords**2).sum(-1) - 2 * vectors.float() @ codewords.T
        return distances.argmin(-1)

    def lookup(self, codes: Tensor) -> Tensor:
        """Codewords of integer codes of any shape: (*shape, dim)."""
        return F.embedding(codes, self.codewords)

    @torch.no_grad()
    def update(self, vectors: Tensor, codes: Tensor) -> None:
        """EMA step towards the (N, dim) `vectors` assigned to `codes`, then dead-code refresh."""
        vectors = vectors.detach().to(self.codewords.dtype)
        counts = torch.bincount(codes, minlength=self.codewords.shape[0]).to(vectors.dtype)
        sums = torch.zeros_like(self.codewords).index_add_(0, codes, vectors)
        new_weight = 1.0 - self.decay
        cluster_size = self.decay * self.cluster_size + new_weight * counts
        # (decay * size * codeword + new_weight * sum) / new size, unchanged for unused codes
        shift = new_weight * (sums - counts[:, None] * self.codewords)
        self.codewords.add_(shift / cluster_size.clamp_min(1e-12)[:, None])
        self.cluster_size.copy_(cluster_size)
        self.replace_dead_codes(vectors)

    @torch.no_grad()
    def replace_dead_codes(self, vectors: Tensor) -> None:
        """Codes whose EMA count fell below the threshold become random rows of `vectors`."""
        dead = self.cluster_size < self.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        picks = torch.randint(vectors.shape[0], (n_dead,), device=vectors.device)
        self.codewords[dead] = vectors[picks].to(self.codewords.dtype)
        self.cluster_size[dead] = self.dead_code_threshold


class ResidualVectorQuantizer(nn.Module):
    """`num_quantizers` EMA codebooks applied to the residual of the previous levels."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.commitment_weight = config.commitment_weight
        self.orthogonal_weight = config.orthogonal_reg_weight
        self.levels = nn.ModuleList(
            EMACodebook(
                config.latent_dim,
                config.codebook_size,
                config.ema_decay,
                config.dead_code_threshold,
            )
            for _ in range(config.num_quantizers)
        )

    def check_levels(self, n_levels: int) -> None:
        """ValueError unless 1 <= n_levels <= num_quantizers."""
        if not 1 <= n_levels <= len(self.levels):
            raise ValueError(f"levels must be in 1..{len(self.levels)}, got {n_levels}")

    def forward(self, latent: Tensor, n_levels: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Quantize (batch, dim, frames) with the first `n_levels` codebooks, for training.

        Returns the quantized latent (straight-through: its gradient goes to `latent`), the codes
        (batch, n_levels, frames) and the weighted "commitment" and "orthogonal" losses. In
        training mode the used codebooks get their EMA update and dead-code replacement.
        """
        self.check_levels(n_levels)
        batch, dim, frames = latent.shape
        vectors = latent.transpose(1, 2).reshape(-1, dim)
        residual = vectors
        quantized = torch.zeros_like(vectors)
        codes, commitment, orthogonal = [], [], []
        for codebook in self.levels[:n_levels]:
            level_codes = codebook.nearest(residual)
            level_quantized = codebook.lookup(level_codes).detach()
            commitment.append(F.mse_loss(residual, level_quantized))
            if self.training:
                codebook.update(residual, level_codes)
            orthogonal.append(orthogonal_loss(codebook.codewords))
            quantized = quantized + level_quantized
            residual = residual - level_quantized
            codes.append(level_codes.view(batch, frames))
        straight_through = vectors + (quantized - vectors).detach()
        losses = {
            "commitment": self.commitment_weight * torch.stack(commitment).mean(),
            "orthogonal": self.orthogonal_weight * torch.stack(orthogonal).mean(),
        }
        quantized_latent = straight_through.view(batch, frames, dim).transpose(1, 2)
        return quantized_latent, torch.stack(codes, dim=1), losses

    @torch.no_grad()
    def encode(self, latent: Tensor, n_levels: int) -> Tensor:
        """Codes (batch, n_levels, frames) of a (batch, dim, frames) latent; no updates."""
        self.check_levels(n_levels)
        batch, dim, frames = latent.shape
        residual = latent.transpose(1, 2).reshape(-1, dim)
        codes = []
        for codebook in self.levels[:n_levels]:
            level_codes = codebook.nearest(residual)
            residual = residual - codebook.lookup(level_codes)
            codes.append(level_codes.view(batch, frames))
        return torch.stack(codes, dim=1)

    def decode(self, codes: Tensor, present: Tensor | None = None) -> Tensor:
        """Sum of the codewords of (batch, levels, frames) codes: (batch, dim, frames).

        present: optional (batch, levels, frames) bool, False where a level's code is absent
        from a frame (its value is then ignored): that frame is the sum of its present levels'
        codewords only. All True is the same as None."""
        self.check_levels(codes.shape[1])
        used = self.levels[: codes.shape[1]]
        if present is not None:
            codes = codes.masked_fill(~present, 0)
        quantized = torch.stack([codebook.lookup(codes[:, i]) for i, codebook in enumerate(used)])
        if present is not None:
            quantized = quantized * present.transpose(0, 1)[..., None].to(quantized.dtype)
        return quantized.sum(0).transpose(1, 2)

"""TeluCodec: a causal, streaming neural speech codec (16 kHz mono PCM <-> residual VQ codes).

A causal conv encoder turns every `hop` samples (80 at 16 kHz: one 5 ms frame, 200 frames/s)
into a `latent_dim` vector, a residual vector quantizer turns that into `num_quantizers` codes
(10 bits each with 1024 codes: 16 kbps with all 8 levels, 2 kbps per level), and a causal
decoder turns the summed codewords back into 80 samples: transposed convs (config.decoder
"conv") or a frame-rate ConvNeXt with an inverse-STFT head ("istft", models.codec.istft).

Algorithmic latency: one frame, 5 ms, and no look-ahead, plus `delay` samples for the istft
decoder (its output is the input delayed by n_fft - hop samples: 15 ms at n_fft = 4 x hop).
Every conv is causal (left padding only) and every transposed conv keeps only its causal part,
so a frame's codes depend on its own 80 samples and earlier ones only, and are available as
soon as its 80 samples are; decoding a frame yields 80 final samples at once. Encoding or
decoding chunk by chunk (`encode_stream`, `decode_stream`, any number of whole frames per
chunk) gives the whole-utterance result up to float rounding; the explicit state objects carry
each causal layer's left context or overlap tail from one chunk to the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.codec.istft import delay
from models.codec.networks import build_decoder, build_encoder
from models.codec.quantizer import ResidualVectorQuantizer
from models.codec.quiet import QuietCodes, find_quiet_codes
from models.config import CodecConfig


@dataclass
class _StreamState:
    """Per-layer tensors (batch first) carried from one chunk to the next: several calls'
    states stack into the rows of one batch and split back (fixed shapes per layer)."""

    contexts: list[Tensor]

    @classmethod
    def stack(cls, states: list[_StreamState]) -> _StreamState:
        return cls([torch.cat(layer) for layer in zip(*(s.contexts for s in states), strict=True)])

    def rows(self) -> list[_StreamState]:
        batch = self.contexts[0].shape[0]
        return [type(self)([c[i : i + 1] for c in self.contexts]) for i in range(batch)]


class EncoderState(_StreamState):
    """A streamed encoding so far: the left context of every causal conv, in layer order."""


class DecoderState(_StreamState):
    """A streamed decoding so far: each layer's left context or overlap tail, in layer order."""


class TeluCodec(nn.Module):
    """Causal conv encoder, residual VQ with EMA codebooks, causal conv or istft decoder."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        self.hop = config.hop
        self.encoder = build_encoder(config)
        self.quantizer = ResidualVectorQuantizer(config)
        self.decoder = build_decoder(config)
        self.delay = delay(config) if config.decoder == "istft" else 0
        """Samples by which the decoded PCM lags the encoded PCM."""

    @cached_property
    def quiet_codes(self) -> QuietCodes:
        """The level-0 codes of near-silent audio (`models.codec.quiet`), found once, on first
        use, from the weights the codec has then (a loaded model's)."""
        return find_quiet_codes(self)

    def _check_wav(self, wav: Tensor) -> None:
        if wav.dim() != 2 or wav.shape[1] == 0 or wav.shape[1] % self.hop:
            raise ValueError(
                f"expected (batch, samples) with samples a positive multiple of {self.hop}, "
                f"got {tuple(wav.shape)}"
            )

    def _check_codes(self, codes: Tensor, present: Tensor | None = None) -> None:
        if codes.dim() != 3 or codes.shape[2] == 0 or codes.dtype.is_floating_point:
            raise ValueError(f"expected integer codes (batch, levels, frames), got {codes.shape}")
        self.quantizer.check_levels(codes.shape[1])
        if present is not None and (present.shape != codes.shape or present.dtype != torch.bool):
            raise ValueError(f"expected a bool level mask of shape {tuple(codes.shape)}")

    def _levels(self, levels: int | None) -> int:
        return self.config.num_quantizers if levels is None else levels

    def _training_levels(self) -> int:
        """Quantizer dropout: 1..num_quantizers uniformly in a `quantizer_dropout` share of the
        batches, all levels in the others."""
        levels = self.config.num_quantizers
        if float(torch.rand(())) < self.config.quantizer_dropout:
            return int(torch.randint(1, levels + 1, ()))
        return levels

    def delayed(self, wav: Tensor) -> Tensor:
        """(batch, samples) PCM delayed by `delay` samples (zeros before it): what decoding
        its codes approximates, the target of the training losses."""
        return F.pad(wav, (self.delay, 0))[:, : wav.shape[1]]

    def forward(
        self, wav: Tensor, levels: int | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Training pass: (reconstruction (batch, samples), codes, losses).

        `levels` None uses all quantizers in eval mode and, in training mode, a uniformly random
        1..num_quantizers in a `quantizer_dropout` share of the calls and all levels in the
        others (quantizer dropout, so the first few levels alone decode). The reconstruction
        approximates `delayed(wav)`. The losses ("commitment", "orthogonal") are already
        weighted: add them to the reconstruction loss. In training mode the used codebooks get
        their EMA update and dead-code replacement.
        """
        self._check_wav(wav)
        if levels is None and self.training:
            levels = self._training_levels()
        latent = self.encoder(wav[:, None])
        quantized, codes, losses = self.quantizer(latent, self._levels(levels))
        return self.decoder(quantized)[:, 0], codes, losses

    @torch.no_grad()
    def encode(self, wav: Tensor, levels: int | None = None) -> Tensor:
        """Codes (batch, levels, samples // hop) of (batch, samples) PCM in [-1, 1]."""
        self._check_wav(wav)
        return self.quantizer.encode(self.encoder(wav[:, None]), self._levels(levels))

    def decode(self, codes: Tensor, present: Tensor | None = None) -> Tensor:
        """PCM (batch, frames * hop) of codes (batch, q, frames) from the first q levels,
        lagging the encoded PCM by `delay` samples; `present` (batch, q, frames) bool leaves
        out the levels it marks False, frame by frame (`ResidualVectorQuantizer.decode`)."""
        self._check_codes(codes, present)
        return self.decoder(self.quantizer.decode(codes, present))[:, 0]

    @torch.no_grad()
    def encode_stream(
        self, chunk: Tensor, state: EncoderState | None = None, levels: int | None = None
    ) -> tuple[Tensor, EncoderState]:
        """Codes (batch, levels, n) of the next (batch, n * hop) chunk, and the new state.

        Start with `state` None; pass the returned state with the next chunk.
        """
        self._check_wav(chunk)
        x = chunk[:, None]
        if state is None:
            state = self.initial_encoder_state(x.shape[0], x)
        latent, contexts = self.encoder.stream(x, state.contexts)
        return self.quantizer.encode(latent, self._levels(levels)), EncoderState(contexts)

    def initial_encoder_state(self, batch: int, like: Tensor) -> EncoderState:
        """The state of a stream that has not started (what `encode_stream` uses for None):
        zeros of `like`'s dtype and device (the PCM to be encoded)."""
        return EncoderState(self.encoder.initial_states(batch, like))

    def initial_decoder_state(self, batch: int, like: Tensor) -> DecoderState:
        """The state of a decoding that has not started (`decode_stream`'s None): zeros of
        `like`'s dtype and device (the codec's latents)."""
        return DecoderState(self.decoder.initial_states(batch, like))

    @torch.no_grad()
    def decode_stream(
        self, codes: Tensor, state: DecoderState | None = None, present: Tensor | None = None
    ) -> tuple[Tensor, DecoderState]:
        """PCM (batch, f * hop) of the next codes (batch, q, f), and the new state.

        Start with `state` None; pass the returned state with the next codes. The number of
        levels q may change from one call to the next, and `present` (batch, q, f) bool leaves
        out levels frame by frame, as in `decode`.
        """
        self._check_codes(codes, present)
        latent = self.quantizer.decode(codes, present)
        if state is None:
            state = self.initial_decoder_state(latent.shape[0], latent)
        wav, contexts = self.decoder.stream(latent, state.contexts)
        return wav[:, 0], DecoderState(contexts)

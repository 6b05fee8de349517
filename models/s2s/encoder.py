"""Streaming Conformer encoder over TeluCodec codes, with an end-of-turn head.

Input: codes (batch, num_quantizers, frames). Each frame's embedding is the sum of its
codebooks' embeddings; the `frames_per_step` frames of a step are stacked and projected to
`dim`, one position per step. A right-context convolution adds the look-ahead (below), then the
speaker and emotion vector is added to every position (the design document's
`x = tokens + speaker_emb + emotion_emb`) and the chunk-causal Conformer blocks run
(`models.s2s.conformer`). With C = steps(chunk_ms) and W = steps(window_ms), the query at step
i (chunk c = i // C) attends key j iff c*C - W <= j < (c+1)*C. A linear head on the final
hidden state gives, per step, the logit that the user's turn has ended. With text streams
(`config.text`), `user_text` turns the pieces of the user's words, as the streaming
recognizer writes them, into memory entries beside the acoustic steps
(`models.s2s.user_text`).

Look-ahead, corrected from the design document. The document gives the encoder 20 ms of
look-ahead as a property of its attention, i.e. of every layer. Look-ahead per layer compounds:
with L future steps per layer, the output of layer n depends on n*L future steps, so a 12-layer
encoder would wait 12 x 20 ms, not 20 ms. Here the look-ahead is applied once, at the input:
the token of step i mixes the step embeddings i .. i+L with L = steps(lookahead_ms) (zeros past
the end of the stream), and every block is chunk-causal (attention within its chunk and the
window to its left, causal depthwise conv). The output of step i therefore needs input up to
step (c+1)*C - 1 + L, whatever the depth: a step waits at most C - 1 + L steps. The streaming
path (`init_state`, `stream`, `finish`) computes exactly what `forward` computes offline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.config import S2SConfig
from models.s2s.conditioning import Conditioning
from models.s2s.conformer import BlockCache, ConformerBlock
from models.s2s.user_text import UserText


@dataclass
class EncoderState:
    """A stream in progress."""

    steps: Tensor
    """(batch, <= lookahead, dim): the last step embeddings, waiting for their look-ahead."""
    tokens: Tensor
    """(batch, < chunk, dim): input tokens waiting for the rest of their chunk."""
    position: int | Tensor
    """Steps already through the blocks: the absolute step of tokens[:, 0]; a (batch,) tensor
    in a state stacked from several streams (`stack`)."""
    blocks: list[BlockCache]

    def shape_key(self) -> tuple[int, int, int]:
        """What streams must share to be stacked: the lengths of everything they hold."""
        return self.steps.shape[1], self.tokens.shape[1], self.blocks[0].keys.shape[2]

    @classmethod
    def stack(cls, states: list[EncoderState]) -> EncoderState:
        """One state whose rows are the given streams' (each of batch 1, one shape_key)."""
        positions = [s.position for s in states]
        return cls(
            steps=torch.cat([s.steps for s in states]),
            tokens=torch.cat([s.tokens for s in states]),
            position=torch.tensor(positions, dtype=torch.long).flatten(),
            blocks=[
                BlockCache.stack(list(caches))
                for caches in zip(*(s.blocks for s in states), strict=True)
            ],
        )

    def rows(self) -> list[EncoderState]:
        """The streams of a stacked state, each of batch 1 with an int position."""
        positions = self.position.tolist() if isinstance(self.position, Tensor) else None
        return [
            EncoderState(
                steps=self.steps[i : i + 1],
                tokens=self.tokens[i : i + 1],
                position=positions[i] if positions is not None else self.position,
                blocks=[cache.row(i) for cache in self.blocks],
            )
            for i in range(self.steps.shape[0])
        ]


class StreamingEncoder(nn.Module):
    """Chunk-causal Conformer over codec codes: offline `forward`, streaming `stream`."""

    def __init__(self, config: S2SConfig) -> None:
        super().__init__()
        enc = config.encoder
        self.num_quantizers = config.codec.num_quantizers
        self.frames_per_step = config.frames_per_step
        self.dim = enc.dim
        self.chunk = config.steps(enc.chunk_ms)
        self.window = config.steps(enc.window_ms)
        self.lookahead = config.steps(enc.lookahead_ms)
        if self.chunk < 1:
            raise ValueError("the encoder needs chunk_ms > 0")
        self.frame_dim = -(-enc.dim // config.frames_per_step)
        codebook = config.codec.codebook_size
        self.codebooks = nn.Embedding(self.num_quantizers * codebook, self.frame_dim)
        """The Q codebook tables, stacked (quantizer q uses rows q*codebook_size ...)."""
        nn.init.normal_(self.codebooks.weight, std=self.num_quantizers**-0.5)
        self.register_buffer(
            "offsets", torch.arange(self.num_quantizers) * codebook, persistent=False
        )
        self.project = nn.Linear(config.frames_per_step * self.frame_dim, enc.dim)
        self.look = nn.Conv1d(enc.dim, enc.dim, self.lookahead + 1)
        self.conditioning = Conditioning(config, enc.dim)
        self.input_drop = nn.Dropout(enc.dropout)
        self.blocks = nn.ModuleList(
            ConformerBlock(
                enc.dim,
                enc.heads,
                enc.ff_mult,
                enc.conv_kernel,
                self.chunk,
                self.window,
                enc.dropout,
            )
            for _ in range(enc.layers)
        )
        self.eot = nn.Linear(enc.dim, 1)
        self.user_text = UserText(config) if config.text.enabled else None
        """The user's words (recognizer -> tokenizer pieces) as memory entries; None for the
        codes-only model."""

    def embed_steps(self, codes: Tensor) -> Tensor:
        """codes (batch, Q, frames) -> step embeddings (batch, frames // frames_per_step, dim)."""
        batch, q, frames = codes.shape
        if q != self.num_quantizers or frames % self.frames_per_step:
            raise ValueError(
                f"codes {tuple(codes.shape)}: need {self.num_quantizers} codebooks and a "
                f"multiple of {self.frames_per_step} frames"
            )
        summed = self.codebooks(codes + self.offsets[:, None]).sum(dim=1)
        steps = frames // self.frames_per_step
        return self.project(summed.reshape(batch, steps, self.frames_per_step * self.frame_dim))

    def look_ahead(self, steps: Tensor) -> Tensor:
        """Tokens for all but the last `lookahead` steps: token i = step i + conv(steps i..i+L)."""
        ready = steps.shape[1] - self.lookahead
        if ready <= 0:
            return steps[:, :0]
        return steps[:, :ready] + self.look(steps.transpose(1, 2)).transpose(1, 2)

    def _blocks(
        self, tokens: Tensor, start: int, caches: list[BlockCache], cond: Tensor
    ) -> tuple[Tensor, Tensor, list[BlockCache]]:
        """Run the blocks over tokens at steps start ...; -> hidden, eot logits, new caches."""
        x = self.input_drop(tokens + cond[:, None])
        new = []
        for block, cache in zip(self.blocks, caches, strict=True):
            x, cache = block(x, start, cache)
            new.append(cache)
        return x, self.eot(x).squeeze(-1), new

    def forward(self, codes: Tensor, speaker: Tensor, emotion: Tensor) -> tuple[Tensor, Tensor]:
        """Offline: codes (batch, Q, frames) -> hidden (batch, steps, dim), eot logits
        (batch, steps). speaker: (batch,) voice index or (batch, speaker_embedding_dim) zero-shot
        embedding; emotion: (batch,) index."""
        steps = self.embed_steps(codes)
        tokens = self.look_ahead(F.pad(steps, (0, 0, 0, self.lookahead)))
        state = self.init_state(codes.shape[0])
        hidden, logits, _ = self._blocks(
            tokens, 0, state.blocks, self.conditioning(speaker, emotion)
        )
        return hidden, logits

    def init_state(self, batch_size: int) -> EncoderState:
        """The state at the start of a stream."""
        like = self.codebooks.weight  # an embedding: its weight stays a tensor under int8
        empty = like.new_zeros(batch_size, 0, self.dim)
        caches = [block.empty_cache(batch_size, like) for block in self.blocks]
        return EncoderState(steps=empty, tokens=empty, position=0, blocks=caches)

    def stream(
        self, codes: Tensor, state: EncoderState, speaker: Tensor, emotion: Tensor
    ) -> tuple[Tensor, Tensor, EncoderState]:
        """Feed codes (batch, Q, n * frames_per_step); -> hidden (batch, s, dim) and eot logits
        (batch, s) of every step whose chunk and look-ahead are now complete (s may be 0),
        and the new state."""
        steps = torch.cat((state.steps, self.embed_steps(codes)), dim=1)
        tokens = torch.cat((state.tokens, self.look_ahead(steps)), dim=1)
        keep = min(self.lookahead, steps.shape[1])
        steps = steps[:, steps.shape[1] - keep :]
        ready = tokens.shape[1] // self.chunk * self.chunk
        if ready == 0:
            empty = tokens[:, :0]
            return empty, empty[..., 0], EncoderState(steps, tokens, state.position, state.blocks)
        hidden, logits, caches = self._blocks(
            tokens[:, :ready], state.position, state.blocks, self.conditioning(speaker, emotion)
        )
        rest = EncoderState(steps, tokens[:, ready:], state.position + ready, caches)
        return hidden, logits, rest

    def finish(
        self, state: EncoderState, speaker: Tensor, emotion: Tensor
    ) -> tuple[Tensor, Tensor]:
        """End of stream: the outputs of the remaining steps, with zero look-ahead past the end
        (as the offline zero padding) and a short last chunk."""
        steps = F.pad(state.steps, (0, 0, 0, self.lookahead))
        tokens = torch.cat((state.tokens, self.look_ahead(steps)), dim=1)
        if tokens.shape[1] == 0:
            return tokens, tokens[..., 0]
        hidden, logits, _ = self._blocks(
            tokens, state.position, state.blocks, self.conditioning(speaker, emotion)
        )
        return hidden, logits

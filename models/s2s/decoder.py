"""GPT-style streaming decoder: codec codes of the answer, one step of G frames at a time.

Each decoder position carries the codes of one step (`frames_per_step` = G codec frames x Q
codebooks) under a codebook delay pattern (`models.s2s.delay`): codebook q of step t is
predicted at position t + delays[q], so one position emits the coarse codebook of the newest
step and the finer ones of earlier steps; a step is complete max(delays) positions after it
starts (one, with the presets' partial delay). The input at a
position is the sum of one embedding per (frame, codebook) of the previous position's tokens,
plus the speaker/emotion conditioning vector; parallel output heads (one linear per
(frame, codebook), fused into one matrix) give logits over codes + PAD + EOS.

Why cross-attention to the encoder output rather than a prefix of memory tokens: the
self-attention cache then holds the answer only (short, cheap steps whose cost does not grow
with the user's turn), and the memory's keys/values are projected once, incrementally, while
the user is still speaking (`append_memory`), so the first step after the turn ends only
runs the decoder itself. A prefix would put the whole turn into the self-attention cache and
need a prefill pass over it after the turn ends, on the latency-critical path.

Generation ends when codebook 0 (frame 0) of a step is EOS, or after `max_steps` steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import torch
from torch import Tensor, nn

from models.codec.quiet import QuietCodes
from models.config import S2SConfig
from models.modules.attention import RotaryEmbedding, attend
from models.s2s.answer_draw import AnswerDraw, AnswerStep, guided
from models.s2s.answer_rows import AnswerRows
from models.s2s.conditioning import Conditioning
from models.s2s.delay import (
    TEXT_PAD,
    Vocabulary,
    append_eos,
    apply_delay,
    check_delays,
    shift_right,
    text_inputs,
    text_targets,
    to_steps,
    undo_delay,
)
from models.s2s.kv_cache import DecoderCache, MemoryCache
from models.s2s.piece_signatures import piece_signatures
from models.s2s.sampling import Sampling

MemoryKV = tuple[Tensor, Tensor, Tensor | None]
Stepper = Callable[[Tensor, Tensor | None, Tensor | None], tuple[Tensor, Tensor | None]]
"""One decoder position: (codes, text token) of the previous one and the rows that need the
logits of levels 1.. (None: all) -> (code, text) logits."""

"""A layer's memory keys, values (batch, heads, S, head_dim) and mask (batch, 1, 1, S)."""


class DecoderLayer(nn.Module):
    """Pre-norm block: causal self-attention (RoPE, KV cache), cross-attention to the encoder
    memory, MLP."""

    def __init__(
        self, dim: int, heads: int, mlp_ratio: int, memory_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.heads = heads
        self.dropout_p = dropout
        self.self_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.self_out = nn.Linear(dim, dim, bias=False)
        self.cross_norm = nn.LayerNorm(dim)
        self.cross_q = nn.Linear(dim, dim, bias=False)
        self.cross_kv = nn.Linear(memory_dim, 2 * dim, bias=False)
        self.cross_out = nn.Linear(dim, dim, bias=False)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def project_memory(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder output (batch, S, memory_dim) -> keys, values (batch, heads, S, head_dim)."""
        batch, length, _ = memory.shape
        head_dim = self.cross_q.out_features // self.heads
        kv = self.cross_kv(memory).view(batch, length, 2, self.heads, head_dim)
        kv = kv.permute(2, 0, 3, 1, 4)
        return kv[0], kv[1]

    def forward(
        self,
        x: Tensor,
        rope: RotaryEmbedding,
        positions: Tensor,
        memory: MemoryKV,
        cache: DecoderCache | AnswerRows | None = None,
        index: int = 0,
        self_mask: Tensor | None = None,
    ) -> Tensor:
        """x: (batch, time, dim) at `positions` (time,). Without a cache: causal attention
        within x; with one: x is one position, written to layer `index` of the cache."""
        batch, time, dim = x.shape
        dropout_p = self.dropout_p if self.training else 0.0
        qkv = self.qkv(self.self_norm(x)).view(batch, time, 3, self.heads, -1)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        qk = rope(qkv[:2], positions)
        q, k, v = qk[0], qk[1], qkv[2]
        if cache is None:
            a = attend(q, k, v, causal=True, dropout_p=dropout_p)
        else:
            k, v = cache.write(index, k, v)
            a = attend(q, k, v, mask=self_mask)
        x = x + self.dropout(self.self_out(a.transpose(1, 2).reshape(batch, time, dim)))

        keys, values, mask = memory
        q = self.cross_q(self.cross_norm(x)).view(batch, time, self.heads, -1).transpose(1, 2)
        a = attend(q, keys, values, mask=mask, dropout_p=dropout_p)
        x = x + self.dropout(self.cross_out(a.transpose(1, 2).reshape(batch, time, dim)))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class StreamingDecoder(nn.Module):
    """Answer codes from encoder memory + speaker/emotion, one step (G frames) per position."""

    def __init__(self, config: S2SConfig) -> None:
        super().__init__()
        dec = config.decoder
        if dec.dim % dec.heads:
            raise ValueError(f"decoder dim {dec.dim} is not divisible by {dec.heads} heads")
        self.config = config
        self.vocab = Vocabulary(config.codec.codebook_size)
        self.quantizers = config.codec.num_quantizers
        self.delays = check_delays(config.decoder.codebook_delays, self.quantizers)
        self.max_delay = max(self.delays)
        self.frames_per_step = config.frames_per_step
        self.num_heads = dec.heads
        self.head_dim = dec.dim // dec.heads
        tables = self.quantizers * self.frames_per_step
        self.embeddings = nn.Embedding(tables * self.vocab.size, dec.dim)
        offsets = torch.arange(tables).view(self.quantizers, self.frames_per_step)
        self.register_buffer("offsets", offsets * self.vocab.size, persistent=False)
        self.conditioning = Conditioning(config, dec.dim)
        self.null_condition = nn.Parameter(torch.zeros(dec.dim))
        """The conditioning vector of 'no speaker, no emotion': trained on the examples whose
        conditioning is dropped, used by classifier-free guidance (`generate_stream`)."""
        self.rope = RotaryEmbedding(self.head_dim)
        self.layers = nn.ModuleList(
            DecoderLayer(dec.dim, dec.heads, dec.mlp_ratio, config.encoder.dim, dec.dropout)
            for _ in range(dec.layers)
        )
        self.norm = nn.LayerNorm(dec.dim)
        self.output = nn.Linear(dec.dim, tables * self.vocab.size)
        self.text_vocab = config.text.vocab_size
        self.text_embedding = nn.Embedding(self.text_vocab, dec.dim) if self.text_vocab else None
        """The inner monologue read back: the previous position's text token."""
        self.text_output = nn.Linear(dec.dim, self.text_vocab) if self.text_vocab else None
        """The inner monologue: a text token (a piece, PAD or EPAD) per step."""
        self.text_copy: nn.Linear | None = None
        """With `copy_pieces`: the state -> a piece signature, scored against every piece's
        (`models.s2s.piece_signatures`); zero at start, so it first changes nothing."""
        if config.text.copy_pieces:
            self.text_copy = nn.Linear(dec.dim, config.encoder.dim, bias=False)
            signatures = piece_signatures(self.text_vocab, config.encoder.dim)
            self.register_buffer("piece_signatures", signatures, persistent=False)
        self.apply(_init_weights)
        self.text_read: nn.Linear | None = None
        """With `follow_pieces`: the signature of the piece just said -> the input (zero at
        start)."""
        if config.text.follow_pieces:
            self.text_read = nn.Linear(config.encoder.dim, dec.dim, bias=False)
        for added in (self.text_copy, self.text_read):
            if added is not None:
                nn.init.zeros_(added.weight)

    # -- building blocks -------------------------------------------------------------------

    def embed(self, tokens: Tensor) -> Tensor:
        """Delayed tokens (batch, Q, P, G) -> (batch, P, dim): sum of the (codebook, frame)
        embeddings."""
        return self.embeddings(tokens + self.offsets[:, None, :]).sum(dim=(1, 3))

    def project_codes(self, x: Tensor) -> Tensor:
        """(batch, P, dim) -> logits (batch, Q, P, G, vocab)."""
        batch, positions, _ = x.shape
        logits = self.output(self.norm(x))
        logits = logits.view(batch, positions, self.quantizers, self.frames_per_step, -1)
        return logits.transpose(1, 2)

    def project_step(self, x: Tensor, fine: Tensor | None = None) -> Tensor:
        """One position's hidden states (batch, dim) -> code logits (batch, Q, G, vocab).

        fine: (batch,) bool; when given, the code head's rows of levels 1.. are computed only
        for the rows it marks True, the others' logits of those levels are zero (their slots
        are left out, `AnswerDraw`): the matmul covers level 0 alone for them. An int8 head
        (`models.speed`) always computes every level."""
        if fine is None or not isinstance(self.output, nn.Linear):
            return self.project_codes(x[:, None])[:, :, 0]
        batch = x.shape[0]
        h = self.norm(x)
        coarse = self.frames_per_step * self.vocab.size
        logits = h.new_zeros(batch, self.output.out_features)
        if bool(fine.any()):
            logits[fine] = self.output(h[fine])
        if not bool(fine.all()):
            weight, bias = self.output.weight[:coarse], self.output.bias[:coarse]
            logits[~fine, :coarse] = nn.functional.linear(h[~fine], weight, bias)
        return logits.view(batch, self.quantizers, self.frames_per_step, -1)

    def hidden(
        self,
        inputs: Tensor,
        memory: Tensor,
        condition: Tensor,
        memory_mask: Tensor | None = None,
        input_dropout: float = 0.0,
        text: Tensor | None = None,
    ) -> Tensor:
        """Uncached pass over delayed input tokens (batch, Q, P, G) -> the last hidden states
        (batch, P, dim); `project_codes` and `text_logits` read them out.

        memory: (batch, S, encoder dim); condition: (batch, dim); memory_mask: (batch, S) bool,
        True for real memory steps; text: (batch, P) input text tokens (the previous
        position's), for a decoder with a text stream. In training, `input_dropout` is the
        probability that a position's input codes are dropped (their embedding zeroed; the
        text token and the conditioning kept), so that the decoder cannot lean on the previous
        codes alone (Tacotron's pre-net dropout plays this part there)."""
        x = self.embed(inputs)
        if self.training and input_dropout > 0:
            keep = torch.rand(x.shape[:2], device=x.device) >= input_dropout
            x = x * keep[..., None].to(x.dtype)
        x = x + condition[:, None] + self._embed_text(text, x)
        return self._attend(x, memory, memory_mask)

    def text_hidden(
        self, text: Tensor, memory: Tensor, condition: Tensor, memory_mask: Tensor | None = None
    ) -> Tensor:
        """`hidden` of a text-only answer (`models.train.text_pairs`): the positions read their
        previous text token (batch, P) and the conditioning, and no codes (their embedding is
        zero, as `input_dropout` leaves a dropped position)."""
        x = self._embed_text(text, condition[:, None]) + condition[:, None]
        return self._attend(x, memory, memory_mask)

    def text_step(self, cache: DecoderCache, text: Tensor) -> Tensor:
        """One position of a text-only answer (`text_hidden`, cached): the previous text token
        (batch,) -> text logits (batch, text vocab); advances the cache."""
        cache.check_room()
        x = cache.condition[:, None] + self._embed_text(text[:, None], cache.condition[:, None])
        self_mask = cache.self_mask()
        for index, layer in enumerate(self.layers):
            memory = cache.memory.layer(index, cache.static)
            x = layer(x, self.rope, cache.position, memory, cache, index, self_mask)
        cache.advance()
        return self.text_logits(x)[:, 0]

    def _attend(self, x: Tensor, memory: Tensor, memory_mask: Tensor | None) -> Tensor:
        """The layers over input embeddings x (batch, P, dim), causally, reading `memory`."""
        positions = torch.arange(x.shape[1], device=x.device)
        mask = None if memory_mask is None else memory_mask[:, None, None, :]
        for layer in self.layers:
            keys, values = layer.project_memory(memory)
            x = layer(x, self.rope, positions, (keys, values, mask))
        return x

    def logits(
        self,
        inputs: Tensor,
        memory: Tensor,
        condition: Tensor,
        memory_mask: Tensor | None = None,
        input_dropout: float = 0.0,
        text: Tensor | None = None,
    ) -> Tensor:
        """Code logits (batch, Q, P, G, vocab) of `hidden`'s pass at the same positions."""
        return self.project_codes(
            self.hidden(inputs, memory, condition, memory_mask, input_dropout, text)
        )

    def text_logits(self, hidden: Tensor) -> Tensor:
        """(batch, P, dim) hidden states -> (batch, P, text vocab) text-stream logits."""
        if self.text_output is None:
            raise ValueError("this decoder has no text stream")
        state = self.norm(hidden)
        logits = self.text_output(state)
        if self.text_copy is not None:
            signatures = self.piece_signatures.to(logits.dtype)
            logits = logits + self.text_copy(state).to(logits.dtype) @ signatures.T
        return logits

    def _embed_text(self, text: Tensor | None, like: Tensor) -> Tensor | float:
        """The text tokens' embeddings (batch, P, dim), 0 without a text stream; a decoder
        with one needs them."""
        if self.text_embedding is None:
            if text is not None:
                raise ValueError("this decoder has no text stream")
            return 0.0
        if text is None:
            raise ValueError("this decoder reads its text stream: pass the text tokens")
        embedded = self.text_embedding(text).to(like.dtype)
        if self.text_read is not None:
            signature = self.piece_signatures[text]  # a buffer: the module's float dtype
            embedded = embedded + self.text_read(signature).to(like.dtype)
        return embedded

    def condition(
        self,
        speaker: Tensor,
        emotion: Tensor,
        dropout: float = 0.0,
        null: bool = False,
        voice: Tensor | None = None,
        zero_shot: Tensor | None = None,
    ) -> Tensor:
        """The (batch, dim) conditioning vector; `null_condition` for every example when
        `null`, and in training for each example with probability `dropout` (for
        classifier-free guidance). `voice`, `zero_shot`: rows conditioned on a speaker
        embedding instead of their index (`Conditioning`)."""
        condition = self.conditioning(speaker, emotion, voice, zero_shot)
        if null:
            return self.null_condition.to(condition.dtype).expand_as(condition)
        if self.training and dropout > 0:
            dropped = torch.rand(condition.shape[0], 1, device=condition.device) < dropout
            condition = torch.where(dropped, self.null_condition.to(condition.dtype), condition)
        return condition

    def inputs(self, codes: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Answer codes (batch, Q, F) -> decoder inputs (batch, Q, T + Q, G): EOS appended,
        delay pattern applied, shifted right behind a PAD (BOS) position."""
        steps = append_eos(to_steps(codes, self.frames_per_step), self.vocab, lengths)
        return shift_right(apply_delay(steps, self.vocab.pad, self.delays), self.vocab.pad)

    def targets(self, codes: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Answer codes (batch, Q, F) -> targets (batch, Q, F + G): EOS step appended (at
        `lengths[b]` steps when given, PAD = ignored after it)."""
        steps = append_eos(to_steps(codes, self.frames_per_step), self.vocab, lengths)
        return steps.flatten(2)

    # -- training ------------------------------------------------------------------------

    def forward(
        self,
        codes: Tensor,
        memory: Tensor,
        speaker: Tensor,
        emotion: Tensor,
        memory_mask: Tensor | None = None,
        lengths: Tensor | None = None,
        text: Tensor | None = None,
    ) -> Tensor:
        """Teacher-forced logits (batch, Q, F + G, vocab) for answer codes (batch, Q, F).

        Frame f of the logits predicts frame f of `targets(codes, lengths)`: the F answer
        frames, then one step of G frames whose target is EOS. lengths: (batch,) answer
        lengths in steps, for batches of answers padded to F frames. text: (batch, F // G)
        the answer's text token per step, for a decoder with a text stream."""
        if codes.shape[1] != self.quantizers:
            raise ValueError(f"expected {self.quantizers} codebooks, got {codes.shape[1]}")
        inputs = self.inputs(codes, lengths)
        text_in = None
        if text is not None:
            text_in = text_inputs(text_targets(text, lengths, inputs.shape[2]))
        logits = self.logits(
            inputs, memory, self.conditioning(speaker, emotion), memory_mask, text=text_in
        )
        return undo_delay(logits, self.delays).flatten(2, 3)

    def loss(
        self, logits: Tensor, codes: Tensor, lengths: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Cross-entropy of `forward`'s logits against the codes + EOS (PAD ignored): the mean
        over codebooks, and each codebook's loss (detached) as `codebook_{q}`."""
        targets = self.targets(codes, lengths)
        per_codebook = [
            nn.functional.cross_entropy(
                logits[:, q].flatten(0, 1), targets[:, q].flatten(), ignore_index=self.vocab.pad
            )
            for q in range(self.quantizers)
        ]
        total = torch.stack(per_codebook).mean()
        return total, {f"codebook_{q}": ce.detach() for q, ce in enumerate(per_codebook)}

    # -- streaming inference ---------------------------------------------------------------

    def new_memory(
        self,
        batch: int,
        capacity: int | None = None,
        device: torch.device | str | None = None,
    ) -> MemoryCache:
        """An empty memory cache for `capacity` encoder steps (default: decoder max_steps)."""
        param = self.embeddings.weight  # an embedding: still a tensor under int8
        return MemoryCache.empty(
            len(self.layers),
            batch,
            self.num_heads,
            self.head_dim,
            self.config.decoder.max_steps if capacity is None else capacity,
            device=param.device if device is None else device,
            dtype=param.dtype,
        )

    def append_memory(self, cache: MemoryCache, memory: Tensor, mask: Tensor | None = None) -> None:
        """Project new encoder output (batch, n, encoder dim) into the cache of every layer;
        mask: optional (batch, n) bool, True for real steps."""
        cache.append(*self.memory_kv(memory), mask)

    def memory_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-attention keys and values of encoder output (batch, n, encoder dim) for every
        layer: two (layers, batch, heads, n, head_dim) tensors, ready for MemoryCache.append."""
        projected = [layer.project_memory(memory) for layer in self.layers]
        return torch.stack([k for k, _ in projected]), torch.stack([v for _, v in projected])

    def project_memory(
        self, memory: Tensor, mask: Tensor | None = None, capacity: int | None = None
    ) -> MemoryCache:
        """A memory cache holding the whole encoder output (batch, S, encoder dim)."""
        cache = self.new_memory(memory.shape[0], capacity or memory.shape[1], memory.device)
        self.append_memory(cache, memory, mask)
        return cache

    def new_cache(
        self,
        memory: MemoryCache,
        speaker: Tensor,
        emotion: Tensor,
        capacity: int | None = None,
        static: bool = False,
        null: bool = False,
    ) -> DecoderCache:
        """An empty answer cache for `capacity` positions (default: the positions of a
        max_steps answer, max_steps + max(delays)). `static` keeps step shapes fixed (CUDA
        graphs); `null` conditions it on `null_condition` (the unconditioned pass of
        classifier-free guidance)."""
        positions = self.config.decoder.max_steps + self.max_delay
        return DecoderCache.empty(
            memory,
            self.condition(speaker, emotion, null=null),
            self.num_heads,
            positions if capacity is None else capacity,
            static=static,
        )

    def answer_rows(self, rows: int = 4, max_steps: int | None = None) -> AnswerRows:
        """Empty caches for answers stepped together (`AnswerRows`), each of up to
        `max_steps` steps (default: the decoder's)."""
        param = self.embeddings.weight  # an embedding: still a tensor under int8
        steps = self.config.decoder.max_steps if max_steps is None else max_steps
        return AnswerRows(
            len(self.layers),
            self.num_heads,
            self.head_dim,
            self.null_condition.shape[0],
            steps + self.max_delay,
            dtype=param.dtype,
            device=param.device,
            rows=rows,
        )

    def answer_conditions(self, speaker: Tensor, emotion: Tensor, guidance: float) -> Tensor:
        """The conditioning rows of one answer: (1, dim), or (2, dim) with guidance (the
        conditioned row, then the unconditioned one)."""
        condition = self.condition(speaker, emotion)
        if guidance == 1:
            return condition
        return torch.cat([condition, self.condition(speaker, emotion, null=True)])

    def step(self, cache: DecoderCache, tokens: Tensor, text: Tensor | None = None) -> Tensor:
        """Run one position: tokens (batch, Q, G) of the previous position (all PAD at
        position 0), and its text token (batch,) for a decoder with a text stream -> code
        logits (batch, Q, G, vocab); advances the cache."""
        return self.step_logits(cache, tokens, text)[0]

    def step_logits(
        self,
        cache: DecoderCache | AnswerRows,
        tokens: Tensor,
        text: Tensor | None = None,
        fine: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """`step`, returning the text-stream logits (batch, text vocab) too (None without a
        text stream); `fine` (batch,) bool limits the logits of levels 1.. to the rows it
        marks (`project_step`)."""
        cache.check_room()
        x = self.embed(tokens[:, :, None]) + cache.condition[:, None]
        x = x + self._embed_text(None if text is None else text[:, None], x)
        self_mask = cache.self_mask()
        for index, layer in enumerate(self.layers):
            memory = cache.memory.layer(index, cache.static)
            x = layer(x, self.rope, cache.position, memory, cache, index, self_mask)
        cache.advance()
        text_logits = None if self.text_output is None else self.text_logits(x)[:, 0]
        return self.project_step(x[:, 0], fine), text_logits

    def generate_stream(
        self,
        memory: Tensor | MemoryCache,
        speaker: Tensor,
        emotion: Tensor,
        sampling: Sampling,
        generator: torch.Generator | None = None,
        max_steps: int | None = None,
        memory_mask: Tensor | None = None,
        use_cuda_graph: bool = False,
        quiet: QuietCodes | None = None,
    ) -> Iterator[Tensor]:
        """The codes (batch, Q, G) of each step of `generate_steps` (the text dropped)."""
        steps = self.generate_steps(
            memory,
            speaker,
            emotion,
            sampling,
            generator,
            max_steps,
            memory_mask,
            use_cuda_graph,
            quiet,
        )
        return (step.codes for step in steps)

    def generate_steps(
        self,
        memory: Tensor | MemoryCache,
        speaker: Tensor,
        emotion: Tensor,
        sampling: Sampling,
        generator: torch.Generator | None = None,
        max_steps: int | None = None,
        memory_mask: Tensor | None = None,
        use_cuda_graph: bool = False,
        quiet: QuietCodes | None = None,
    ) -> Iterator[AnswerStep]:
        """Yield each answer step as soon as all its codebooks exist (the first after
        max(delays) + 1 positions), until every sample's EOS or `max_steps` steps: its codes
        (batch, Q, G) and, with a text stream, its text token (batch,).

        memory: encoder output (batch, S, encoder dim), or a `MemoryCache` already filled with
        `append_memory` during the user's turn (it may keep growing while this runs).
        sampling: temperature (0 is greedy), top_k, guidance (`models.s2s.sampling`); every
        draw comes from `generator` (on the decoder's device), which a sampling that is not
        greedy needs: never torch's global random state. A sample that ended before the
        others yields its EOS step, then PAD steps (tokens >= codebook_size, text PAD).
        The text token of a step is drawn at the position of its coarse codes, with
        `sampling.text_temperature` (0: greedy), among pieces, PAD and EPAD.
        use_cuda_graph replays the step as a captured CUDA graph (CUDA only).
        quiet: the codec's quiet level-0 codes (`TeluCodec.quiet_codes`); when given, the finer
        levels of a step whose level-0 codes are all quiet are neither computed nor drawn: they
        are PAD in the step's codes (decode the step without them, `levels_present`).

        sampling.guidance: classifier-free guidance on the speaker/emotion conditioning. Above
        1 every position also runs under the null conditioning (a second answer cache, the
        same memory) and samples from unconditioned + guidance x (conditioned - unconditioned)
        logits: twice the decoder compute per step, for answers that keep to the requested
        voice and emotion. Needs a decoder trained with condition dropout."""
        max_steps = self.config.decoder.max_steps if max_steps is None else max_steps
        if sampling.top_k is not None and sampling.top_k > self.vocab.size:
            raise ValueError(f"top_k must be in [1, {self.vocab.size}]")
        sampling.check_generator(generator)
        if max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        if isinstance(memory, MemoryCache):
            if memory_mask is not None:
                raise ValueError("pass the mask of a MemoryCache to append_memory")
            if memory.length == 0:
                raise ValueError("the decoder needs at least one memory step")
            device = memory.keys.device
        else:
            device = memory.device
        if use_cuda_graph and torch.device(device).type != "cuda":
            raise ValueError("CUDA graphs need the decoder and memory on a CUDA device")
        return self._generate(
            memory,
            speaker,
            emotion,
            sampling,
            generator,
            max_steps,
            memory_mask,
            use_cuda_graph,
            quiet,
        )

    def _stepper(self, cache: DecoderCache, use_cuda_graph: bool) -> Stepper:
        return CudaGraphStep(self, cache) if use_cuda_graph else partial(self.step_logits, cache)

    @torch.inference_mode()
    def _generate(
        self,
        memory: Tensor | MemoryCache,
        speaker: Tensor,
        emotion: Tensor,
        sampling: Sampling,
        generator: torch.Generator | None,
        max_steps: int,
        memory_mask: Tensor | None,
        use_cuda_graph: bool,
        quiet: QuietCodes | None,
    ) -> Iterator[AnswerStep]:
        if isinstance(memory, Tensor):
            memory = self.project_memory(memory, memory_mask)
        positions = max_steps + self.max_delay
        cache = self.new_cache(memory, speaker, emotion, positions, static=use_cuda_graph)
        step = self._stepper(cache, use_cuda_graph)
        guidance = sampling.guidance
        if guidance != 1:
            free = self.new_cache(memory, speaker, emotion, positions, use_cuda_graph, null=True)
            conditioned, unconditioned = step, self._stepper(free, use_cuda_graph)

            def step(
                tokens: Tensor, text: Tensor | None, fine: Tensor | None
            ) -> tuple[Tensor, Tensor | None]:
                base, base_text = unconditioned(tokens, text, fine)
                codes, words = conditioned(tokens, text, fine)
                if words is not None and base_text is not None:
                    words = guided(base_text, words, guidance)
                return guided(base, codes, guidance), words

        draw = AnswerDraw(
            self, memory.batch, sampling, generator, max_steps, cache.keys.device, quiet
        )
        while not draw.over:
            answer_step = draw.take(*step(*draw.inputs(), draw.needs_fine()))
            if answer_step is not None:
                yield answer_step


class CudaGraphStep:
    """`StreamingDecoder.step_logits` on a static cache, captured once as a CUDA graph and
    replayed for every position (no per-kernel launch overhead)."""

    def __init__(self, decoder: StreamingDecoder, cache: DecoderCache, warmup: int = 3) -> None:
        if not cache.keys.is_cuda or not cache.static:
            raise ValueError("CUDA graphs need a static cache on a CUDA device")
        if cache.capacity < warmup:
            raise ValueError(f"the cache needs at least {warmup} positions to warm up")
        self.cache = cache
        batch, device = cache.memory.batch, cache.keys.device
        self.tokens = torch.full(
            (batch, decoder.quantizers, decoder.frames_per_step),
            decoder.vocab.pad,
            dtype=torch.long,
            device=device,
        )
        self.text = (
            torch.full((batch,), TEXT_PAD, dtype=torch.long, device=device)
            if decoder.text_output is not None
            else None
        )
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                decoder.step_logits(cache, self.tokens, self.text)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = decoder.step_logits(cache, self.tokens, self.text)
        cache.reset()

    def __call__(
        self, tokens: Tensor, text: Tensor | None = None, fine: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Same as `decoder.step_logits(cache, tokens, text)`, every level computed whatever
        `fine` says (the graph's shapes are fixed); the returned logits are overwritten by the
        next call."""
        self.cache.check_room()
        self.tokens.copy_(tokens)
        if self.text is not None and text is not None:
            self.text.copy_(text)
        self.graph.replay()
        self.cache.length += 1
        return self.logits


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)

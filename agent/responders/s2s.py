"""The S2S responder: TeluCodec codes -> streaming Conformer encoder while the user speaks;
at the end of the turn the GPT decoder answers in the call's speaker and emotion, and each
decoded step is played as soon as it exists (the first audio leaves before the answer is
complete).

A zero-shot voice (`CallOptions.voice`, or `use_voice` during the call) conditions the
decoder's answers through its zero-shot path (a (1, 256) float speaker embedding in place of
the named voice's index); the encoder, which hears the user, stays conditioned on the named
voice for the whole call, so a voice taken mid-call does not change what it has heard.

With text streams (`config.text`), every window also streams through the recognizer
(`TurnHearing`): its words are the captions of the user's turn (`heard`) and, at the end of the
turn, the pieces of the user text stream in the decoder's memory; the decoder's own text
tokens, decoded as they come, are the answer's captions (`said`).

Answers are sampled with settings fixed when the responder is built, from a random state each
call owns (a `torch.Generator`, seeded from `seed` or fresh entropy): never torch's global
one, which the worker threads of all calls would share."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from agent.responders.answering import Answer, AnsweringThread
from agent.responders.base import (
    AnswerAhead,
    CallOptions,
    Responder,
    ResponderSession,
    UserTurn,
)
from agent.responders.codec import CodeRecorder, encode_windows
from agent.responders.hearing import TurnHearing
from models.controls import emotion_id, speaker_id
from models.loading import Models
from models.s2s.delay import TEXT_PAD
from models.s2s.encoder import EncoderState
from models.s2s.kv_cache import MemoryCache
from models.s2s.sampling import ANSWERS, Sampling
from models.s2s.user_text import user_pieces
from models.text.tokenizer import EPAD, Tokenizer

KEEP_S = 60.0
"""Encoder outputs kept for the turns to come (a turn longer than this is cut)."""
MAX_ANSWER_S = 8.0
"""Longest answer by default; an untrained decoder never says end-of-answer."""


class S2SSession(ResponderSession):
    def __init__(
        self,
        models: Models,
        options: CallOptions,
        sampling: Sampling,
        generator: torch.Generator,
        max_answer_s: float,
        answering: AnsweringThread,
    ) -> None:
        self._models = models
        self._answering = answering
        """Steps this call's answers with those of the other calls."""
        self._recorder = CodeRecorder(models.codec)
        self._speaker = torch.tensor([speaker_id(options.speaker)])
        """The named voice: the encoder's conditioning, and the answers' without a voice."""
        self._emotion = torch.tensor([emotion_id(options.emotion)])
        self._voice: Tensor | None = None
        """The zero-shot voice (1, 256) the answers take instead, once there is one."""
        if options.voice is not None:
            self.use_voice(options.voice)
        self._sampling = sampling
        self._generator = generator
        """The call's own random state: its answers' draws, turn after turn."""
        self._max_steps = max(1, int(max_answer_s * 1000 / models.config.step_ms))
        self._group = models.config.frames_per_step
        self._pending = torch.zeros(models.codec.config.num_quantizers, 0, dtype=torch.long)
        """Codes of frames not yet making a whole step."""
        self._encoder_state = models.encoder.init_state(1)
        self._keep_steps = int(KEEP_S * 1000 / models.config.step_ms)
        self._memory: deque[tuple[int, torch.Tensor, torch.Tensor]] = deque()
        """(first step, keys, values) of the decoder's cross-attention memory, projected from
        the encoder output as the user speaks, so nothing long runs after the turn ends."""
        self._steps = 0
        """Steps encoded since the call began."""
        self._eot_prob: float | None = None
        """End-of-turn probability of the latest encoded step."""
        recognizer = models.recognizer if models.config.text.enabled else None
        self._hearing = None if recognizer is None else TurnHearing(recognizer)
        self._said: AnswerText | None = None
        """The words of the answer in progress, or of the last one."""

    def hear(self, window: np.ndarray, start_sample: int) -> float | None:
        return hear_calls([self], [window], [start_sample])[0]

    def _steps_to_encode(self, codes: Tensor) -> Tensor | None:
        """The codes (1, Q, frames) of the whole steps now complete (the rest kept back)."""
        codes = torch.cat([self._pending, codes], dim=1)
        usable = codes.shape[1] // self._group * self._group
        self._pending = codes[:, usable:]
        return codes[None, :, :usable] if usable else None

    def _encoded(
        self,
        hidden: Tensor,
        eot_logits: Tensor,
        state: EncoderState,
        kv: tuple[Tensor, Tensor] | None,
    ) -> None:
        """The encoder's output (1, s, dim) of new steps, their eot logits (1, s), its new
        state and the decoder memory projected from the output."""
        self._encoder_state = state
        if hidden.shape[1] == 0:  # waiting for its chunk or look-ahead
            return
        self._eot_prob = float(torch.sigmoid(eot_logits[0, -1].float()))
        assert kv is not None
        self._remember(*kv)

    def _remember(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Keep the projected memory of new steps; forget what is older than KEEP_S."""
        self._memory.append((self._steps, keys, values))
        self._steps += keys.shape[3]
        while self._memory and self._memory[0][0] < self._steps - self._keep_steps:
            self._memory.popleft()

    def use_voice(self, embedding: np.ndarray) -> None:
        size = self._models.config.speaker_embedding_dim
        if embedding.shape != (size,):
            raise ValueError(f"a speaker embedding has {size} values, not {embedding.shape}")
        dtype = self._models.decoder.null_condition.dtype  # the decoder's compute dtype
        self._voice = torch.as_tensor(embedding, dtype=dtype)[None]

    def answer_speaker(self) -> Tensor:
        """The speaker the next answer is conditioned on: the zero-shot voice (1, 256) once
        there is one, else the named voice's index (1,)."""
        return self._speaker if self._voice is None else self._voice

    def heard(self) -> str | None:
        return None if self._hearing is None else self._hearing.heard()

    def recognizer_output(self) -> Tensor | None:
        return None if self._hearing is None else self._hearing.latest_output()

    def said(self) -> str | None:
        return None if self._said is None else self._said.text

    def respond(self, turn: UserTurn) -> Iterator[np.ndarray]:
        words = self._user_words(turn, take=True)
        said = self._new_said()
        memory = self._turn_memory(turn, words)
        if memory is None:
            return
        answer = self._answering.start(
            memory,
            self.answer_speaker(),
            self._emotion,
            self._sampling,
            self._generator,
            self._max_steps,
        )
        yield from self._read(answer, said)

    def respond_ahead(self, turn: UserTurn) -> AnswerAhead | None:
        words = self._user_words(turn, take=False)
        memory = self._turn_memory(turn, words)
        if memory is None:
            return None
        generator = _copy(self._generator)  # the session's own draws stay as they are
        speaker = self.answer_speaker()
        said = AnswerText(self._models.tokenizer)
        answer = self._answering.start(
            memory, speaker, self._emotion, self._sampling, generator, self._max_steps, held=True
        )

        def commit() -> bool:
            if speaker is not self.answer_speaker() or not _same(
                words, self._user_words(turn, take=False)
            ):
                return False  # a voice taken, or words recognised, since it started
            self._user_words(turn, take=True)
            self._generator, self._said = generator, said
            self._answering.release(answer)
            return True

        return AnswerAhead(self._read(answer, said), commit)

    def _read(self, answer: Answer, said: AnswerText | None) -> Iterator[np.ndarray]:
        """The answer's chunks, its text stream's pieces kept in `said` as they come."""
        try:
            for pcm, step in answer.read():
                if step.text is not None and said is not None:
                    said.add(int(step.text[0]))
                yield pcm
        finally:
            self._answering.cancel(answer)  # barge-in, hang-up or discarded: its rows go back

    def _new_said(self) -> AnswerText | None:
        """The next answer's words, empty (None without text streams)."""
        if self._hearing is None or self._models.tokenizer is None:
            return None
        self._said = AnswerText(self._models.tokenizer)
        return self._said

    def _user_words(self, turn: UserTurn, take: bool) -> Tensor | None:
        """The pieces (1, n) of the words heard in the turn (None without text streams);
        take: the turn's words are used (the next window starts the next turn's)."""
        if self._hearing is None or self._models.tokenizer is None:
            return None
        hearing = self._hearing
        span = (turn.start_sample, turn.end_sample)
        words = hearing.take_turn(*span) if take else hearing.words_in(*span)
        heard = " ".join(word for word, _ in words)
        limit = self._models.config.text.max_user_tokens
        return user_pieces(self._models.tokenizer, heard, limit)[None]

    def _turn_memory(self, turn: UserTurn, words: Tensor | None) -> MemoryCache | None:
        """The projected memory of the turn's steps and of its words' pieces (text streams),
        or None when no step is kept."""
        step_samples = self._recorder.hop * self._group
        kept = tuple(self._memory)  # at once: the listening thread appends as the call goes on
        first = turn.start_sample // step_samples
        end = -(-turn.end_sample // step_samples)
        parts = [
            (
                keys[:, :, :, max(first - start, 0) : end - start],
                values[:, :, :, max(first - start, 0) : end - start],
            )
            for start, keys, values in kept
            if start < end and start + keys.shape[3] > first
        ]
        if not parts:
            return None
        user_text = self._models.encoder.user_text
        if words is not None and words.shape[1] and user_text is not None:
            with torch.inference_mode():
                parts.append(self._models.decoder.memory_kv(user_text(words)))
        keys = torch.cat([k for k, _ in parts], dim=3)
        values = torch.cat([v for _, v in parts], dim=3)
        cache = self._models.decoder.new_memory(1, keys.shape[3], keys.device)
        cache.append(keys, values)
        return cache


class AnswerText:
    """The words of one answer: its text stream's pieces, decoded as they come."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._pieces: list[int] = []
        self.text = ""

    def add(self, piece: int) -> None:
        if piece not in (TEXT_PAD, EPAD):
            self._pieces.append(piece)
            self.text = self._tokenizer.decode(self._pieces)


def _copy(generator: torch.Generator) -> torch.Generator:
    """A generator in the same state, drawing apart from `generator`."""
    copy = torch.Generator(generator.device)
    copy.set_state(generator.get_state())
    return copy


def _same(a: Tensor | None, b: Tensor | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))


def hear_calls(
    sessions: list[S2SSession], windows: list[np.ndarray], starts: list[int]
) -> list[float | None]:
    """The next window of each call (sessions of one set of models): the recognizer per call,
    then the codec, the encoder and the decoder's memory projection as batches of the calls
    whose streams stand alike (the same number of new frames, the same state lengths).
    Returns each call's end-of-turn probability."""
    for session, window, start in zip(sessions, windows, starts, strict=True):
        if session._hearing is not None:
            session._hearing.hear(window, start)
    codes = encode_windows([s._recorder for s in sessions], windows)
    groups: dict[tuple[int, ...], list[tuple[S2SSession, Tensor]]] = {}
    for session, new in zip(sessions, codes, strict=True):
        steps = session._steps_to_encode(new)
        if steps is not None:
            key = (steps.shape[2], *session._encoder_state.shape_key())
            groups.setdefault(key, []).append((session, steps))
    with torch.inference_mode():
        for group in groups.values():
            models = group[0][0]._models
            state = EncoderState.stack([s._encoder_state for s, _ in group])
            hidden, eot_logits, state = models.encoder.stream(
                torch.cat([steps for _, steps in group]),
                state,
                torch.cat([s._speaker for s, _ in group]),
                torch.cat([s._emotion for s, _ in group]),
            )
            keys, values = models.decoder.memory_kv(hidden) if hidden.shape[1] else (None, None)
            for i, ((session, _), row_state) in enumerate(zip(group, state.rows(), strict=True)):
                kv = (keys[:, i : i + 1], values[:, i : i + 1]) if keys is not None else None
                session._encoded(hidden[i : i + 1], eot_logits[i : i + 1], row_state, kv)
    return [s._eot_prob for s in sessions]


class S2SResponder(Responder):
    """Factory of S2SSession around one shared set of models.

    seed: every call's answers are drawn from a generator seeded with it (the same audio gets
    the same answers, for tests and measurements); None seeds each call from fresh entropy.
    fewer_levels: leave out the finer codec levels of the answers' silent steps (neither
    computed nor drawn, `models.s2s.answer_draw`); False computes every level."""

    name = "s2s"
    has_eot_head = True
    clones_voices = True

    def __init__(
        self,
        models: Models,
        sampling: Sampling = ANSWERS,
        max_answer_s: float = MAX_ANSWER_S,
        seed: int | None = None,
        fewer_levels: bool = True,
    ) -> None:
        self.models = models
        encoder = models.config.encoder
        step_samples = models.codec.config.hop * models.config.frames_per_step
        steps = models.config.steps(encoder.chunk_ms) + models.config.steps(encoder.lookahead_ms)
        self.lookahead_samples = (steps + 1) * step_samples  # +1: a step cut by the turn's end
        self.sampling = sampling
        self.max_answer_s = max_answer_s
        self.seed = seed
        self.quiet = models.codec.quiet_codes if fewer_levels else None
        self.hears_words = models.recognizer is not None
        """The codec's quiet codes when silent steps leave their finer levels out."""

    def open(self, options: CallOptions) -> ResponderSession:
        return S2SSession(
            self.models,
            options,
            self.sampling,
            self._generator(),
            self.max_answer_s,
            self.answering,
        )

    @cached_property
    def answering(self) -> AnsweringThread:
        """The thread that steps the answers of all calls as one batch (started with the
        first call)."""
        return AnsweringThread(self.models, self.models.config.step_ms / 1000, quiet=self.quiet)

    def hear_batch(
        self, sessions: list[ResponderSession], windows: list[np.ndarray], starts: list[int]
    ) -> list[float | None]:
        return hear_calls([_own(s) for s in sessions], windows, starts)

    def _generator(self) -> torch.Generator:
        """A new call's random state, on the decoder's device."""
        generator = torch.Generator(next(self.models.decoder.parameters()).device)
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        return generator


def _own(session: ResponderSession) -> S2SSession:
    if not isinstance(session, S2SSession):
        raise TypeError(f"not a session of this responder: {type(session).__name__}")
    return session

"""The process's answering thread: the answers of every call, stepped as one batch.

An S2S call's `respond` hands its turn's memory here and reads the answer's chunks as they
come. One thread keeps the caches of all answers in progress as rows of one batch
(`models.s2s.answer_rows`), runs one decoder step for all of them at a time, draws each
answer's tokens from its own logits with the call's own generator (`AnswerDraw`), decodes the
completed steps of all answers through the codec as one batch, and hands each call its chunk.

Pacing: an answer is *hungry* while it is less than `lead_s` ahead of real time (counted from
its first chunk), and a new answer is hungry until its first `lead_s` exist. The thread steps
while any answer is hungry and sleeps otherwise, so answers are generated at the pace they
are played with a little in hand, and a new answer's first chunk waits only for the step in
progress. Every answer in the batch advances with each step (the rows stay in lock step); one
ahead of its pace is simply further ahead, within its `max_steps`. An answer started ahead of
its turn's end (`held`) is hungry only until its first `lead_s` exist, then waits, costing
nothing, until `release` paces it from then on like any other, or `cancel` drops it.

With the codec's quiet codes (`quiet`), each answer leaves out the finer levels of its silent
steps (`models.s2s.answer_draw`): the decoder computes those levels' logits only for the rows
whose answers need them, and the codec decodes the left-out frames from level 0.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from agent.process.exit_stop import stop_at_exit
from models.codec.codec import DecoderState
from models.codec.quiet import QuietCodes
from models.loading import Models
from models.s2s.answer_draw import AnswerDraw, AnswerStep, guided, levels_present
from models.s2s.answer_rows import RowsHandle
from models.s2s.kv_cache import MemoryCache
from models.s2s.sampling import Sampling

log = logging.getLogger(__name__)

ANSWER_THREAD_NAME = "batched-answering"
LEAD_S = 0.3
"""How far ahead of real time an answer is generated before the thread rests."""
_END = object()


@dataclass(eq=False)
class Answer:
    """One call's answer in progress, as the thread and the call's reader share it."""

    draw: AnswerDraw
    guidance: float
    memory: MemoryCache
    conditions: Tensor
    chunks: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    """(pcm, step) of each step, then _END (or the exception that ended it)."""
    handle: RowsHandle | None = None
    codec_state: DecoderState | None = None
    produced: int = 0
    first_at: float | None = None
    cancelled: bool = False
    held: bool = False
    """Started ahead of its turn's end: generate the lead only, until released."""

    def read(self) -> Iterator[tuple[np.ndarray, AnswerStep]]:
        """The answer's chunks (16 kHz PCM) with their steps, each as soon as it exists."""
        while True:
            item = self.chunks.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class AnsweringThread:
    """Steps the answers of all calls of one set of models as one batch, on one thread."""

    def __init__(
        self,
        models: Models,
        step_s: float,
        lead_s: float = LEAD_S,
        quiet: QuietCodes | None = None,
    ) -> None:
        """quiet: the codec's quiet level-0 codes, to leave out the finer levels of silent
        steps; None computes and draws every level."""
        self._models = models
        self._quiet = quiet
        self._step_s = step_s
        self._lead_steps = max(1, round(lead_s / step_s))
        self._rows = models.decoder.answer_rows()
        self._answers: list[Answer] = []
        """In row order: the answers the thread steps."""
        self._arriving: list[Answer] = []
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=ANSWER_THREAD_NAME, daemon=True)
        self._thread.start()
        stop_at_exit(self)

    def stop(self) -> None:
        """End the thread; the answers in progress end too."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def start(
        self,
        memory: MemoryCache,
        speaker: Tensor,
        emotion: Tensor,
        sampling: Sampling,
        generator: torch.Generator | None,
        max_steps: int,
        held: bool = False,
    ) -> Answer:
        """Begin an answer from a call's turn memory (batch 1); read it with `Answer.read`.
        held: only its first lead_s until `release`."""
        decoder = self._models.decoder
        if max_steps + decoder.max_delay > self._rows.positions_per_row:
            raise ValueError(f"answers are limited to {decoder.config.decoder.max_steps} steps")
        sampling.check_generator(generator)
        with torch.inference_mode():
            conditions = decoder.answer_conditions(speaker, emotion, sampling.guidance)
        device = memory.keys.device
        draw = AnswerDraw(decoder, 1, sampling, generator, max_steps, device, self._quiet)
        answer = Answer(draw, sampling.guidance, memory, conditions, held=held)
        with self._wake:
            self._arriving.append(answer)
            self._wake.notify()
        return answer

    def release(self, answer: Answer) -> None:
        """A held answer is to be played: from now on it is paced like the others."""
        with self._wake:
            answer.held = False
            answer.first_at = time.monotonic()
            self._wake.notify()

    def cancel(self, answer: Answer) -> None:
        """Stop an answer (barge-in, hang-up); its rows are freed before the next step."""
        with self._wake:
            answer.cancelled = True
            self._wake.notify()

    @property
    def answers(self) -> int:
        """Answers in progress."""
        with self._wake:
            return len(self._answers) + len(self._arriving)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._hungry() and not self._stopped:
                    self._wake.wait(timeout=self._rest_s())
                if self._stopped:
                    for answer in self._answers + self._arriving:
                        answer.chunks.put(_END)
                    return
                arriving, self._arriving = self._arriving, []
            try:
                with torch.inference_mode():
                    self._admit(arriving)
                    self._drop([a for a in self._answers if a.cancelled])
                    if self._answers:
                        self._step()
            except Exception as err:  # every answer in the batch ends with the error
                log.exception("batched answer step failed")
                for answer in self._answers:
                    answer.chunks.put(err)
                self._drop(list(self._answers))

    def _hungry(self) -> bool:
        if self._arriving or any(a.cancelled for a in self._answers):
            return True
        now = time.monotonic()
        return any(self._wanted(a, now) > a.produced for a in self._answers)

    def _wanted(self, answer: Answer, now: float) -> int:
        """Steps the answer should have by now: its lead, plus real time since it began."""
        if answer.first_at is None or answer.held:
            return self._lead_steps
        return self._lead_steps + int((now - answer.first_at) / self._step_s) + 1

    def _rest_s(self) -> float | None:
        """How long the thread may sleep before some answer falls below its lead (None: until
        woken; a held answer that has its lead needs nothing more)."""
        paced = [a for a in self._answers if not a.held]
        if not paced:
            return None
        now = time.monotonic()
        starts = [a.first_at for a in paced if a.first_at is not None]
        if len(starts) < len(paced):
            return 0.0
        soonest = min(
            start + (a.produced - self._lead_steps) * self._step_s
            for start, a in zip(starts, paced, strict=True)
        )
        return max(0.0, soonest - now)

    def _admit(self, arriving: list[Answer]) -> None:
        for answer in arriving:
            if answer.cancelled:
                answer.chunks.put(_END)
                continue
            answer.handle = self._rows.add(answer.memory, answer.conditions)
            self._answers.append(answer)

    def _drop(self, answers: list[Answer]) -> None:
        for answer in answers:
            assert answer.handle is not None
            self._rows.remove(answer.handle)
            self._answers.remove(answer)
            answer.chunks.put(_END)

    def _step(self) -> None:
        """One decoder position for every answer; the codec for those that completed a step."""
        decoder = self._models.decoder
        inputs = [a.draw.inputs() for a in self._answers]
        counts = [a.conditions.shape[0] for a in self._answers]
        tokens = torch.cat([t.expand(n, -1, -1) for (t, _), n in zip(inputs, counts, strict=True)])
        texts = [t for _, t in inputs]
        text = None
        if texts[0] is not None:
            text = torch.cat([t.expand(n) for t, n in zip(texts, counts, strict=True)])
        logits, text_logits = decoder.step_logits(self._rows, tokens, text, self._fine(counts))
        done: list[tuple[Answer, AnswerStep]] = []
        over: list[Answer] = []
        for answer in self._answers:
            assert answer.handle is not None
            rows = slice(answer.handle.first, answer.handle.first + answer.handle.count)
            codes, words = _combined(logits[rows], _rows(text_logits, rows), answer.guidance)
            step = answer.draw.take(codes, words)
            if step is not None:
                done.append((answer, step))
            if answer.draw.over:
                over.append(answer)
        if done:
            self._decode(done)
        self._drop(over)

    def _fine(self, counts: list[int]) -> Tensor | None:
        """The rows whose answers need the logits of levels 1.. at this step (None: all)."""
        needs = [a.draw.needs_fine() for a in self._answers]
        if all(n is None for n in needs):
            return None
        device = self._rows.row_positions.device
        return torch.cat(
            [
                torch.ones(n, dtype=torch.bool, device=device) if need is None else need.expand(n)
                for need, n in zip(needs, counts, strict=True)
            ]
        )

    def _decode(self, done: list[tuple[Answer, AnswerStep]]) -> None:
        codec = self._models.codec
        codes = torch.cat([step.codes for _, step in done])
        if any(a.codec_state is None for a, _ in done):
            like = codec.quantizer.decode(codes[:1, :1, :1])  # the latents' dtype and device
            for answer, _ in done:
                answer.codec_state = answer.codec_state or codec.initial_decoder_state(1, like)
        states = DecoderState.stack([a.codec_state for a, _ in done])
        present = levels_present(codes, self._models.decoder.vocab)
        pcm, state = codec.decode_stream(codes, states, present)
        now = time.monotonic()
        for (answer, step), row_pcm, row_state in zip(done, pcm, state.rows(), strict=True):
            answer.codec_state = row_state
            answer.produced += 1
            if answer.first_at is None:
                answer.first_at = now
            answer.chunks.put((row_pcm.numpy(), step))


def _rows(logits: Tensor | None, rows: slice) -> Tensor | None:
    return None if logits is None else logits[rows]


def _combined(
    logits: Tensor, text_logits: Tensor | None, guidance: float
) -> tuple[Tensor, Tensor | None]:
    """One answer's logits from its rows: as they are, or guided (conditioned row first)."""
    if guidance == 1:
        return logits, text_logits
    codes = guided(logits[1:2], logits[0:1], guidance)
    if text_logits is None:
        return codes, None
    return codes, guided(text_logits[1:2], text_logits[0:1], guidance)

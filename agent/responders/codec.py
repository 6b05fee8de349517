"""The codec responder: the parrot, through TeluCodec — each turn comes back encoded to codes
while the user speaks and decoded frame by frame, so a user hears what the codec does to
their voice."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from agent.responders.base import CallOptions, Responder, ResponderSession, UserTurn
from models.codec import TeluCodec
from models.codec.codec import EncoderState
from models.loading import Models

DECODE_FRAMES = 4
"""Frames decoded per answer chunk (20 ms at 200 frames/s)."""
LEAD_IN_LEVEL = 0.01
"""Leading answer chunks quieter than this (-40 dBFS) are not played back."""


class CodeRecorder:
    """Encodes a call's 16 kHz stream with TeluCodec as it arrives; keeps the recent codes."""

    def __init__(self, codec: TeluCodec, keep_s: float = 30.0) -> None:
        self.codec = codec
        self.hop = codec.config.hop
        self._state: EncoderState | None = None
        self._pending = np.zeros(0, dtype=np.float32)
        self._keep = int(keep_s * codec.config.frame_rate_hz)
        self._codes = torch.zeros(codec.config.num_quantizers, self._keep, dtype=torch.long)
        self.frames = 0
        """Frames encoded so far (frame i covers samples [i*hop, (i+1)*hop))."""

    def hear(self, window: np.ndarray) -> torch.Tensor:
        """Encode the whole frames now available; returns their codes (Q, n)."""
        return encode_windows([self], [window])[0]

    def take_frames(self, window: np.ndarray) -> np.ndarray:
        """The samples of the whole frames the window completes (kept back: the rest)."""
        pcm = np.concatenate([self._pending, window])
        usable = len(pcm) // self.hop * self.hop
        self._pending = pcm[usable:]
        return pcm[:usable]

    def state(self, like: torch.Tensor) -> EncoderState:
        """The codec's stream state of this call (fresh before its first frame)."""
        return self._state or self.codec.initial_encoder_state(1, like)

    def record(self, codes: torch.Tensor, state: EncoderState) -> None:
        """Keep the codes (Q, n) of the frames just encoded and the stream's new state."""
        self._state = state
        for i in range(codes.shape[1]):
            self._codes[:, (self.frames + i) % self._keep] = codes[:, i]
        self.frames += codes.shape[1]

    def empty_codes(self) -> torch.Tensor:
        """(Q, 0): the codes of a window that completes no frame."""
        return self._codes[:, :0]

    def codes(self, first: int, end: int) -> torch.Tensor:
        """Codes of frames [first, end) still kept, as (Q, n)."""
        first = max(first, self.frames - self._keep, 0)
        end = min(end, self.frames)
        index = torch.arange(first, max(first, end)) % self._keep
        return self._codes[:, index]


def encode_windows(recorders: list[CodeRecorder], windows: list[np.ndarray]) -> list[torch.Tensor]:
    """Each call's next window through the codec (the recorders of calls sharing one codec):
    the calls with the same number of whole frames are encoded as one batch. Returns each
    call's new codes (Q, n), n possibly 0."""
    chunks = [r.take_frames(w) for r, w in zip(recorders, windows, strict=True)]
    codes: list[torch.Tensor] = [r.empty_codes() for r in recorders]
    groups: dict[int, list[int]] = {}
    for i, chunk in enumerate(chunks):
        if len(chunk):
            groups.setdefault(len(chunk), []).append(i)
    with torch.inference_mode():
        for rows in groups.values():
            pcm = torch.from_numpy(np.stack([chunks[i] for i in rows]))
            states = EncoderState.stack([recorders[i].state(pcm) for i in rows])
            batch_codes, state = recorders[rows[0]].codec.encode_stream(pcm, states)
            for i, row_codes, row_state in zip(rows, batch_codes, state.rows(), strict=True):
                recorders[i].record(row_codes, row_state)
                codes[i] = row_codes
    return codes


class CodecSession(ResponderSession):
    def __init__(self, codec: TeluCodec) -> None:
        self._codec = codec
        self._recorder = CodeRecorder(codec)

    def hear(self, window: np.ndarray, start_sample: int) -> None:
        self._recorder.hear(window)

    def respond(self, turn: UserTurn) -> Iterator[np.ndarray]:
        hop = self._recorder.hop
        codes = self._recorder.codes(turn.start_sample // hop, -(-turn.end_sample // hop))
        state = None
        started = False
        for first in range(0, codes.shape[1], DECODE_FRAMES):
            with torch.inference_mode():
                pcm, state = self._codec.decode_stream(
                    codes[None, :, first : first + DECODE_FRAMES], state
                )
            chunk = pcm[0].numpy()
            started = started or bool(np.abs(chunk).max(initial=0.0) > LEAD_IN_LEVEL)
            if started:
                yield chunk


class CodecResponder(Responder):
    """Factory of CodecSession around one shared TeluCodec."""

    name = "codec"

    def __init__(self, models: Models) -> None:
        self.models = models

    def open(self, options: CallOptions) -> ResponderSession:
        return CodecSession(self.models.codec)

    def hear_batch(
        self, sessions: list[ResponderSession], windows: list[np.ndarray], starts: list[int]
    ) -> list[float | None]:
        recorders = []
        for session in sessions:
            if not isinstance(session, CodecSession):
                raise TypeError(f"not a session of this responder: {type(session).__name__}")
            recorders.append(session._recorder)
        encode_windows(recorders, windows)
        return [None] * len(sessions)

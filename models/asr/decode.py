"""Greedy CTC decoding into text with word timings.

The best label of each frame is taken, repeats merged and blanks dropped. A letter's time is
the frame where its run starts; a word starts at its first letter's frame and ends at the end
of its last letter's run (frame index x frame length, in seconds from the clip's start)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from models.asr.vocab import BLANK, Vocabulary


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Transcript:
    text: str
    words: list[Word]


class GreedyDecoder:
    """Accumulates frames of logits (one stream) and reads out the transcript so far."""

    def __init__(self, vocabulary: Vocabulary, frame_s: float) -> None:
        self.vocabulary = vocabulary
        self.frame_s = frame_s
        self.frames = 0
        self._previous = BLANK
        self._letters: list[tuple[int, int, int]] = []
        """(label, first frame, last frame) of each emitted letter."""
        self._transcript: Transcript | None = None
        """`transcript()` of the letters as they are now (None: they changed since)."""

    def push(self, logits: Tensor) -> None:
        """Logits (frames, vocab) of the next frames."""
        for label in logits.argmax(dim=-1).tolist():
            if label != BLANK:
                self._transcript = None
                if label == self._previous:
                    kind, first, _ = self._letters[-1]
                    self._letters[-1] = (kind, first, self.frames)
                else:
                    self._letters.append((label, self.frames, self.frames))
            self._previous = label
            self.frames += 1

    def transcript(self) -> Transcript:
        """Text and words of everything pushed so far (built once per change of the letters:
        the agent asks for it after every window while the user speaks)."""
        if self._transcript is None:
            self._transcript = self._build()
        return self._transcript

    def _build(self) -> Transcript:
        words: list[Word] = []
        chars: list[str] = []
        start = end = 0
        for label, first, last in [*self._letters, (None, 0, 0)]:
            letter = " " if label is None else self.vocabulary.letter(label)
            if letter == " ":
                if chars:
                    words.append(Word("".join(chars), start * self.frame_s, end * self.frame_s))
                chars = []
                continue
            if not chars:
                start = first
            chars.append(letter)
            end = last + 1
        return Transcript(" ".join(w.word for w in words), words)


def greedy_decode(logits: Tensor, vocabulary: Vocabulary, frame_s: float) -> Transcript:
    """The transcript of one clip's logits (frames, vocab)."""
    decoder = GreedyDecoder(vocabulary, frame_s)
    decoder.push(logits)
    return decoder.transcript()

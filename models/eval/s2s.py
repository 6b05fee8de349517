"""Does the S2S model answer right, in the requested voice and emotion (`telugu-s2s eval s2s`)?

Each held-out user turn (a user entry of `split` with a paired answer) is answered in all four
voices, with the emotion of its reference answer: the codec encodes the turn, the encoder
(conditioned on the requested speaker and emotion) gives the memory, the decoder generates
(sampled as the agent samples: temperature 0.8 among the top 50, classifier-free
guidance 3, every draw from one generator seeded with `--seed`) up to twice the reference
answer's length or to its EOS, and the codec decodes the answer. Three verdicts per answer:

- answer: the answer is closer to a reference answer of the turn's intent than to the
  reference answers of every other intent, all in the requested voice and emotion when the
  corpus has every intent in them, else all in the requested voice, else any. Distance: DTW
  on mean-normalised 40-band log-mel frames of 40 ms, divided by the path length. The intent
  is the answer's `extra["intent"]`, or its text when the manifest has none.
- voice: the answer's speaker embedding (models.speaker) is more similar to the requested
  voice's centroid (mean embedding of its reference answers) than to every other voice's.
- emotion: the emotion classifier (models.eval.emotion, trained on up to EMOTION_ANSWERS of
  the train split's answers as the model's codec renders them: encoded and decoded again)
  recognises the requested emotion. Its own accuracy on the split's answers rendered the same
  way is reported alongside (what the codec lets through of the emotion, and how far the
  verdict can be trusted), with the chance levels of the three verdicts.

Does the model listen? Without generating: the teacher-forced cross-entropy of each turn's
reference answer when the model hears that turn (`ce_own_turn`), and when it hears the next
scored turn of another intent instead (`ce_other_turn`). A model that uses what the user said
scores its own turn's answer better; equal figures mean the answer does not depend on the turn.

Voices it never trained on: with a corpus whose voice bank holds voices out, answers in each
held-out voice, conditioned on one clip of it (models/eval/cloning.py).

What the codec lets through of the voice: the voice verdict on up to CODEC_ANSWERS real answers
per voice of the split after a round trip through the model's codec. No decoder can do better
than its codec renders; where this is low, the codec is what loses the voice.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from models.asr.checkpoint import recognizer_sha256
from models.asr.errors import ErrorRates
from models.asr.model import Recognizer
from models.asr.stream import transcribe
from models.codec.quiet import QuietCodes
from models.data.manifest import Entry, dialogue_pairs, read_manifest
from models.eval.cloning import evaluate_cloning
from models.eval.emotion import evaluate_emotion_classifier, train_emotion_classifier
from models.eval.judge import IntentTexts, cer, said_back
from models.loading import Models, load
from models.s2s.answer_draw import levels_present
from models.s2s.delay import TEXT_PAD
from models.s2s.sampling import ANSWERS, Sampling
from models.s2s.user_text import user_pieces
from models.speaker import SpeakerEncoder, mel_spectrogram
from models.speech.audio import read_audio
from models.speed import DECODER_PRECISIONS, with_decoder_precision
from models.text.tokenizer import EPAD
from models.train.common import autocast, select_device
from models.train.s2s import (
    SILENCE_S,
    TextData,
    collate,
    forward,
    make_examples,
    silence_codes,
)
from models.train.text_streams import hear_entries
from models.train.tokens import encode_entries, pad_to_steps

log = logging.getLogger(__name__)

REFERENCES_PER_INTENT = 2
"""Reference answers compared per intent (per voice and emotion)."""
CENTROID_ANSWERS = 20
"""Reference answers averaged into a voice's centroid."""
MIN_ANSWER_STEPS = 25
POOL = 4
"""10 ms mel frames averaged into one DTW frame."""
CODEC_ANSWERS = 10
"""Real answers per voice sent through the codec for its own voice verdict."""
EXAMPLES = 8
"""Answers whose meant and heard text the report shows."""
EMOTION_ANSWERS = 500
"""Train answers (rendered by the codec) the emotion classifier learns from."""


def intent(entry: Entry) -> str:
    """An answer's intent: extra["intent"], else its text."""
    return str(entry.extra.get("intent", entry.text))


def log_mel(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) mean-normalised log-mel frames of 40 ms (four 10 ms frames averaged)."""
    mel = mel_spectrogram(torch.as_tensor(wav, dtype=torch.float32)).clamp(min=1e-10).log()
    mel = mel[: len(mel) // POOL * POOL].reshape(-1, POOL, mel.shape[1]).mean(dim=1)
    if len(mel) == 0:
        mel = torch.zeros(1, 40)
    return (mel - mel.mean(dim=0)).numpy()


def dtw_distance(a: np.ndarray, b: np.ndarray) -> float:
    """DTW distance of two (frames, dim) sequences (Euclidean frame cost, steps (1,0), (0,1),
    (1,1)), divided by the summed lengths.

    Row by row: with e[j] = cost[i, j] + min(D[i-1, j-1], D[i-1, j]), the horizontal steps
    make D[i, j] = min over k <= j of e[k] + cost[i, k+1 .. j], i.e. S[j] + running min of
    (e - S) for S the running sum of the row's costs: one vectorised scan per row."""
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2 * a @ b.T
    cost = np.sqrt(np.maximum(squared, 0.0))
    previous = np.concatenate(([0.0], np.full(len(b), np.inf)))
    for row in cost:
        entry = row + np.minimum(previous[:-1], previous[1:])
        total = np.cumsum(row)
        previous = np.concatenate(([np.inf], total + np.minimum.accumulate(entry - total)))
    return float(previous[-1] / (len(a) + len(b)))


class Answers(NamedTuple):
    """What `generate_answers` gives for one user turn."""

    wavs: list[np.ndarray]
    """Each answer, 16 kHz."""
    ended: list[bool]
    """Whether each ended with EOS before max_steps."""
    meant: list[str] | None
    """What each answer's text stream says (None for a codes-only model)."""
    heard: str | None
    """What the recognizer heard of the user turn (None for a codes-only model)."""


@torch.inference_mode()
def turn_memory(
    models: Models, user: np.ndarray, speakers: Tensor, emotions: Tensor
) -> tuple[Tensor, str | None]:
    """The decoder memory (batch, S, encoder dim) of one user turn for each (speaker,
    emotion) of a batch, and what the recognizer heard of the turn (None for a codes-only
    model). The turn is encoded followed by silence, as in training and in a call, and the
    memory is the encoder output of the turn's steps and, with text streams, the pieces of
    what the recognizer heard (as the agent runs it)."""
    config = models.config
    device = next(models.encoder.parameters()).device
    step_samples = models.codec.hop * config.frames_per_step
    wav = pad_to_steps(user, step_samples)
    silence = np.zeros(round(SILENCE_S * config.codec.sample_rate / step_samples) * step_samples)
    stream = torch.from_numpy(np.concatenate((wav, silence.astype(np.float32))))
    codes = models.codec.encode(stream[None].to(device)).expand(len(speakers), -1, -1)
    memory, _ = models.encoder(codes, speakers, emotions)
    memory = memory[:, : len(wav) // step_samples]
    heard = None
    user_text, tokenizer = models.encoder.user_text, models.tokenizer
    if user_text is not None and tokenizer is not None and models.recognizer is not None:
        heard = transcribe(models.recognizer, user).text
        pieces = user_pieces(tokenizer, heard, config.text.max_user_tokens)
        if len(pieces):
            words = user_text(pieces[None].to(device))
            memory = torch.cat((memory, words.expand(len(speakers), -1, -1)), dim=1)
    return memory, heard


@torch.inference_mode()
def generate_answers(
    models: Models,
    user: np.ndarray,
    speakers: Tensor,
    emotions: Tensor,
    max_steps: int,
    sampling: Sampling,
    generator: torch.Generator | None,
    quiet: QuietCodes | None = None,
    voices: Tensor | None = None,
) -> Answers:
    """Answers to one user turn for each (speaker, emotion) of a batch, drawn from `generator`
    (None: greedy only), from the memory of `turn_memory`. quiet: the codec's quiet codes, to
    leave out the finer levels of silent steps as the agent does. With `voices` (batch,
    speaker_embedding_dim), the decoder answers in those zero-shot voices while the encoder
    hears as the named `speakers`, as in a call given a voice."""
    config = models.config
    memory, heard = turn_memory(models, user, speakers, emotions)
    generated = list(
        models.decoder.generate_steps(
            memory,
            speakers if voices is None else voices.to(memory.dtype),
            emotions,
            sampling,
            generator,
            max_steps=max_steps,
            quiet=quiet,
        )
    )
    steps = [step.codes for step in generated]
    answer = torch.stack(steps, dim=2)  # (batch, Q, steps, G)
    ended = answer[:, 0, :, 0] >= config.codec.codebook_size
    lengths = torch.where(ended.any(dim=1), ended.int().argmax(dim=1), len(steps))
    wavs = []
    for row, length in enumerate(lengths.tolist()):
        if length == 0:
            wavs.append(np.zeros(0, dtype=np.float32))
            continue
        codes = answer[row : row + 1, :, :length].flatten(2)
        present = levels_present(codes, models.decoder.vocab)
        wavs.append(models.codec.decode(codes, present)[0].cpu().numpy())
    meant = None
    if generated and generated[0].text is not None and models.tokenizer is not None:
        text = torch.stack([step.text for step in generated], dim=1)  # type: ignore[misc]
        meant = [
            models.tokenizer.decode([t for t in row.tolist() if t not in (TEXT_PAD, EPAD)])
            for row in text
        ]
    return Answers(wavs, ended.any(dim=1).tolist(), meant, heard)


class References:
    """The corpus's agent answers, their log-mels and speaker embeddings, computed lazily."""

    def __init__(self, answers: list[Entry], root: Path, rate: int) -> None:
        self.root = root
        self.rate = rate
        self.by_voice: dict[tuple[str, str, str], list[Entry]] = defaultdict(list)
        for entry in answers:
            self.by_voice[intent(entry), entry.speaker, entry.emotion].append(entry)
        self.intents = sorted({intent(e) for e in answers})
        self._mels: dict[str, np.ndarray] = {}

    def wav(self, entry: Entry) -> np.ndarray:
        return read_audio(entry.path(self.root), self.rate)

    def mel(self, entry: Entry) -> np.ndarray:
        if entry.key not in self._mels:
            self._mels[entry.key] = log_mel(self.wav(entry))
        return self._mels[entry.key]

    def reference_sets(self, speaker: str, emotion: str) -> dict[str, list[Entry]]:
        """Up to REFERENCES_PER_INTENT answers of every intent, from the most specific group
        that every intent has answers in: the voice and emotion, else the voice, else all
        (so that no intent is favoured by a closer match of voice or emotion), first by key."""
        levels = (
            lambda s, e: (s, e) == (speaker, emotion),
            lambda s, e: s == speaker,
            lambda s, e: True,
        )
        for fits in levels:
            sets: dict[str, list[Entry]] = defaultdict(list)
            for (name, s, e), entries in self.by_voice.items():
                if fits(s, e):
                    sets[name].extend(entries)
            if len(sets) == len(self.intents):
                break
        return {
            name: sorted(refs, key=lambda e: e.key)[:REFERENCES_PER_INTENT]
            for name, refs in sets.items()
        }

    def closest_intent(self, wav: np.ndarray, speaker: str, emotion: str) -> str:
        """The intent whose reference answers come closest to `wav` (DTW on log-mel)."""
        mel = log_mel(wav)
        distances = {
            name: min(dtw_distance(mel, self.mel(e)) for e in refs)
            for name, refs in self.reference_sets(speaker, emotion).items()
        }
        return min(distances, key=distances.__getitem__)


def voice_centroids(
    encoder: SpeakerEncoder, references: References, speakers: tuple[str, ...]
) -> dict[str, Tensor]:
    """Normalised mean speaker embedding of (up to CENTROID_ANSWERS) answers of each voice."""
    centroids = {}
    for speaker in speakers:
        entries = sorted(
            (e for (_, s, _), group in references.by_voice.items() if s == speaker for e in group),
            key=lambda e: e.key,
        )[:CENTROID_ANSWERS]
        if entries:
            mean = torch.stack([encoder.embed(references.wav(e)) for e in entries]).mean(dim=0)
            centroids[speaker] = torch.nn.functional.normalize(mean, dim=0)
    return centroids


def closest_voice(
    encoder: SpeakerEncoder, wav: np.ndarray, centroids: dict[str, Tensor]
) -> str | None:
    """The voice whose centroid is most similar to the answer's embedding (None if silent)."""
    if len(wav) == 0 or not np.any(wav):
        return None
    embedding = encoder.embed(wav)
    return max(centroids, key=lambda s: float(embedding @ centroids[s]))


@torch.inference_mode()
def listening(
    models: Models, turns: list[tuple[Entry, Entry]], root: Path, batch_size: int = 8
) -> dict[str, float]:
    """Mean teacher-forced cross-entropy of the turns' reference answers given their own user
    turn and given the next turn (cyclically) of another intent (see the module doc)."""
    config = models.config
    device = next(models.encoder.parameters()).device
    entries = list({e.key: e for pair in turns for e in pair}.values())
    encoded = encode_entries(models.codec, entries, root, config.frames_per_step, progress=False)
    others = []
    for i, (user, answer) in enumerate(turns):
        later = turns[i + 1 :] + turns[:i]
        other = next((u for u, _ in later if intent(u) != intent(user)), user)
        others.append((other, answer))
    silence = silence_codes(models.codec, SILENCE_S, config.frames_per_step)
    text = None
    if models.tokenizer is not None and models.recognizer is not None:
        heard = hear_entries(models.recognizer, entries, root)
        text = TextData(models.tokenizer, heard, recognizer_sha256())
    sums = {}
    for name, pairs in (("ce_own_turn", turns), ("ce_other_turn", others)):
        examples = make_examples(pairs, encoded, config, text=text)
        total = text_total = 0.0
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            batch = collate(chunk, silence, config.frames_per_step, config.codec.hop)
            with autocast(device):  # on the CPU in float32 (or int8), as the agent runs it
                outputs = forward(models.encoder, models.decoder, batch.to(device))
            total += float(outputs.ce) * len(chunk)
            text_total += float(outputs.text_ce) * len(chunk)
        sums[name] = total / len(examples)
        if text is not None:
            sums[f"text_{name}"] = text_total / len(examples)
    return sums


def codec_round_trip(models: Models) -> Callable[[np.ndarray], np.ndarray]:
    """16 kHz audio -> the same audio encoded and decoded by the model's codec."""
    device = next(models.codec.parameters()).device
    step_samples = models.codec.hop * models.config.frames_per_step

    @torch.inference_mode()
    def render(wav: np.ndarray) -> np.ndarray:
        padded = torch.from_numpy(pad_to_steps(wav, step_samples))[None].to(device)
        return models.codec.decode(models.codec.encode(padded))[0].cpu().numpy()

    return render


def codec_voice_accuracy(
    render: Callable[[np.ndarray], np.ndarray],
    answers: list[Entry],
    references: References,
    speaker_encoder: SpeakerEncoder,
    centroids: dict[str, Tensor],
) -> dict[str, float | None]:
    """Voice accuracy, by voice, of up to CODEC_ANSWERS real answers per voice (first by key)
    after a codec round trip (see the module doc)."""
    by_speaker = {}
    for speaker in centroids:
        chosen = sorted((e for e in answers if e.speaker == speaker), key=lambda e: e.key)
        voices = [
            closest_voice(speaker_encoder, render(references.wav(e)), centroids)
            for e in chosen[:CODEC_ANSWERS]
        ]
        by_speaker[speaker] = _rate([v == speaker for v in voices])
    return by_speaker


class HeardVerdicts:
    """The verdicts on answers from what the recognizer hears in their audio
    (`models.eval.judge`), accumulated over a run."""

    def __init__(self, texts: IntentTexts) -> None:
        self.texts = texts
        self.intent: list[bool] = []
        self.meant_intent: list[bool] = []
        self.slot: list[bool] = []
        self.meant_slot: list[bool] = []
        self.errors = [0, 0]
        self.examples: list[dict[str, str]] = []

    def judge(
        self, recognizer: Recognizer, wav: np.ndarray, meant: str, target: str, value: Any
    ) -> None:
        """Score one answer's audio against its target intent, the turn's slot value (if
        any) and the text the model meant."""
        heard = transcribe(recognizer, wav).text if len(wav) else ""
        self.intent.append(self.texts.closest(heard) == target)
        self.meant_intent.append(self.texts.closest(meant) == target)
        if value:
            self.slot.append(said_back(str(value), heard))
            self.meant_slot.append(said_back(str(value), meant))
        edits, chars = cer(meant, heard)
        self.errors[0] += edits
        self.errors[1] += chars
        if len(self.examples) < EXAMPLES:
            self.examples.append({"meant": meant, "heard": heard, "intent": target})

    def summary(self) -> dict[str, Any]:
        return {
            "heard_intent_accuracy": _rate(self.intent),
            "heard_slot_rate": _rate(self.slot),
            "meant_intent_accuracy": _rate(self.meant_intent),
            "meant_slot_rate": _rate(self.meant_slot),
            "slot_answers": len(self.slot),
            "answer_cer": self.errors[0] / max(1, self.errors[1]),
            "examples": self.examples,
        }


def codec_answer_cer(
    render: Callable[[np.ndarray], np.ndarray],
    answers: list[Entry],
    references: References,
    recognizer: Recognizer,
) -> float:
    """The recognizer's CER on up to 4 x CODEC_ANSWERS real answers of the split (first by
    key) after a codec round trip: what the codec lets through of the words."""
    errors = ErrorRates()
    for entry in sorted(answers, key=lambda e: e.key)[: 4 * CODEC_ANSWERS]:
        errors.add(entry.text, transcribe(recognizer, render(references.wav(entry))).text)
    return errors.cer


def _rate(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def evaluate_s2s(
    checkpoint: str | Path,
    manifest: str | Path,
    split: str = "test",
    max_turns: int | None = 50,
    sampling: Sampling = ANSWERS,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
    fewer_levels: bool = True,
    voice_turns: int = 4,
    decoder_precision: str = "float32",
) -> dict[str, Any]:
    """Answer, voice and emotion accuracy of a checkpoint on (up to `max_turns`, chosen at
    random) user turns of `split`, each answered in every voice (see the module doc), and
    `voice_turns` answers in each held-out voice of the split (`models.eval.cloning`; 0: none).
    `seed` picks the turns and seeds the one generator all answers are drawn from, in order.
    fewer_levels: the answers leave out the finer codec levels of their silent steps, as the
    agent's do. decoder_precision: `models.speed.DECODER_PRECISIONS` (float32: the agent's
    default)."""
    manifest = Path(manifest)
    models = load(checkpoint, device=select_device(device))
    models = with_decoder_precision(models, decoder_precision)
    config = models.config
    rate = config.codec.sample_rate
    entries = read_manifest(manifest)
    turns = [(u, a) for u, a in dialogue_pairs(entries) if u.split == split]
    if not turns:
        raise ValueError(f"{manifest} has no {split} user turns with a paired answer")
    if max_turns is not None and len(turns) > max_turns:
        turns = random.Random(seed).sample(turns, max_turns)
    answers = [e for e in entries if e.dialogue is not None and e.dialogue.role == "agent"]
    references = References(answers, manifest.parent, rate)
    speaker_encoder = SpeakerEncoder()
    centroids = voice_centroids(speaker_encoder, references, config.speakers)
    render = codec_round_trip(models)
    classifier = train_emotion_classifier(manifest, "train", EMOTION_ANSWERS, seed, render)
    classifier_result = evaluate_emotion_classifier(classifier, manifest, split, render)

    listened = listening(models, turns, manifest.parent)
    split_answers = [e for e in answers if e.split == split]
    codec_voices = codec_voice_accuracy(
        render, split_answers, references, speaker_encoder, centroids
    )
    device_of = next(models.encoder.parameters()).device
    generator = torch.Generator(device_of).manual_seed(seed)
    voices = torch.arange(len(config.speakers), device=device_of)
    hits: dict[str, list[bool]] = {"answer": [], "voice": [], "emotion": []}
    voice_hits: dict[str, list[bool]] = {speaker: [] for speaker in centroids}
    judge = models.recognizer if models.tokenizer is not None else None
    user_errors = ErrorRates()
    texts = IntentTexts((intent(e), e.text) for e in answers if e.split == "train")
    words = HeardVerdicts(texts)
    ended: list[bool] = []
    seconds: list[float] = []
    step_samples = models.codec.hop * config.frames_per_step
    for user, reference in tqdm(turns, desc="eval s2s", unit="turn", disable=not progress):
        emotion = config.emotions.index(reference.emotion)
        reference_steps = -(-round(reference.duration * rate) // step_samples)
        wavs, done, meant, heard = generate_answers(
            models,
            read_audio(user.path(manifest.parent), rate),
            voices,
            torch.full_like(voices, emotion),
            max(MIN_ANSWER_STEPS, 2 * reference_steps),
            sampling,
            generator,
            models.codec.quiet_codes if fewer_levels else None,
        )
        target = intent(reference)
        emotions = classifier.predict(wavs)
        if heard is not None:
            user_errors.add(user.text, heard)
        for row, (speaker, wav, predicted) in enumerate(
            zip(config.speakers, wavs, emotions, strict=True)
        ):
            if judge is not None and meant is not None:
                words.judge(judge, wav, meant[row], target, user.extra.get("value"))
            closest = references.closest_intent(wav, speaker, reference.emotion)
            hits["answer"].append(closest == target)
            if speaker in centroids:
                voice = closest_voice(speaker_encoder, wav, centroids)
                hits["voice"].append(voice == speaker)
                voice_hits[speaker].append(voice == speaker)
            hits["emotion"].append(predicted == reference.emotion and len(wav) > 0)
            seconds.append(len(wav) / rate)
        ended.extend(done)
    cloning = {}
    if voice_turns > 0:
        cloning = evaluate_cloning(
            models,
            entries,
            [u for u, _ in turns],
            manifest.parent,
            split,
            sampling,
            generator,
            speaker_encoder,
            voice_turns,
            models.codec.quiet_codes if fewer_levels else None,
        )
    heard_verdicts = {}
    if judge is not None:
        heard_verdicts = {
            "user_cer": user_errors.cer,
            "user_wer": user_errors.wer,
            **words.summary(),
            "codec_answer_cer": codec_answer_cer(render, split_answers, references, judge),
        }
    return {
        "checkpoint": str(checkpoint),
        "split": split,
        "turns": len(turns),
        "answers": len(seconds),
        "answer_accuracy": _rate(hits["answer"]),
        "answer_chance": 1 / len(references.intents),
        "intents": len(references.intents),
        "voice_accuracy": _rate(hits["voice"]),
        "voice_chance": 1 / max(1, len(centroids)),
        "voice_accuracy_by_speaker": {s: _rate(h) for s, h in voice_hits.items()},
        "emotion_accuracy": _rate(hits["emotion"]),
        "emotion_classifier_accuracy": classifier_result["accuracy"],
        "emotion_majority": classifier_result["majority"],
        **listened,
        "codec_voice_accuracy_by_speaker": codec_voices,
        **heard_verdicts,
        **cloning,
        "ended_rate": _rate(ended),
        "mean_answer_s": float(np.mean(seconds)),
        "temperature": sampling.temperature,
        "top_k": sampling.top_k,
        "guidance": sampling.guidance,
        "fewer_levels": fewer_levels,
        "decoder_precision": decoder_precision,
    }


def format_report(result: dict[str, Any]) -> str:
    """A few readable lines of an evaluate_s2s result."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f} %"

    return "\n".join(
        [
            f"{result['checkpoint']}: {result['turns']} {result['split']} turns x 4 voices = "
            f"{result['answers']} answers (mean {result['mean_answer_s']:.2f} s, "
            f"{pct(result['ended_rate'])} ended with EOS)",
            f"  answer  {pct(result['answer_accuracy'])} (chance {pct(result['answer_chance'])}, "
            f"{result['intents']} intents)",
            f"  voice   {pct(result['voice_accuracy'])} (chance {pct(result['voice_chance'])}; "
            + ", ".join(
                f"{speaker} {pct(rate)}"
                for speaker, rate in result.get("voice_accuracy_by_speaker", {}).items()
            )
            + ")",
            f"  emotion {pct(result['emotion_accuracy'])} (classifier on codec-rendered answers "
            f"{pct(result['emotion_classifier_accuracy'])}, majority "
            f"{pct(result['emotion_majority'])})",
            f"  listens: reference answers' cross-entropy {result['ce_own_turn']:.3f} after "
            f"their own turn, {result['ce_other_turn']:.3f} after another intent's",
            "  through the codec alone (real answers): voice "
            + ", ".join(
                f"{speaker} {pct(rate)}"
                for speaker, rate in result["codec_voice_accuracy_by_speaker"].items()
            ),
            *_heard_lines(result, pct),
            *_cloning_lines(result, pct),
        ]
    )


def _cloning_lines(result: dict[str, Any], pct: Callable[[float | None], str]) -> list[str]:
    """The report's line on voices the model never trained on (when the split has some)."""
    if "held_out_voice_accuracy" not in result:
        return []
    return [
        f"  held-out voices: {pct(result['held_out_voice_accuracy'])} of answers nearest their "
        f"reference clip among {result['held_out_voices']} voices (chance "
        f"{pct(result['held_out_voice_chance'])}; the voices' own other clips "
        f"{pct(result['held_out_real_clip_accuracy'])})"
    ]


def _heard_lines(result: dict[str, Any], pct: Callable[[float | None], str]) -> list[str]:
    """The report's lines on what the recognizer heard (text-stream models only)."""
    if "heard_intent_accuracy" not in result:
        return []
    return [
        f"  heard in the answer audio: intent {pct(result['heard_intent_accuracy'])}, slot "
        f"value said back {pct(result['heard_slot_rate'])} of {result['slot_answers']}; "
        f"CER against the meant text {pct(result['answer_cer'])}",
        f"  meant (the text stream): intent {pct(result['meant_intent_accuracy'])}, slot "
        f"value {pct(result['meant_slot_rate'])}",
        f"  user turns as the recognizer hears them: CER {pct(result['user_cer'])}, WER "
        f"{pct(result['user_wer'])}; real answers through the codec: CER "
        f"{pct(result['codec_answer_cer'])}",
        f"  text stream cross-entropy {result['text_ce_own_turn']:.3f} after the own turn, "
        f"{result['text_ce_other_turn']:.3f} after another intent's",
    ]


def add_eval_s2s_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `s2s` to the subcommands of `telugu-s2s eval`."""
    p = subparsers.add_parser(
        "s2s",
        help="answer, voice and emotion accuracy of an S2S checkpoint",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (codec + S2S)")
    p.add_argument("--data", required=True, help="manifest (JSONL) with dialogue pairs")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--max-turns", type=int, default=50, help="user turns scored (random pick)")
    p.add_argument(
        "--temperature",
        type=float,
        default=ANSWERS.temperature,
        help="sampling temperature (the agent's by default); 0 is greedy decoding",
    )
    p.add_argument("--top-k", type=int, default=ANSWERS.top_k, help="sample among the k likeliest")
    p.add_argument(
        "--guidance",
        type=float,
        default=ANSWERS.guidance,
        help="classifier-free guidance on the voice and emotion (the agent's by default); "
        "1 is none",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--seed", type=int, default=0, help="picks the turns and seeds the answers' sampling"
    )
    p.add_argument(
        "--all-levels",
        action="store_true",
        help="draw every codec level of every answer step (the agent leaves out the finer "
        "levels of silent steps)",
    )
    p.add_argument(
        "--voice-turns",
        type=int,
        default=4,
        help="answers in each held-out voice of the split, conditioned on one of its clips "
        "(zero-shot voices; 0: none)",
    )
    p.add_argument(
        "--decoder-precision",
        choices=DECODER_PRECISIONS,
        default="float32",
        help="the decoder's weights when answering (serve --decoder-precision)",
    )
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=_run_eval_s2s)
    return p


def _run_eval_s2s(args: argparse.Namespace) -> int:
    result = evaluate_s2s(
        args.checkpoint,
        args.data,
        args.split,
        args.max_turns,
        Sampling(args.temperature, args.top_k, args.guidance),
        args.device,
        args.seed,
        progress=not args.json,
        voice_turns=args.voice_turns,
        fewer_levels=not args.all_levels,
        decoder_precision=args.decoder_precision,
    )
    if not args.json:
        print(format_report(result))
    print(json.dumps(result))
    return 0

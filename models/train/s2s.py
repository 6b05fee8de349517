"""Speech-to-speech training: user turn -> agent answer, teacher-forced on codec codes.

Each (user turn, answer) pair is one example: the manifest's dialogue links, or with
`pairing="intent"` every answer of the turn's intent and split. The user turn's codes go
through the streaming encoder, conditioned (like the decoder) on the speaker and emotion of
the ANSWER; the decoder predicts the answer's codes (codebook delay pattern, EOS after the
last step) with cross-attention to the encoder output of the user's audio. The loss is the
mean of the per-codebook cross-entropies (or, with `coarse_weight`, that share of it on
codebook 0: `weighted_ce`) plus `eot_weight` x the end-of-turn BCE, plus (when
their weights are not 0) `ctc_weight` x a CTC loss of the encoder output against the user
turn's transcript and `intent_weight` x an intent cross-entropy (`models.train.turn_heads`:
training-only heads that give the encoder a direct reason to carry what the user said).

End of turn. After each user turn's audio, `silence_s` of silence codes (the codec's steady
state on zeros, encoded once) are appended, and batches are padded with more of them. The
encoder's end-of-turn head learns per step: 0 up to the step holding the last speech sample
(the last sample above -40 dBFS in the user audio), 1 after it. The decoder's memory is the
user audio only (the appended silence is masked out), as the agent gives it the turn's audio.

Zero-shot voices (`models.train.voice_refs`). Answers by voices the model has no name for (the
corpus's voice bank) condition the decoder on the speaker embedding of another clip of their
voice, through its zero-shot projection; answers by the named voices do so with probability
`zero_shot_share`. The encoder, which only hears the user, stays conditioned on a named voice
(a random one for bank answers), as in a call that hands the agent a voice.

Recipe: random batches of pairs of similar length, AdamW (weight decay on weights only) with
warm-up and cosine decay, gradient clipping, bf16 autocast on CUDA and on CPUs with native
bf16 kernels, else fp32. Validation (teacher-forced token accuracy per codebook and mean,
end-of-turn accuracy) runs on the validation pairs every `eval_every` steps. `out_dir` receives
the checkpoint (codec + encoder + decoder, loadable with `models.loading.load`), train_state.pt
(see models.train.common), log.csv and codes.pt (the manifest's codec codes and speech ends,
reused by later runs: `models.train.tokens`).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.asr.checkpoint import SHIPPED as SHIPPED_RECOGNIZER
from models.asr.checkpoint import load_recognizer, recognizer_sha256
from models.checkpoints import load_config, load_state, save_checkpoint
from models.codec import TeluCodec
from models.config import PRESETS, CodecConfig, S2SConfig, preset, with_copy_pieces
from models.data.manifest import Entry, dialogue_pairs, intent_pairs, read_manifest
from models.loading import TOKENIZER_DIR
from models.s2s.decoder import StreamingDecoder
from models.s2s.delay import (
    TEXT_IGNORE,
    TEXT_PAD,
    append_eos,
    apply_delay,
    shift_right,
    text_inputs,
    text_targets,
    to_steps,
)
from models.s2s.encoder import StreamingEncoder
from models.s2s.user_text import user_pieces
from models.text.tokenizer import Tokenizer
from models.train.common import (
    LOG_FILE,
    TRAIN_STATE,
    Averages,
    CsvLog,
    add_run_options,
    autocast,
    describe,
    parameter_groups,
    progress_bar,
    read_train_state,
    restore_train_state,
    run_result,
    save_train_state,
    seed_everything,
    select_device,
    set_threads,
    warmup_cosine,
)
from models.train.monologue import draw_batch, start_from, text_pair_ce, text_pairs_for
from models.train.text_streams import (
    TEXT_CACHE,
    HeardText,
    answer_stream,
    hear_manifest,
    hearing_cer,
)
from models.train.tokens import Encoded, encode_manifest
from models.train.turn_heads import TurnHeads, alphabet
from models.train.voice_refs import VOICES_FILE, VoicePool, answer_embeddings, voice_pools

log = logging.getLogger(__name__)

SILENCE_S = 0.6
"""Silence appended to every user turn in training."""
EOT_WEIGHT = 0.5
CONDITION_DROPOUT = 0.2
"""Examples trained under the null conditioning, for classifier-free guidance (as MusicGen
drops its text conditioning)."""
BETAS = (0.9, 0.95)
WEIGHT_DECAY = 0.01
WARMUP_STEPS = 500
"""Learning-rate warm-up, capped at a tenth of the run."""
CLIP = 1.0
CODES_FILE = "codes.pt"
MAX_HEARING_CER = 0.3
"""`train s2s`'s bound on the recognizer's CER on the corpus's user turns (test user turns,
docs/benchmarks.md 2026-12-03: 7.9 % for the shipped recognizer on the corpus it was trained
on, 11.0 % for its recipe retrained on today's corpus, 64.9 % for the shipped one on it)."""
HEARD_SHARE = 0.5
ZERO_SHOT_SHARE = 0.3
"""Share of named-voice answers conditioned on another clip's speaker embedding instead."""
"""Share of training examples whose user words are what the recognizer heard (the rest get
the true transcript)."""
MAX_VALIDATION_PAIRS = 256
LENGTH_POOL = 8
"""A batch is drawn from the batch_size x LENGTH_POOL examples nearest in length to a random
one (about a third less padding than random batches on the synthetic corpus)."""
LOG_FIELDS = (
    "step",
    "loss",
    "ce",
    "eot",
    "grad_norm",
    "lr",
    "seconds",
    "val_ce",
    "val_ce_other_turn",
    "val_ce_unconditioned",
    "val_accuracy",
    "val_eot_accuracy",
    "ctc",
    "intent",
    "val_ctc",
    "val_intent_accuracy",
    "text",
    "text_pairs",
    "val_text_ce",
    "val_text_ce_other_turn",
    "val_text_accuracy",
)
"""Columns of log.csv (then val_accuracy_q0 ...): train means over the logged steps (loss =
weighted_ce + eot_weight x eot + ctc_weight x ctc + intent_weight x intent; ce is the plain
mean over codebooks whatever the coarse_weight), seconds of training across
resumes, validation metrics on the rows where validation ran (ctc and intent columns only
with the turn heads)."""


@dataclass(frozen=True)
class Example:
    """One dialogue pair as codes."""

    user: Tensor
    """(Q, frames) codes of the user turn (whole steps)."""
    answer: Tensor
    """(Q, frames) codes of the agent answer (whole steps)."""
    speaker: int
    emotion: int
    speech_end: int
    """Samples of the user audio up to and including its last speech sample."""
    labels: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    """The user turn's transcript as CTC labels (`TurnHeads.labels`); empty when unused."""
    intent: int = -1
    """The user turn's intent class (`TurnHeads.intent_index`), -1 when unknown or unused."""
    user_text: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    """The user turn's true transcript as tokenizer pieces (text streams only)."""
    user_heard: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    """The pieces of what the recognizer heard of the user turn (text streams only)."""
    answer_text: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    """(answer steps,) the answer's text stream (`models.train.text_streams`); empty without
    text streams."""
    voice: VoicePool | None = None
    """The embeddings of the answer's voice's clips (zero-shot conditioning); None without."""
    voice_row: int = -1
    """The answer's own clip's row in `voice`."""

    @property
    def named(self) -> bool:
        """The answer's voice is one of the model's named voices (else: zero-shot only)."""
        return self.speaker >= 0


@dataclass
class Batch:
    """Padded tensors of a few examples, ready for the encoder and decoder."""

    user: Tensor
    """(B, Q, frames): user codes, then silence codes."""
    memory_mask: Tensor
    """(B, steps) bool: True on the steps of the user audio."""
    eot_labels: Tensor
    """(B, steps) float: 1 after the step holding the last speech sample."""
    answer: Tensor
    """(B, Q, frames): answer codes, padded with code 0."""
    lengths: Tensor
    """(B,) answer lengths in steps."""
    speaker: Tensor
    """(B,) named voice indices (for bank answers a random named voice: the encoder's)."""
    emotion: Tensor
    voice: Tensor
    """(B, speaker_embedding_dim) the reference embeddings of zero-shot rows (zeros elsewhere)."""
    zero_shot: Tensor
    """(B,) bool: the decoder takes the row's `voice` instead of its named voice."""
    labels: Tensor
    """(B, L): the user turns' transcript labels, padded with 0."""
    label_lengths: Tensor
    """(B,) transcript lengths."""
    intent: Tensor
    """(B,) the user turns' intent classes (-1: unknown)."""
    user_tokens: Tensor
    """(B, N) the pieces of the user turns' words (heard or true), padded with PAD."""
    user_token_mask: Tensor
    """(B, N) bool: True on real pieces."""
    answer_text: Tensor
    """(B, T) the answers' text streams (T answer steps; (B, 0) without text streams)."""

    def to(self, device: torch.device) -> Batch:
        return Batch(**{k: v.to(device) for k, v in vars(self).items()})


def eot_labels(steps: int, end_sample: int, step_samples: int) -> Tensor:
    """(steps,) 0.0 up to the step that holds sample end_sample - 1, 1.0 after it."""
    last_speech_step = (end_sample - 1) // step_samples if end_sample > 0 else -1
    return (torch.arange(steps) > last_speech_step).float()


@torch.inference_mode()
def silence_codes(codec: TeluCodec, seconds: float, frames_per_step: int) -> Tensor:
    """(Q, frames) codes of `seconds` of silence (whole steps), as the codec encodes it after a
    while of silence: the first frames of a zero stream (start-up transients) are dropped."""
    step_samples = codec.hop * frames_per_step
    steps = max(1, round(seconds * codec.config.sample_rate / step_samples))
    warmup = max(1, round(0.2 * codec.config.sample_rate / step_samples))
    device = next(codec.parameters()).device
    codes = codec.encode(torch.zeros(1, (warmup + steps) * step_samples, device=device))
    return codes[0, :, warmup * frames_per_step :].cpu()


def _index(names: tuple[str, ...], name: str, kind: str) -> int:
    if name not in names:
        raise ValueError(f"unknown {kind} {name!r} in the manifest; known: {', '.join(names)}")
    return names.index(name)


@dataclass(frozen=True)
class TextData:
    """What the text streams are trained from."""

    tokenizer: Tokenizer
    heard: HeardText
    recognizer_sha256: str
    """Of the recognizer whose hearing and alignments these are (the one the agent runs)."""
    hearing_cer: float | None = None
    """Its CER on the manifest's train and validation user turns (None: not measured; `eval
    s2s` reports its own user-turn CER)."""


def text_training_data(
    manifest: Path,
    config: S2SConfig,
    out: Path,
    recognizer: str | Path | None,
    progress: bool,
    max_hearing_cer: float | None = None,
) -> TextData:
    """The shipped tokenizer and the recognizer's view of `manifest` (cached in `out`).
    ValueError when the recognizer hears the user turns at a CER above `max_hearing_cer`:
    one trained on other speech (another corpus's voices) hands the text streams words that
    do not match what was said, and they learn to ignore them."""
    tokenizer = Tokenizer.load()
    if tokenizer.vocab_size != config.text.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} pieces, the config's text stream "
            f"{config.text.vocab_size}"
        )
    directory = Path(recognizer) if recognizer is not None else SHIPPED_RECOGNIZER
    model = load_recognizer(directory)
    heard = hear_manifest(model, manifest, out / TEXT_CACHE, progress=progress)
    cer = hearing_cer(heard, read_manifest(manifest))
    log.info("%s hears the user turns of %s at CER %.1f %%", directory, manifest, 100 * cer)
    if max_hearing_cer is not None and cer > max_hearing_cer:
        raise ValueError(
            f"the recognizer {directory} hears the user turns of {manifest} at CER "
            f"{100 * cer:.1f} % (at most {100 * max_hearing_cer:.0f} % allowed): it was trained "
            "on other speech; train one on this corpus first (`make asr-model`, or `train asr` "
            "and --recognizer)"
        )
    return TextData(tokenizer, heard, recognizer_sha256(directory), cer)


def make_examples(
    pairs: list[tuple[Entry, Entry]],
    encoded: Encoded,
    config: S2SConfig,
    heads: TurnHeads | None = None,
    text: TextData | None = None,
    voices: tuple[dict[str, VoicePool], dict[str, int]] | None = None,
) -> list[Example]:
    """Examples of (user, agent) pairs from their codes and speech ends; answers longer than
    the decoder's max_steps are cut. With `heads`, each carries its user turn's transcript
    labels and intent class; with `text`, the user's words (true and heard) and the answer's
    text stream; with `voices` (pools and rows: `voice_pools`), its voice's clips, and an
    answer by a voice without a name gets speaker -1 (zero-shot only)."""
    max_frames = config.decoder.max_steps * config.frames_per_step
    codes = encoded.codes
    examples = []
    for user, agent in pairs:
        heard: dict[str, Any] = {}
        if heads is not None:
            heard = {
                "labels": heads.labels(user.text),
                "intent": heads.intent_index(user.extra.get("intent")),
            }
        if text is not None:
            heard |= _text_fields(user, agent, codes[agent.key].shape[1], config, text)
        speaker = -1
        if voices is not None and agent.speaker in voices[0]:
            heard |= {"voice": voices[0][agent.speaker], "voice_row": voices[1][agent.key]}
        if voices is None or agent.speaker in config.speakers:
            speaker = _index(config.speakers, agent.speaker, "speaker")
        examples.append(
            Example(
                user=codes[user.key],
                answer=codes[agent.key][:, :max_frames],
                speaker=speaker,
                emotion=_index(config.emotions, agent.emotion, "emotion"),
                speech_end=encoded.speech_ends[user.key],
                **heard,
            )
        )
    return examples


def _text_fields(
    user: Entry, agent: Entry, answer_frames: int, config: S2SConfig, text: TextData
) -> dict[str, Tensor]:
    """An example's text: the user's words (true, heard) and the answer's text stream."""
    limit, tokenizer = config.text.max_user_tokens, text.tokenizer
    steps = answer_frames // config.frames_per_step
    stream = answer_stream(
        tokenizer,
        agent.text,
        text.heard.word_starts.get(agent.key),
        steps,
        config.step_ms / 1000,
        config.text.lead_steps,
    )
    return {
        "user_text": user_pieces(tokenizer, user.text, limit),
        "user_heard": user_pieces(tokenizer, text.heard.heard.get(user.key, user.text), limit),
        "answer_text": stream[: config.decoder.max_steps],
    }


def _tile(silence: Tensor, frames: int) -> Tensor:
    """`frames` frames of the silence codes, repeated as needed."""
    return silence.repeat(1, -(-frames // silence.shape[1]))[:, :frames]


def collate(
    examples: list[Example],
    silence: Tensor,
    frames_per_step: int,
    hop: int,
    heard_share: float = 1.0,
    generator: torch.Generator | None = None,
    zero_shot_share: float = 0.0,
    voice_dim: int = 256,
    named_voices: int = 1,
) -> Batch:
    """Pad a few examples into a Batch (user turns + silence, answers + code 0). With text
    streams, each user turn's words are what the recognizer heard with probability
    `heard_share` (drawn from `generator`; all heard without one), else the true transcript.
    Answers by voices without a name are conditioned on another clip of their voice (see
    `_voices`), named ones with probability `zero_shot_share` (never without a generator)."""
    user_frames = max(e.user.shape[1] for e in examples) + silence.shape[1]
    answer_frames = max(e.answer.shape[1] for e in examples)
    user_steps = user_frames // frames_per_step
    users, masks, labels, answers = [], [], [], []
    for e in examples:
        users.append(torch.cat((e.user, _tile(silence, user_frames - e.user.shape[1])), dim=1))
        masks.append(torch.arange(user_steps) < e.user.shape[1] // frames_per_step)
        labels.append(eot_labels(user_steps, e.speech_end, hop * frames_per_step))
        answers.append(F.pad(e.answer, (0, answer_frames - e.answer.shape[1])))
    answer_steps = answer_frames // frames_per_step
    has_text = any(e.answer_text.numel() for e in examples)
    texts = [F.pad(e.answer_text, (0, answer_steps - len(e.answer_text))) for e in examples]
    token_lists = []
    for e in examples:
        heard = generator is None or float(torch.rand((), generator=generator)) < heard_share
        token_lists.append(e.user_heard if heard else e.user_text)
    width = max(1, max(len(t) for t in token_lists))
    speakers, voices, zero_shot = _voices(
        examples, zero_shot_share, generator, voice_dim, named_voices
    )
    return Batch(
        user=torch.stack(users),
        memory_mask=torch.stack(masks),
        eot_labels=torch.stack(labels),
        answer=torch.stack(answers),
        lengths=torch.tensor([e.answer.shape[1] // frames_per_step for e in examples]),
        speaker=speakers,
        emotion=torch.tensor([e.emotion for e in examples]),
        voice=voices,
        zero_shot=zero_shot,
        labels=nn.utils.rnn.pad_sequence([e.labels for e in examples], batch_first=True),
        label_lengths=torch.tensor([len(e.labels) for e in examples]),
        intent=torch.tensor([e.intent for e in examples]),
        user_tokens=torch.stack([F.pad(t, (0, width - len(t))) for t in token_lists]),
        user_token_mask=torch.stack([torch.arange(width) < len(t) for t in token_lists]),
        answer_text=torch.stack(texts) if has_text else torch.zeros(len(examples), 0).long(),
    )


def _voices(
    examples: list[Example], share: float, generator: torch.Generator | None, dim: int, named: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(B,) speaker indices, (B, dim) reference embeddings and (B,) zero-shot flags: a
    voice without a name always zero-shot (its index one of the `named` voices at random, the
    first without a generator), a named one with probability `share` when it has clips to
    draw from."""
    speakers, voices, flags = [], [], []
    for e in examples:
        zero_shot = not e.named or (
            e.voice is not None
            and generator is not None
            and float(torch.rand((), generator=generator)) < share
        )
        speaker = e.speaker
        if not e.named:
            speaker = 0 if generator is None else int(torch.randint(named, (), generator=generator))
        speakers.append(speaker)
        if zero_shot:
            if e.voice is None:
                raise ValueError("an answer without a named voice needs its voice's clips")
            voices.append(e.voice.draw(e.voice_row, generator))
        else:
            voices.append(torch.zeros(dim))
        flags.append(zero_shot)
    return torch.tensor(speakers), torch.stack(voices), torch.tensor(flags)


def length_batch(order: Tensor, batch_size: int, generator: torch.Generator, pool: int) -> Tensor:
    """Indices of one batch of similar lengths: a random position in `order` (the examples
    sorted by length) and `batch_size` examples drawn from the `batch_size * pool` around it,
    so that little of a batch is padding."""
    window = min(len(order), batch_size * pool)
    centre = int(torch.randint(len(order), (1,), generator=generator))
    start = min(max(centre - window // 2, 0), len(order) - window)
    picked = torch.randperm(window, generator=generator)[:batch_size]
    return order[start + picked]


def codebook_ce(logits: Tensor, targets: Tensor, pad: int) -> Tensor:
    """(Q,) cross-entropy of each codebook over its non-PAD targets, from logits (B, Q, ...,
    vocab) and targets (B, Q, ...)."""
    flat = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.flatten(),
        ignore_index=pad,
        reduction="none",
    )
    valid = targets != pad
    dims = [d for d in range(targets.dim()) if d != 1]
    return (flat.view_as(targets) * valid).sum(dim=dims) / valid.sum(dim=dims).clamp(min=1)


def weighted_ce(per_codebook: Tensor, coarse_weight: float = 0.0) -> Tensor:
    """The training cross-entropy of per-codebook cross-entropies (Q,): their mean, or with
    `coarse_weight` > 0 that share on codebook 0 and the rest spread evenly over the finer
    ones. The coarse codes carry what is said; the finer ones mostly acoustic detail, which
    dominates a plain mean (Moshi weights its semantic codebook above the acoustic ones for
    the same reason)."""
    if coarse_weight <= 0:
        return per_codebook.mean()
    return coarse_weight * per_codebook[0] + (1 - coarse_weight) * per_codebook[1:].mean()


class Outputs(NamedTuple):
    """What `forward` computes for a batch."""

    logits: Tensor
    """(B, Q, P, G, vocab): teacher-forced decoder logits at the (delayed) positions."""
    targets: Tensor
    """(B, Q, P, G): their targets."""
    per_codebook: Tensor
    """(Q,) each codebook's cross-entropy."""
    eot: Tensor
    """(B, steps): end-of-turn logits."""
    bce: Tensor
    """End-of-turn binary cross-entropy."""
    hidden: Tensor
    """(B, steps, encoder dim): the encoder output (the decoder's acoustic memory)."""
    text_ce: Tensor
    """The text stream's cross-entropy (0 without text streams)."""
    text_logits: Tensor | None
    """(B, P, text vocab) the text stream's logits at the decoder positions."""
    text_targets: Tensor | None
    """(B, P) their targets (TEXT_IGNORE where untrained)."""

    @property
    def ce(self) -> Tensor:
        """Cross-entropy, the mean over codebooks."""
        return self.per_codebook.mean()


def forward(
    encoder: StreamingEncoder,
    decoder: StreamingDecoder,
    batch: Batch,
    input_dropout: float = 0.0,
    condition_dropout: float = 0.0,
    unconditioned: bool = False,
) -> Outputs:
    """Teacher-forced decoder and end-of-turn outputs and losses of a batch.

    The same loss as StreamingDecoder.forward + loss (code + EOS targets, PAD ignored), but the
    targets get the delay pattern instead of the logits losing it: no per-codebook copies of
    the logits, whose backward pass would each allocate a logits-sized gradient.

    `condition_dropout`: the probability that an example's decoder conditioning is replaced
    by the null one (training only); `unconditioned`: the null conditioning for all."""
    hidden, eot = encoder(batch.user, batch.speaker, batch.emotion)
    vocab = decoder.vocab
    steps = append_eos(to_steps(batch.answer, decoder.frames_per_step), vocab, batch.lengths)
    targets = apply_delay(steps, vocab.pad, decoder.delays)
    condition = decoder.condition(
        batch.speaker, batch.emotion, condition_dropout, unconditioned, batch.voice, batch.zero_shot
    )
    inputs = shift_right(targets, vocab.pad)
    memory, memory_mask = hidden, batch.memory_mask
    text_in = text_goal = None
    if encoder.user_text is not None:
        words = encoder.user_text(batch.user_tokens).to(hidden.dtype)
        memory = torch.cat((hidden, words), dim=1)
        memory_mask = torch.cat((batch.memory_mask, batch.user_token_mask), dim=1)
        text_goal = text_targets(batch.answer_text, batch.lengths, inputs.shape[2])
        text_in = text_inputs(text_goal)
    states = decoder.hidden(inputs, memory, condition, memory_mask, input_dropout, text_in)
    logits = decoder.project_codes(states)
    per_codebook = codebook_ce(logits, targets, vocab.pad)
    bce = F.binary_cross_entropy_with_logits(eot.float(), batch.eot_labels)
    text_logits, text_ce = None, per_codebook.new_zeros(())
    if text_goal is not None:
        text_logits = decoder.text_logits(states)
        text_ce = F.cross_entropy(
            text_logits.flatten(0, 1).float(), text_goal.flatten(), ignore_index=TEXT_IGNORE
        )
    return Outputs(logits, targets, per_codebook, eot, bce, hidden, text_ce, text_logits, text_goal)


@torch.no_grad()
def validate(
    encoder: StreamingEncoder,
    decoder: StreamingDecoder,
    examples: list[Example],
    silence: Tensor,
    config: S2SConfig,
    batch_size: int,
    device: torch.device,
    heads: TurnHeads | None = None,
) -> dict[str, float]:
    """Teacher-forced cross-entropy and token accuracy (per codebook and mean over codebooks, EOS
    included, PAD ignored) and end-of-turn accuracy at probability 0.5; with `heads`, their
    CTC loss (`val_ctc`) and, when they classify intents, `val_intent_accuracy`.

    `val_ce_other_turn` is the cross-entropy of the same answers when the decoder hears the
    user turn of the next pair in the batch instead of their own: no higher than `val_ce`
    means the decoder does not use what the user said. `val_ce_unconditioned` is their
    cross-entropy under the null conditioning (no speaker, no emotion): how much the decoder
    leans on its conditioning."""
    encoder.eval()
    decoder.eval()
    q = config.codec.num_quantizers
    correct, total = torch.zeros(q), torch.zeros(q)
    eot_correct = eot_total = 0
    ce_sum = other_sum = unconditioned_sum = ctc_sum = 0.0
    intent_correct = intent_total = 0
    text_sums = dict.fromkeys(("ce", "ce_other", "hits", "pieces"), 0.0)
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = collate(
            chunk,
            silence,
            config.frames_per_step,
            config.codec.hop,
            voice_dim=config.speaker_embedding_dim,
            named_voices=len(config.speakers),
        ).to(device)
        other = replace(
            batch,
            user=batch.user.roll(1, 0),
            memory_mask=batch.memory_mask.roll(1, 0),
            eot_labels=batch.eot_labels.roll(1, 0),
            user_tokens=batch.user_tokens.roll(1, 0),
            user_token_mask=batch.user_token_mask.roll(1, 0),
        )
        with autocast(device, cpu_bf16=True):
            outputs = forward(encoder, decoder, batch)
            logits, targets, per_codebook = outputs.logits, outputs.targets, outputs.per_codebook
            eot, hidden = outputs.eot, outputs.hidden
            ce = per_codebook.mean()
            other_outputs = forward(encoder, decoder, other)
            other_ce = other_outputs.ce
            unconditioned_ce = forward(encoder, decoder, batch, unconditioned=True).ce
        if outputs.text_logits is not None and outputs.text_targets is not None:
            text_sums["ce"] += float(outputs.text_ce) * len(chunk)
            text_sums["ce_other"] += float(other_outputs.text_ce) * len(chunk)
            said = (outputs.text_targets != TEXT_IGNORE) & (outputs.text_targets != TEXT_PAD)
            guess = outputs.text_logits.argmax(-1)
            text_sums["hits"] += int(((guess == outputs.text_targets) & said).sum())
            text_sums["pieces"] += int(said.sum())
        if heads is not None:
            mask, labels, lengths = batch.memory_mask, batch.labels, batch.label_lengths
            ctc_sum += float(heads.ctc_loss(hidden, mask, labels, lengths)) * len(chunk)
            known = batch.intent >= 0
            if heads.intent is not None and bool(known.any()):
                guess = heads.intent_logits(hidden, mask).argmax(-1)
                intent_correct += int((guess == batch.intent)[known].sum())
                intent_total += int(known.sum())
        ce_sum += float(ce) * len(chunk)
        other_sum += float(other_ce) * len(chunk)
        unconditioned_sum += float(unconditioned_ce) * len(chunk)
        valid = targets != decoder.vocab.pad
        hits = (logits.argmax(-1) == targets) & valid
        correct += hits.sum(dim=(0, 2, 3)).cpu()
        total += valid.sum(dim=(0, 2, 3)).cpu()
        eot_correct += int(((eot > 0).float() == batch.eot_labels).sum())
        eot_total += batch.eot_labels.numel()
    encoder.train()
    decoder.train()
    per_codebook = correct / total.clamp(min=1)
    return {
        "val_ce": ce_sum / len(examples),
        "val_ce_other_turn": other_sum / len(examples),
        "val_ce_unconditioned": unconditioned_sum / len(examples),
        "val_accuracy": float(per_codebook.mean()),
        **{f"val_accuracy_q{i}": float(a) for i, a in enumerate(per_codebook)},
        "val_eot_accuracy": eot_correct / max(eot_total, 1),
        **({} if heads is None else {"val_ctc": ctc_sum / len(examples)}),
        **({"val_intent_accuracy": intent_correct / intent_total} if intent_total else {}),
        **(
            {
                "val_text_ce": text_sums["ce"] / len(examples),
                "val_text_ce_other_turn": text_sums["ce_other"] / len(examples),
                "val_text_accuracy": text_sums["hits"] / text_sums["pieces"],
            }
            if text_sums["pieces"]
            else {}
        ),
    }


def _resolve_config(config: str | S2SConfig, codec: CodecConfig) -> S2SConfig:
    """The preset or config, with the codec checkpoint's codec sizes."""
    chosen = preset(config) if isinstance(config, str) else config
    if chosen.codec != codec:
        log.warning("using the codec checkpoint's codec sizes, not those of %s", chosen.name)
    return replace(chosen, codec=codec)


PAIRINGS = {"dialogue": dialogue_pairs, "intent": intent_pairs}
"""How user turns meet answers: the manifest's dialogue links (one answer per turn), or every
answer of the turn's intent and split (synthetic corpora: many voices and emotions per turn)."""


def load_examples(
    manifest: Path,
    codec: TeluCodec,
    config: S2SConfig,
    cache: Path,
    progress: bool = True,
    pairing: str = "dialogue",
    heads: TurnHeads | None = None,
    text: TextData | None = None,
    zero_shot: bool = False,
) -> dict[str, list[Example]]:
    """Train and validation examples of the manifest's pairs (by the user's split). With
    `zero_shot`, or when some answer's voice has no name in `config`, each example carries
    its voice's clips of the same split (`models.train.voice_refs`)."""
    encoded = encode_manifest(
        codec, manifest, cache=cache, frames_per_step=config.frames_per_step, progress=progress
    )
    entries = read_manifest(manifest)
    pairs = PAIRINGS[pairing](entries)
    unnamed = {a.speaker for _, a in pairs} - set(config.speakers)
    embeddings = None
    if zero_shot or unnamed:
        embeddings = answer_embeddings(entries, manifest.parent, cache.parent / VOICES_FILE)
    examples = {}
    for split in ("train", "validation"):
        chosen = [p for p in pairs if p[0].split == split]
        voices = None
        if embeddings is not None:
            voices = voice_pools([a for _, a in chosen], embeddings)
        examples[split] = make_examples(chosen, encoded, config, heads, text, voices)
    return examples


def turn_heads(manifest: Path, dim: int) -> TurnHeads:
    """Heads for the train user turns of `manifest`: their transcripts' alphabet, and their
    intents (none when the manifest names none)."""
    users = [
        e
        for e in read_manifest(manifest)
        if e.split == "train" and e.dialogue is not None and e.dialogue.role == "user"
    ]
    intents = tuple(sorted({str(e.extra["intent"]) for e in users if "intent" in e.extra}))
    return TurnHeads(dim, alphabet(e.text for e in users), intents)


def train_s2s(
    manifest: str | Path,
    codec_checkpoint: str | Path,
    out_dir: str | Path,
    steps: int = 3_000,
    batch_size: int = 8,
    lr: float = 5e-4,
    device: str = "auto",
    resume: bool = False,
    seed: int = 0,
    config: str | S2SConfig = "demo",
    *,
    log_every: int = 25,
    eval_every: int = 500,
    save_every: int = 500,
    eot_weight: float = EOT_WEIGHT,
    progress: bool = True,
    pairing: str = "dialogue",
    input_dropout: float = 0.0,
    condition_dropout: float = CONDITION_DROPOUT,
    ctc_weight: float = 0.0,
    intent_weight: float = 0.0,
    coarse_weight: float = 0.0,
    heard_share: float = HEARD_SHARE,
    recognizer: str | Path | None = None,
    text_weight: float | None = None,
    zero_shot_share: float = ZERO_SHOT_SHARE,
    init: str | Path | None = None,
    text_pairs: int = 0,
    copy_pieces: bool = False,
    follow_pieces: bool = False,
    max_hearing_cer: float | None = None,
) -> dict[str, Any]:
    """Train (or, with `resume`, continue training) encoder + decoder to `steps` steps on the
    train dialogue pairs of `manifest`, with the frozen codec of `codec_checkpoint`.

    `init`: a checkpoint (`train monologue`'s) whose encoder and decoder weights a new run
    starts from. `text_pairs`: text-only pairs (`models.train.text_pairs`) trained beside
    every batch, their text cross-entropy weighted as the text stream's. `copy_pieces`: add
    the copy path (`TextConfig.copy_pieces`), `follow_pieces` its piece-before signatures; a
    run started from a checkpoint that has them keeps them. `max_hearing_cer`: refuse a
    recognizer that hears the corpus's user turns worse than this (`text_training_data`).

    `config` is a preset name or an S2SConfig (its codec sizes are replaced by the codec
    checkpoint's). Without `resume` an out_dir that already holds train state is an error;
    with it, a run continues from its last saved step. Returns the last logged means, the
    latest validation metrics, "first_loss", "step" and "steps_per_second" of this call.
    """
    if not 0.0 <= coarse_weight < 1.0:
        raise ValueError(f"coarse_weight must be in [0, 1), not {coarse_weight}")
    if text_pairs < 0:
        raise ValueError(f"text_pairs must be >= 0, not {text_pairs}")
    manifest, out = Path(manifest), Path(out_dir)
    resuming = (out / TRAIN_STATE).exists()
    if resuming and not resume:
        raise FileExistsError(f"{out} already holds a training run; resume it or pick another")
    config = _resolve_config(config, load_config(codec_checkpoint).codec)
    started = None if init is None else load_config(init).text
    copy_pieces = copy_pieces or (started is not None and started.copy_pieces)
    follow_pieces = follow_pieces or (started is not None and started.follow_pieces)
    config = with_copy_pieces(config, copy_pieces, follow_pieces)
    if text_weight is not None:  # a loss weight: it may change when a run resumes
        config = replace(config, text=replace(config.text, text_weight=text_weight))
    torch_device = select_device(device)
    seed_everything(seed)
    data_generator = torch.Generator().manual_seed(seed)

    codec = TeluCodec(config.codec)
    load_state(codec_checkpoint, "codec", codec)
    codec.to(torch_device).eval()
    encoder = StreamingEncoder(config).to(torch_device).train()
    decoder = StreamingDecoder(config).to(torch_device).train()
    if init is not None and not resuming:
        start_from(init, config, encoder, decoder)
    if text_pairs and not config.text.enabled:
        raise ValueError("text_pairs train the text streams: the configuration has none")
    modules: dict[str, nn.Module] = {"encoder": encoder, "decoder": decoder}
    heads = None
    if ctc_weight > 0 or intent_weight > 0:
        heads = turn_heads(manifest, config.encoder.dim).to(torch_device).train()
        modules["heads"] = heads
    model = nn.ModuleDict(modules)
    optimizer = torch.optim.AdamW(parameter_groups(model, WEIGHT_DECAY), lr=lr, betas=BETAS)
    scheduler = warmup_cosine(optimizer, max(1, min(WARMUP_STEPS, steps // 10)), steps)

    start, seconds_before, first_loss = 0, 0.0, None
    head_weights = {"ctc_weight": ctc_weight, "intent_weight": intent_weight}
    text_weights: list[list[float]] = [[0, config.text.text_weight]]
    """(first step, weight) of each text-stream loss weight the run has used."""
    if resuming:
        saved = read_train_state(out)
        trained = S2SConfig.from_dict(saved["extra"]["config"])
        if (
            replace(trained, text=replace(trained.text, text_weight=config.text.text_weight))
            != config
        ):
            raise ValueError(f"{out} was trained with another configuration than {config.name}")
        text_weights = saved["extra"].get("text_weights", [[0, trained.text.text_weight]])
        if text_weights[-1][1] != config.text.text_weight:
            text_weights.append([saved["step"], config.text.text_weight])
            log.warning("text weight %g from step %d", config.text.text_weight, saved["step"])
        trained_with = saved["extra"].get("head_weights", dict.fromkeys(head_weights, 0.0))
        if trained_with != head_weights:
            raise ValueError(f"{out} was trained with turn head weights {trained_with}")
        if saved["extra"].get("coarse_weight", 0.0) != coarse_weight:
            raise ValueError(f"{out} was trained with another coarse_weight")
        if saved["extra"].get("zero_shot_share", 0.0) != zero_shot_share:
            raise ValueError(f"{out} was trained with another zero_shot_share")
        if saved["extra"].get("text_pairs", 0) != text_pairs:
            raise ValueError(f"{out} was trained with another number of text pairs")
        state = restore_train_state(saved, modules, {"s2s": optimizer}, {"s2s": scheduler})
        start, seconds_before = state.step, float(state.extra["seconds"])
        first_loss = state.extra["first_loss"]
        data_generator.set_state(state.extra["data_rng"])
        log.info("resuming %s at step %d", out, start)

    out.mkdir(parents=True, exist_ok=True)
    text_data = None
    if config.text.enabled:
        text_data = text_training_data(manifest, config, out, recognizer, progress, max_hearing_cer)
    examples = load_examples(
        manifest,
        codec,
        config,
        out / CODES_FILE,
        progress,
        pairing,
        heads,
        text_data,
        zero_shot=zero_shot_share > 0,
    )
    train, validation = examples["train"], examples["validation"]
    if len(validation) > MAX_VALIDATION_PAIRS:  # a fixed sample across all intents
        chosen = torch.randperm(len(validation), generator=torch.Generator().manual_seed(seed))
        validation = [validation[i] for i in chosen[:MAX_VALIDATION_PAIRS].tolist()]
    if not train:
        raise ValueError(f"{manifest} has no train dialogue pairs (user turns with a pair)")
    log.info("%d train pairs, %d validation pairs", len(train), len(validation))
    silence = silence_codes(codec, SILENCE_S, config.frames_per_step)
    frames_per_step, hop = config.frames_per_step, config.codec.hop
    fields = [*LOG_FIELDS, *(f"val_accuracy_q{q}" for q in range(config.codec.num_quantizers))]
    csv_log = CsvLog(out / LOG_FILE, fields, start if resuming else None)
    averages = Averages()
    last: dict[str, float] = {}
    validated: dict[str, float] = {}

    def save(step: int, seconds: float) -> None:
        extra = {
            "config": config.to_dict(),
            "seconds": seconds,
            "first_loss": first_loss,
            "data_rng": data_generator.get_state(),
            "head_weights": head_weights,
            "coarse_weight": coarse_weight,
            "zero_shot_share": zero_shot_share,
            "text_weights": text_weights,
            "text_pairs": text_pairs,
            "init": None if init is None else str(init),
        }
        save_train_state(out, step, modules, {"s2s": optimizer}, {"s2s": scheduler}, extra)
        metrics = {k: v for k, v in (last | validated).items() if k != "step"}
        checkpoint = {"codec": codec, "encoder": encoder, "decoder": decoder}
        about: dict[str, Any] = {"step": step, "train": metrics, "text_weights": text_weights}
        about |= {"init": None if init is None else str(init), "text_pairs": text_pairs}
        if text_data is not None:
            text_data.tokenizer.save(out / TOKENIZER_DIR)
            about["tokenizer"] = text_data.tokenizer.record()
            about["recognizer_sha256"] = text_data.recognizer_sha256
            about["hearing_cer"] = text_data.hearing_cer
        save_checkpoint(out, checkpoint, config, about)

    pairs = None
    if text_pairs and text_data is not None:
        pairs, _ = text_pairs_for(read_manifest(manifest), config, text_data.tokenizer)
    bar = progress_bar(steps, start, progress)
    began = time.perf_counter()
    by_length = torch.tensor([e.user.shape[1] + e.answer.shape[1] for e in train]).argsort()
    for step in range(start + 1, steps + 1):
        chosen = length_batch(by_length, batch_size, data_generator, LENGTH_POOL)
        batch = collate(
            [train[i] for i in chosen],
            silence,
            frames_per_step,
            hop,
            heard_share,
            data_generator,
            zero_shot_share,
            config.speaker_embedding_dim,
            len(config.speakers),
        )
        batch = batch.to(torch_device)
        with autocast(torch_device, cpu_bf16=True):
            outputs = forward(encoder, decoder, batch, input_dropout, condition_dropout)
        ce, bce = outputs.ce, outputs.bce
        loss = weighted_ce(outputs.per_codebook, coarse_weight) + eot_weight * bce
        values = {"ce": ce, "eot": bce}
        if outputs.text_logits is not None:
            values["text"] = outputs.text_ce
            loss = loss + config.text.text_weight * outputs.text_ce
        if pairs is not None:
            rng = random.Random(seed * 1_000_003 + step)  # the text pairs of a step: resumable
            text_only = draw_batch(pairs, text_pairs, len(config.speakers), rng)
            with autocast(torch_device, cpu_bf16=True):
                values["text_pairs"] = text_pair_ce(encoder, decoder, text_only.to(torch_device))
            loss = loss + config.text.text_weight * values["text_pairs"]
        if heads is not None:
            hidden, mask = outputs.hidden, batch.memory_mask
            values["ctc"] = heads.ctc_loss(hidden, mask, batch.labels, batch.label_lengths)
            values["intent"] = heads.intent_loss(hidden, mask, batch.intent)
            loss = loss + ctc_weight * values["ctc"] + intent_weight * values["intent"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        lr_now = scheduler.get_last_lr()[0]
        scheduler.step()
        values |= {"loss": loss, "grad_norm": grad_norm}
        averages.add({name: float(value.detach()) for name, value in values.items()})
        bar.update()
        seconds = seconds_before + time.perf_counter() - began
        row: dict[str, float] = {}
        if step % log_every == 0 or step == steps:
            last = {"step": step, **averages.pop(), "lr": lr_now, "seconds": seconds}
            first_loss = last["loss"] if first_loss is None else first_loss
            bar.set_postfix_str(describe({k: last[k] for k in ("loss", "ce", "eot")}))
            row = last
        if validation and (step % eval_every == 0 or step == steps):
            validated = validate(
                encoder, decoder, validation, silence, config, batch_size, torch_device, heads
            )
            row = {"step": step, **row, **validated}
        if row:
            csv_log.write(row)
        if step % save_every == 0 or step == steps:
            save(step, seconds)
    bar.close()
    elapsed = time.perf_counter() - began
    counts = {"train_pairs": len(train), "validation_pairs": len(validation)}
    return run_result(last, start, steps, elapsed, **validated, first_loss=first_loss, **counts)


def add_train_s2s_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `s2s` to the subcommands of `telugu-s2s train`."""
    p = subparsers.add_parser(
        "s2s",
        help="train the S2S encoder + decoder on a manifest's dialogue pairs",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="manifest (JSONL) with dialogue pairs")
    p.add_argument("--codec", required=True, help="trained codec checkpoint directory")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="model sizes")
    p.add_argument("--out", required=True, help="output directory (checkpoint, state, log)")
    p.add_argument("--steps", type=int, default=3_000, help="total training steps")
    p.add_argument("--batch-size", type=int, default=8, help="dialogue pairs per step")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate")
    p.add_argument("--eval-every", type=int, default=500, help="steps between validations")
    p.add_argument(
        "--pairing",
        default="dialogue",
        choices=sorted(PAIRINGS),
        help="dialogue: each user turn with its linked answer; intent: with every answer of "
        "its intent and split (the synthetic corpus)",
    )
    p.add_argument(
        "--input-dropout",
        type=float,
        default=0.0,
        help="probability that a decoder position's input codes are dropped in training, so "
        "that the decoder must use the user turn and the conditioning",
    )
    p.add_argument(
        "--condition-dropout",
        type=float,
        default=CONDITION_DROPOUT,
        help="probability that an example's decoder speaker/emotion conditioning is replaced "
        "by the null one in training, so that answers can be sampled with classifier-free "
        "guidance",
    )
    p.add_argument(
        "--ctc-weight",
        type=float,
        default=0.0,
        help="weight of a CTC loss on the encoder output against the user turn's transcript "
        "(a training-only head), so that the encoder carries what was said",
    )
    p.add_argument(
        "--intent-weight",
        type=float,
        default=0.0,
        help="weight of an intent classification loss on the encoder output (a training-only "
        "head), for manifests whose user turns carry extra.intent",
    )
    p.add_argument(
        "--coarse-weight",
        type=float,
        default=0.0,
        help="share of the cross-entropy put on codebook 0 (the rest spread over the finer "
        "codebooks); 0 = the plain mean over codebooks",
    )
    p.add_argument(
        "--zero-shot-share",
        type=float,
        default=ZERO_SHOT_SHARE,
        help="share of named-voice answers conditioned on another clip's speaker embedding "
        "(zero-shot voices) instead of the voice's name; answers by voices without a name "
        "(the corpus's voice bank) always are",
    )
    p.add_argument(
        "--heard-share",
        type=float,
        default=HEARD_SHARE,
        help="share of examples whose user words (text streams) are what the recognizer "
        "heard; the rest get the true transcript",
    )
    p.add_argument(
        "--recognizer",
        default=None,
        help="recognizer checkpoint that hears the user turns and aligns the answers' words "
        "(text streams; default: the shipped one, which the agent runs)",
    )
    p.add_argument(
        "--max-hearing-cer",
        type=float,
        default=MAX_HEARING_CER,
        help="refuse a recognizer that hears the corpus's user turns worse than this CER (one "
        "trained on other voices); a negative value turns the check off",
    )
    p.add_argument(
        "--text-weight",
        type=float,
        default=None,
        help="weight of the text stream's cross-entropy (default: the preset's); may change "
        "when a run resumes (the checkpoint records each weight and its first step)",
    )
    p.add_argument(
        "--init",
        default=None,
        help="checkpoint whose encoder and decoder weights a new run starts from (train "
        "monologue's: the text streams trained on text first)",
    )
    p.add_argument(
        "--text-pairs",
        type=int,
        default=0,
        help="text-only pairs (user turn -> answer text, drawn from the corpus's train "
        "intents) trained beside every batch, so that what to answer is not unlearnt",
    )
    p.add_argument(
        "--copy-pieces",
        action="store_true",
        help="add the copy path for saying the user's words back (kept from an --init "
        "checkpoint that has it)",
    )
    p.add_argument(
        "--follow-pieces",
        action="store_true",
        help="and the piece-before signatures (implies --copy-pieces; kept from --init)",
    )
    add_run_options(p, log_every=25, save_every=500)
    p.set_defaults(run=_run_train_s2s)
    return p


def _run_train_s2s(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    metrics = train_s2s(
        args.data,
        args.codec,
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
        resume=args.resume,
        seed=args.seed,
        config=args.preset,
        log_every=args.log_every,
        eval_every=args.eval_every,
        save_every=args.save_every,
        progress=not args.no_progress,
        pairing=args.pairing,
        input_dropout=args.input_dropout,
        condition_dropout=args.condition_dropout,
        ctc_weight=args.ctc_weight,
        intent_weight=args.intent_weight,
        coarse_weight=args.coarse_weight,
        heard_share=args.heard_share,
        recognizer=args.recognizer,
        text_weight=args.text_weight,
        zero_shot_share=args.zero_shot_share,
        init=args.init,
        text_pairs=args.text_pairs,
        copy_pieces=args.copy_pieces,
        follow_pieces=args.follow_pieces,
        max_hearing_cer=None if args.max_hearing_cer < 0 else args.max_hearing_cer,
    )
    print(json.dumps(metrics))
    return 0

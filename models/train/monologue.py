"""`telugu-s2s train monologue`: the text streams trained on text alone, before any audio.

Moshi trains its transformer on text before it hears audio; here the text is the corpus's own
intents drawn as `models.train.text_pairs` draws them. Only what the text streams use is
trained: the user-text memory (`StreamingEncoder.user_text`) and the decoder, whose positions
read their previous text token and no codes (`StreamingDecoder.text_hidden`). The run saves a
checkpoint of the encoder and decoder that `train s2s --init` starts from; `train s2s
--text-pairs N` keeps N text-only pairs beside every audio batch, so that the joint training
does not unlearn what to answer while it learns to say it.

Validation is what the stream means when it runs free: held-out user turns (validation
wordings and slot values, their true transcript) in, the text stream sampled step by step
(`free_text`), and the answer judged as `eval s2s` judges a transcript (intent of the closest
reference answer; slot value said back).
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.checkpoints import load_config, load_state, save_checkpoint
from models.config import S2SConfig, preset, with_copy_pieces
from models.data.manifest import Entry, read_manifest
from models.eval.judge import IntentTexts, said_back
from models.loading import TOKENIZER_DIR
from models.s2s.decoder import StreamingDecoder
from models.s2s.delay import TEXT_END, TEXT_IGNORE, TEXT_PAD
from models.s2s.encoder import StreamingEncoder
from models.s2s.user_text import user_pieces
from models.text.tokenizer import Tokenizer
from models.train.common import (
    TRAIN_STATE,
    Averages,
    CsvLog,
    add_run_options,
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
from models.train.text_pairs import AnswerTiming, TextPair, TextPairs, fit_timing

log = logging.getLogger(__name__)

LOG_FILE = "log.csv"
LOG_FIELDS = ("step", "loss", "lr", "seconds", "val_intent", "val_slot", "val_turns")
WEIGHT_DECAY = 0.01
CLIP = 1.0
TEXT_TEMPERATURE = 0.7
"""The text stream's sampling temperature in `free_text` (Moshi samples its text at 0.7)."""
VALIDATION_TURNS = 120


@dataclass
class TextBatch:
    """Padded text-only pairs."""

    user: Tensor
    """(B, N) user pieces, PAD-padded."""
    user_mask: Tensor
    """(B, N) bool, True on real pieces."""
    goal: Tensor
    """(B, T) the answers' text streams, TEXT_IGNORE-padded."""
    emotion: Tensor
    speaker: Tensor

    def to(self, device: torch.device) -> TextBatch:
        return TextBatch(**{k: v.to(device) for k, v in vars(self).items()})


def text_batch(pairs: list[TextPair], speaker: Tensor) -> TextBatch:
    """Pad `pairs`; answer b in the named voice `speaker[b]` (its text does not depend on
    the voice)."""
    width = max(1, max(len(p.user) for p in pairs))
    steps = max(len(p.answer) for p in pairs)
    return TextBatch(
        user=torch.stack([F.pad(p.user, (0, width - len(p.user))) for p in pairs]),
        user_mask=torch.stack([torch.arange(width) < len(p.user) for p in pairs]),
        goal=torch.stack(
            [F.pad(p.answer, (0, steps - len(p.answer)), value=TEXT_IGNORE) for p in pairs]
        ),
        emotion=torch.tensor([p.emotion for p in pairs]),
        speaker=speaker,
    )


def draw_batch(
    pairs: TextPairs, size: int, speakers: int, rng: random.Random, pool: int = 4
) -> TextBatch:
    """`size` pairs of like length: the `size` nearest in answer length among `pool` x size
    drawn (less padding, as `train s2s` batches by length)."""
    drawn = sorted((pairs.draw(rng) for _ in range(pool * size)), key=lambda p: len(p.answer))
    first = rng.randrange(len(drawn) - size + 1)
    chosen = drawn[first : first + size]
    return text_batch(chosen, torch.tensor([rng.randrange(speakers) for _ in chosen]))


def start_from(
    checkpoint: str | Path, config: S2SConfig, encoder: StreamingEncoder, decoder: StreamingDecoder
) -> None:
    """Load a checkpoint's encoder and decoder weights into a new run's (`--init`). Its model
    must be `config`'s but for the codec, the name, the text stream's loss weight, and the
    copy paths, which a run may add to a model without them (`TextConfig.copy_pieces`,
    `follow_pieces`; the parts they add keep their initial values)."""
    saved = load_config(checkpoint)
    text = config.text
    for path in ("copy_pieces", "follow_pieces"):
        if getattr(saved.text, path) and not getattr(text, path):
            raise ValueError(f"{checkpoint} has a copy path ({path}) that {config.name} lacks")
    same = replace(
        saved,
        codec=config.codec,
        name=config.name,
        text=replace(
            saved.text,
            text_weight=text.text_weight,
            copy_pieces=text.copy_pieces,
            follow_pieces=text.follow_pieces,
        ),
    )
    if same != config:
        raise ValueError(f"{checkpoint} has another model configuration than {config.name}")
    added = tuple(
        key
        for key, new in (
            ("text_copy.weight", text.copy_pieces and not saved.text.copy_pieces),
            ("text_read.weight", text.follow_pieces and not saved.text.follow_pieces),
        )
        if new
    )
    load_state(checkpoint, "encoder", encoder)
    load_state(checkpoint, "decoder", decoder, added)
    log.info("starting from %s", checkpoint)


def text_pair_logits(
    encoder: StreamingEncoder, decoder: StreamingDecoder, batch: TextBatch
) -> Tensor:
    """(B, T, text vocab) the text stream's logits on text-only pairs, teacher-forced."""
    if encoder.user_text is None or decoder.text_output is None:
        raise ValueError("text-only pairs train a model with text streams")
    memory = encoder.user_text(batch.user)
    condition = decoder.condition(batch.speaker, batch.emotion)
    inputs = torch.cat([torch.full_like(batch.goal[:, :1], TEXT_PAD), batch.goal[:, :-1]], 1)
    inputs = inputs.masked_fill(inputs == TEXT_IGNORE, TEXT_PAD)
    hidden = decoder.text_hidden(inputs, memory.to(condition.dtype), condition, batch.user_mask)
    return decoder.text_logits(hidden)


def text_pair_ce(
    encoder: StreamingEncoder, decoder: StreamingDecoder, batch: TextBatch, reduction: str = "mean"
) -> Tensor:
    """The text stream's cross-entropy on text-only pairs (teacher-forced): the mean over
    trained steps, or with `reduction` "sum" their sum."""
    return text_ce(text_pair_logits(encoder, decoder, batch), batch.goal, reduction)


def text_ce(logits: Tensor, goal: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of text logits (B, T, vocab) against targets (B, T), TEXT_IGNORE left
    out: their mean, or with `reduction` "sum" their sum."""
    return F.cross_entropy(
        logits.flatten(0, 1).float(), goal.flatten(), ignore_index=TEXT_IGNORE, reduction=reduction
    )


@torch.inference_mode()
def free_text(
    encoder: StreamingEncoder,
    decoder: StreamingDecoder,
    user: Tensor,
    user_mask: Tensor,
    emotion: Tensor,
    speaker: Tensor,
    steps: int,
    generator: torch.Generator,
    temperature: float = TEXT_TEMPERATURE,
) -> Tensor:
    """(B, steps) the text stream run free from user pieces (B, N), without codes: each step
    sampled at `temperature` from `generator` and read back at the next, until the row says
    TEXT_END (PAD after it; the run stops when every row has ended)."""
    if encoder.user_text is None or decoder.text_embedding is None:
        raise ValueError("free_text needs a model with text streams")
    memory = decoder.project_memory(encoder.user_text(user), user_mask, user.shape[1])
    cache = decoder.new_cache(memory, speaker, emotion, steps)
    token = torch.full((user.shape[0],), TEXT_PAD, dtype=torch.long, device=user.device)
    said = torch.full((user.shape[0], steps), TEXT_PAD, dtype=torch.long, device=user.device)
    ended = torch.zeros(user.shape[0], dtype=torch.bool, device=user.device)
    for step in range(steps):
        probs = (decoder.text_step(cache, token).float() / temperature).softmax(-1)
        token = torch.multinomial(probs, 1, generator=generator)[:, 0]
        said[:, step] = token.masked_fill(ended, TEXT_PAD)
        ended |= token == TEXT_END
        if bool(ended.all()):
            break
    return said


def held_out_turns(entries: list[Entry], split: str, limit: int) -> list[Entry]:
    """The first `limit` distinct user turns of `split` (by text)."""
    seen: set[str] = set()
    turns = []
    for entry in entries:
        user = entry.dialogue is not None and entry.dialogue.role == "user"
        if user and entry.split == split and entry.text not in seen and "intent" in entry.extra:
            seen.add(entry.text)
            turns.append(entry)
    return turns[:limit]


def meant_answers(
    encoder: StreamingEncoder,
    decoder: StreamingDecoder,
    tokenizer: Tokenizer,
    turns: list[Entry],
    judge: IntentTexts,
    steps: int,
    seed: int = 0,
) -> dict[str, Any]:
    """What the free-running text stream answers to `turns` (true transcripts, neutral
    emotion, the first named voice): intent accuracy, slot values said back, examples."""
    if not turns:
        return {"turns": 0, "intent": None, "slot": None, "examples": []}
    device = next(decoder.parameters()).device
    limit = decoder.config.text.max_user_tokens
    tokens = [user_pieces(tokenizer, e.text, limit) for e in turns]
    width = max(1, max(len(t) for t in tokens))
    user = torch.stack([F.pad(t, (0, width - len(t))) for t in tokens]).to(device)
    mask = torch.stack([torch.arange(width) < len(t) for t in tokens]).to(device)
    zeros = torch.zeros(len(turns), dtype=torch.long, device=device)
    generator = torch.Generator(device).manual_seed(seed)
    said = free_text(encoder, decoder, user, mask, zeros, zeros, steps, generator)
    intents, slots, examples = [], [], []
    for entry, ids in zip(turns, said.tolist(), strict=True):
        text = tokenizer.decode(ids)
        intents.append(judge.closest(text) == entry.extra["intent"])
        if "value" in entry.extra:
            slots.append(said_back(entry.extra["value"], text))
        examples.append({"user": entry.text, "meant": text})
    return {
        "turns": len(turns),
        "intent": sum(intents) / len(intents),
        "slot": sum(slots) / len(slots) if slots else None,
        "slot_turns": len(slots),
        "examples": examples[:8],
    }


def answer_judge(entries: list[Entry]) -> IntentTexts:
    """The reference answers of every intent of a manifest."""
    return IntentTexts(
        (e.extra["intent"], e.text)
        for e in entries
        if e.dialogue is not None and e.dialogue.role == "agent" and "intent" in e.extra
    )


def text_pairs_for(
    entries: list[Entry], config: S2SConfig, tokenizer: Tokenizer
) -> tuple[TextPairs, AnswerTiming]:
    """The text-only pairs of `config`, timed by the train answers of a manifest's `entries`."""
    answers = [
        e for e in entries if e.split == "train" and e.dialogue and e.dialogue.role == "agent"
    ]
    timing = fit_timing(answers)
    pairs = TextPairs(
        tokenizer,
        config.emotions,
        timing,
        config.step_ms / 1000,
        config.text.lead_steps,
        config.text.max_user_tokens,
    )
    return pairs, timing


def train_monologue(
    manifest: str | Path,
    out_dir: str | Path,
    config: str | S2SConfig = "demo",
    steps: int = 1_000,
    batch_size: int = 16,
    lr: float = 1e-3,
    device: str = "auto",
    resume: bool = False,
    seed: int = 0,
    *,
    log_every: int = 25,
    eval_every: int = 250,
    save_every: int = 250,
    progress: bool = True,
    init: str | Path | None = None,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train the text streams of `config` on text-only pairs for `steps` steps (or continue a
    run saved in `out_dir` with `resume`); the checkpoint in `out_dir` holds the encoder
    and decoder (only their text parts trained) for `train s2s --init`. `init`: a checkpoint
    of the same model (a trained S2S model's) that a new run starts from. `stop_at`: save and
    stop after that step, the learning-rate schedule still spanning `steps`."""
    manifest, out = Path(manifest), Path(out_dir)
    config = preset(config) if isinstance(config, str) else config
    if not config.text.enabled:
        raise ValueError(f"the {config.name} configuration has no text streams")
    resuming = (out / TRAIN_STATE).exists()
    if resuming and not resume:
        raise FileExistsError(f"{out} already holds a training run; resume it or pick another")
    torch_device = select_device(device)
    seed_everything(seed)
    tokenizer = Tokenizer.load()
    if tokenizer.vocab_size != config.text.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} pieces, not {config.text.vocab_size}"
        )
    encoder = StreamingEncoder(config).to(torch_device).train()
    decoder = StreamingDecoder(config).to(torch_device).train()
    if init is not None and not resuming:
        start_from(init, config, encoder, decoder)
    modules = {"encoder": encoder, "decoder": decoder}
    trained = nn.ModuleDict({"user_text": encoder.user_text, "decoder": decoder})
    optimizer = torch.optim.AdamW(parameter_groups(trained, WEIGHT_DECAY), lr=lr)
    scheduler = warmup_cosine(optimizer, max(1, min(100, steps // 10)), steps)
    start, seconds_before = 0, 0.0
    if resuming:
        saved = read_train_state(out)
        if S2SConfig.from_dict(saved["extra"]["config"]) != config:
            raise ValueError(f"{out} was trained with another configuration than {config.name}")
        state = restore_train_state(saved, modules, {"text": optimizer}, {"text": scheduler})
        start, seconds_before = state.step, float(state.extra["seconds"])
    entries = read_manifest(manifest)
    pairs, timing = text_pairs_for(entries, config, tokenizer)
    judge, turns = answer_judge(entries), held_out_turns(entries, "validation", VALIDATION_TURNS)
    free_steps = config.decoder.max_steps // 2
    out.mkdir(parents=True, exist_ok=True)
    csv_log = CsvLog(out / LOG_FILE, LOG_FIELDS, start if resuming else None)
    averages, last, validated = Averages(), {}, {}
    last_step = steps if stop_at is None else min(steps, stop_at)
    bar = progress_bar(last_step, start, progress)
    began = time.perf_counter()
    for step in range(start + 1, last_step + 1):
        rng = random.Random(seed * 1_000_003 + step)  # the data of a step: resumable
        batch = draw_batch(pairs, batch_size, len(config.speakers), rng).to(torch_device)
        loss = text_pair_ce(encoder, decoder, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(trained.parameters(), CLIP)
        optimizer.step()
        lr_now = scheduler.get_last_lr()[0]
        scheduler.step()
        averages.add({"loss": float(loss.detach())})
        bar.update()
        seconds = seconds_before + time.perf_counter() - began
        row: dict[str, Any] = {}
        if step % log_every == 0 or step == last_step:
            last = {"step": step, **averages.pop(), "lr": lr_now, "seconds": seconds}
            row = last
        if eval_every and (step % eval_every == 0 or step == last_step):
            decoder.eval(), encoder.eval()
            meant = meant_answers(encoder, decoder, tokenizer, turns, judge, free_steps, seed)
            decoder.train(), encoder.train()
            validated = {
                "val_intent": meant["intent"],
                "val_slot": meant["slot"],
                "val_turns": meant["turns"],
            }
            log.info("step %d: %s", step, meant["examples"][:3])
            row = {"step": step, **row, **validated}
        if row:
            csv_log.write(row)
        if step % save_every == 0 or step == last_step:
            extra = {"config": config.to_dict(), "seconds": seconds}
            save_train_state(out, step, modules, {"text": optimizer}, {"text": scheduler}, extra)
            about = {
                "step": step,
                "monologue": {"timing": vars(timing), **last, **validated},
                "tokenizer": tokenizer.record(),
                "init": None if init is None else str(init),
            }
            save_checkpoint(out, modules, config, about)
            tokenizer.save(out / TOKENIZER_DIR)
    bar.close()
    return run_result(last, start, last_step, time.perf_counter() - began, **validated)


def add_train_monologue_command(
    subparsers: argparse._SubParsersAction,
) -> argparse.ArgumentParser:
    """Add `monologue` to the subcommands of `telugu-s2s train`."""
    p = subparsers.add_parser(
        "monologue",
        help="train the text streams on text-only pairs (before train s2s --init)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="the corpus manifest (its intents' splits)")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="demo")
    p.add_argument("--steps", type=int, default=1_000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=250, help="0: no validation")
    p.add_argument(
        "--stop-at",
        type=int,
        default=None,
        help="save and stop after this step (the schedule still spans --steps)",
    )
    p.add_argument("--init", default=None, help="checkpoint of the same model to start from")
    p.add_argument(
        "--copy-pieces",
        action="store_true",
        help="add the copy path for saying the user's words back (TextConfig.copy_pieces)",
    )
    p.add_argument(
        "--follow-pieces",
        action="store_true",
        help="and the piece-before signatures (TextConfig.follow_pieces; implies --copy-pieces)",
    )
    add_run_options(p, log_every=25, save_every=250)
    p.set_defaults(run=_run_monologue)
    return p


def _run_monologue(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    result = train_monologue(
        args.data,
        args.out,
        with_copy_pieces(preset(args.preset), args.copy_pieces, args.follow_pieces),
        args.steps,
        args.batch_size,
        args.lr,
        args.device,
        args.resume,
        args.seed,
        log_every=args.log_every,
        eval_every=args.eval_every,
        save_every=args.save_every,
        progress=not args.no_progress,
        init=args.init,
        stop_at=args.stop_at,
    )
    print({k: v for k, v in result.items() if not isinstance(v, list)})
    return 0

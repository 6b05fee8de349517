"""`telugu-s2s eval monologue`: what a model's text stream means to answer, run free on text.

The user turns of a split (their true transcripts) go into the user-text memory; the decoder's
text stream runs free without codes (`models.train.monologue.free_text`), and its answer is
judged as `eval s2s` judges a transcript: the intent of the closest reference answer, and
whether the turn's slot value is said back. This isolates *what to say* from *saying it*: it
needs no codec, no audio and no recognizer, and it is the figure `train monologue` validates
on. It is not the agent's figure (`eval s2s` judges the answer audio).

It also reports whether the stream listens at all, teacher-forced: the text cross-entropy of
each turn's reference answer (its words placed by the corpus's timing fit, spread over the
answer's real duration) after its own user turn and after a turn of another intent. A stream
that ignores the user scores both the same. And whether it can say a slot value back when it
is shown the way, teacher-forced: the share of the value's pieces in the reference answer
that the stream ranks first at their steps (`value_pieces`), apart from finding the way
running free (`slot`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from models.checkpoints import load_config
from models.config import S2SConfig
from models.data.manifest import Entry, read_manifest
from models.loading import TOKENIZER_DIR
from models.s2s.decoder import StreamingDecoder
from models.s2s.delay import TEXT_END, TEXT_IGNORE
from models.s2s.encoder import StreamingEncoder
from models.text.tokenizer import EPAD, PAD, Tokenizer
from models.train.monologue import (
    answer_judge,
    held_out_turns,
    meant_answers,
    start_from,
    text_batch,
    text_ce,
    text_pair_logits,
    text_pairs_for,
)
from models.train.text_pairs import TextPair, TextPairs

DEFAULT_TURNS = 400
CE_BATCH = 16
NOT_PIECES = (PAD, EPAD, TEXT_END)


def evaluate_monologue(
    checkpoint: str | Path,
    manifest: str | Path,
    split: str = "test",
    turns: int = DEFAULT_TURNS,
    seed: int = 0,
) -> dict[str, Any]:
    """Intent and slot figures of the free-running text stream on `split`'s distinct user
    turns (at most `turns`), sampled from a generator seeded with `seed`."""
    config = load_config(checkpoint)
    if not config.text.enabled:
        raise ValueError(f"{checkpoint} has no text streams")
    encoder, decoder = StreamingEncoder(config).eval(), StreamingDecoder(config).eval()
    start_from(checkpoint, config, encoder, decoder)
    own = Path(checkpoint) / TOKENIZER_DIR
    tokenizer = Tokenizer.load(own) if own.is_dir() else Tokenizer.load()
    entries = read_manifest(manifest)
    chosen = held_out_turns(entries, split, turns)
    steps = config.decoder.max_steps // 2
    result = meant_answers(encoder, decoder, tokenizer, chosen, answer_judge(entries), steps, seed)
    pairs, _ = text_pairs_for(entries, config, tokenizer)
    listening = own_and_other_ce(encoder, decoder, config, pairs, entries, chosen)
    return {"checkpoint": str(checkpoint), "split": split, "seed": seed, **result, **listening}


def reference_pairs(
    config: S2SConfig, pairs: TextPairs, entries: list[Entry], turns: list[Entry]
) -> tuple[list[TextPair], list[Entry]]:
    """Each turn that has a reference answer in `entries`, as a text pair (the answer's words
    spread over its real duration), and the turns that have one."""
    answers = {e.key: e for e in entries}
    made, kept = [], []
    for turn in turns:
        key = turn.dialogue.pair if turn.dialogue else None
        answer = answers.get(key) if key else None
        if answer is None:
            continue
        emotion = config.emotions.index(answer.emotion) if answer.emotion in config.emotions else 0
        made.append(pairs.lasting(turn.text, answer.text, emotion, answer.duration))
        kept.append(turn)
    return made, kept


def value_steps(tokenizer: Tokenizer, value: str, answer: Tensor) -> list[int]:
    """The steps of an answer stream that hold the pieces of slot `value` (its words cut as
    the stream cuts words), the first place they occur in order; [] when they do not."""
    wanted = [piece for word in value.split() for piece in tokenizer.encode(word)]
    steps = [t for t, token in enumerate(answer.tolist()) if token not in NOT_PIECES]
    said = [int(answer[t]) for t in steps]
    for first in range(len(said) - len(wanted) + 1):
        if wanted and said[first : first + len(wanted)] == wanted:
            return steps[first : first + len(wanted)]
    return []


@torch.inference_mode()
def own_and_other_ce(
    encoder: StreamingEncoder,
    decoder: StreamingDecoder,
    config: S2SConfig,
    pairs: TextPairs,
    entries: list[Entry],
    turns: list[Entry],
) -> dict[str, Any]:
    """Mean text cross-entropy per trained step of the turns' reference answers after their
    own user turn (`ce_own`) and after the next turn of another intent (`ce_other`); the
    share of slot values' pieces ranked first at their steps after the own turn
    (`value_pieces`, over `value_piece_count` pieces)."""
    made, kept = reference_pairs(config, pairs, entries, turns)
    intents = [turn.extra["intent"] for turn in kept]
    if len({*intents}) < 2:
        return {
            "ce_turns": len(made),
            "ce_own": None,
            "ce_other": None,
            "value_pieces": None,
            "value_piece_count": 0,
        }
    others = []
    for index, intent in enumerate(intents):
        step = 1
        while intents[(index + step) % len(made)] == intent:
            step += 1
        others.append(made[(index + step) % len(made)].user)
    sums, count, right, pieces = {"own": 0.0, "other": 0.0}, 0, 0, 0
    device = next(decoder.parameters()).device
    for first in range(0, len(made), CE_BATCH):
        chunk = made[first : first + CE_BATCH]
        swapped = [
            TextPair(user, p.answer, p.emotion)
            for user, p in zip(others[first : first + CE_BATCH], chunk, strict=True)
        ]
        for name, group in (("own", chunk), ("other", swapped)):
            batch = text_batch(group, torch.zeros(len(group), dtype=torch.long)).to(device)
            logits = text_pair_logits(encoder, decoder, batch)
            sums[name] += float(text_ce(logits, batch.goal, "sum"))
            if name == "own":
                best = logits.argmax(-1).cpu()
                hits = _value_hits(pairs.tokenizer, best, chunk, kept[first : first + CE_BATCH])
                right, pieces = right + hits[0], pieces + hits[1]
        count += sum(int(p.answer.ne(TEXT_IGNORE).sum()) for p in chunk)
    return {
        "ce_turns": len(made),
        "ce_own": sums["own"] / count,
        "ce_other": sums["other"] / count,
        "value_pieces": right / pieces if pieces else None,
        "value_piece_count": pieces,
    }


def _value_hits(
    tokenizer: Tokenizer, best: Tensor, chunk: list[TextPair], turns: list[Entry]
) -> tuple[int, int]:
    """(pieces ranked first, pieces) of the slot values of `turns`' reference answers, given
    the argmax `best` (B, T) of their own-turn pass."""
    right = pieces = 0
    for row, (pair, turn) in enumerate(zip(chunk, turns, strict=True)):
        value = turn.extra.get("value")
        steps = value_steps(tokenizer, value, pair.answer) if value else []
        right += sum(int(best[row, t] == pair.answer[t]) for t in steps)
        pieces += len(steps)
    return right, pieces


def add_eval_monologue_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `monologue` to the subcommands of `telugu-s2s eval`."""
    p = subparsers.add_parser(
        "monologue",
        help="what the text stream means to answer, run free on held-out user turns' text",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="a checkpoint with text streams")
    p.add_argument("--data", required=True, help="the corpus manifest")
    p.add_argument("--split", default="test", choices=("train", "validation", "test"))
    p.add_argument("--turns", type=int, default=DEFAULT_TURNS, help="most distinct user turns")
    p.add_argument("--seed", type=int, default=0, help="seed of the text stream's sampling")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=_run_eval_monologue)
    return p


def _run_eval_monologue(args: argparse.Namespace) -> int:
    result = evaluate_monologue(args.checkpoint, args.data, args.split, args.turns, args.seed)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    slot = "-" if result["slot"] is None else f"{100 * result['slot']:.1f} %"
    intent = "-" if result["intent"] is None else f"{100 * result['intent']:.1f} %"
    print(f"{result['turns']} {args.split} turns: intent {intent}, slot said back {slot}")
    if result["ce_own"] is not None:
        print(
            f"text CE of the reference answers ({result['ce_turns']} turns): "
            f"{result['ce_own']:.3f} after their own turn, {result['ce_other']:.3f} after another"
        )
    if result["value_pieces"] is not None:
        print(
            f"slot value pieces ranked first, teacher-forced: "
            f"{100 * result['value_pieces']:.1f} % of {result['value_piece_count']}"
        )
    for example in result["examples"]:
        print(f"  {example['user']} -> {example['meant']}")
    return 0

"""`telugu-s2s eval monologue`: what a model's text stream means to answer, run free on text.

The user turns of a split (their true transcripts) go into the user-text memory; the decoder's
text stream runs free without codes (`models.train.monologue.free_text`), and its answer is
judged as `eval s2s` judges a transcript: the intent of the closest reference answer, and
whether the turn's slot value is said back. This isolates *what to say* from *saying it*: it
needs no codec, no audio and no recognizer, and it is the figure `train monologue` validates
on. It is not the agent's figure (`eval s2s` judges the answer audio).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from models.checkpoints import load_config
from models.data.manifest import read_manifest
from models.loading import TOKENIZER_DIR
from models.s2s.decoder import StreamingDecoder
from models.s2s.encoder import StreamingEncoder
from models.text.tokenizer import Tokenizer
from models.train.monologue import answer_judge, held_out_turns, meant_answers, start_from

DEFAULT_TURNS = 400


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
    return {"checkpoint": str(checkpoint), "split": split, "seed": seed, **result}


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
    for example in result["examples"]:
        print(f"  {example['user']} -> {example['meant']}")
    return 0

"""`telugu-s2s models | data | train | eval | transcribe`: the command groups that make a
model, judge it, ship it and run the recognizer. Each recipe's own options live beside it
(models/data/commands.py, models/train/*.py, models/eval/*.py, models/asr/commands.py);
signaling/cli.py adds these groups to the console script."""

from __future__ import annotations

import argparse
import json


def add_models_commands(p: argparse.ArgumentParser) -> None:
    """`info`, `export` and `card` under the `models` parser, each with `run`."""
    actions = p.add_subparsers(dest="action", required=True)
    info = actions.add_parser("info", help="sizes, rates and parameter counts of each preset")
    info.add_argument("--json", action="store_true", help="print one JSON document")
    info.add_argument("--log-level", default="warning")
    info.set_defaults(run=_models_info)
    export = actions.add_parser(
        "export", help="re-save a checkpoint (S2S model or recognizer) for shipping"
    )
    export.add_argument("source", help="checkpoint directory (e.g. a training run)")
    export.add_argument("target", help="directory to write")
    export.add_argument(
        "--dtype",
        choices=["float16", "float32"],
        default="float16",
        help="storage precision of the weights",
    )
    export.add_argument(
        "--codec",
        help="take the codec from this checkpoint (trained further with `train codec "
        "--decoder-only` from the source's codec)",
    )
    export.add_argument("--log-level", default="warning")
    export.set_defaults(run=_models_export)
    card = actions.add_parser(
        "card", help="write a checkpoint's MODEL_CARD.md from its runs' logs and eval files"
    )
    card.add_argument("checkpoint", help="shipped checkpoint directory (holds eval-*.json)")
    card.add_argument(
        "--codec-run",
        default=None,
        help="the codec's training directory (none: the codec was reused unchanged)",
    )
    card.add_argument(
        "--s2s-run",
        required=True,
        action="append",
        help="an S2S training directory; repeat it for each stage, in training order",
    )
    card.add_argument("--data", required=True, help="the manifest the runs trained on")
    card.add_argument(
        "--command", default="make demo-model", help="the command that reproduces the model"
    )
    card.add_argument("--log-level", default="warning")
    card.set_defaults(run=_models_card)


def _models_card(args: argparse.Namespace) -> int:
    from models.card import write_card

    path = write_card(args.checkpoint, args.codec_run, args.s2s_run, args.data, args.command)
    print(path)
    return 0


def _models_export(args: argparse.Namespace) -> int:
    import torch

    from models.asr.checkpoint import export_recognizer, is_recognizer
    from models.loading import export

    dtype = torch.float16 if args.dtype == "float16" else None
    if is_recognizer(args.source):
        target = export_recognizer(args.source, args.target, dtype)
    else:
        target = export(args.source, args.target, dtype, args.codec)
    size = sum(f.stat().st_size for f in target.iterdir()) / 2**20
    print(f"{target}: {size:.1f} MiB")
    return 0


def _models_info(args: argparse.Namespace) -> int:
    from models.info import describe_presets

    info = describe_presets()
    if args.json:
        print(json.dumps(info))
        return 0
    for name, parts in info["presets"].items():
        print(f"{name}:")
        for part, facts in parts.items():
            print(f"  {part:8} " + "  ".join(f"{k}={v}" for k, v in facts.items()))
    return 0


def add_pipeline_commands(commands: argparse._SubParsersAction) -> None:
    """`data`, `train`, `eval` and `transcribe`: the commands that make, judge and run a
    model."""
    from models.asr.commands import add_transcribe_command
    from models.data.commands import add_data_commands
    from models.eval.asr import add_eval_asr_command
    from models.eval.codec import add_eval_codec_command
    from models.eval.eot import add_eval_eot_command
    from models.eval.monologue import add_eval_monologue_command
    from models.eval.s2s import add_eval_s2s_command
    from models.text.training import add_train_tokenizer_command
    from models.train.asr import add_train_asr_command
    from models.train.codec import add_train_codec_command
    from models.train.endpoint import add_train_endpoint_command
    from models.train.monologue import add_train_monologue_command
    from models.train.s2s import add_train_s2s_command

    data = commands.add_parser("data", help="import datasets, synthesize the Telugu corpus")
    add_data_commands(data.add_subparsers(dest="action", required=True))
    train = commands.add_parser(
        "train",
        help="train the codec, the S2S model, the recognizer, the end-of-turn head or the "
        "tokenizer",
    )
    recipes = train.add_subparsers(dest="recipe", required=True)
    add_train_codec_command(recipes)
    add_train_s2s_command(recipes)
    add_train_monologue_command(recipes)
    add_train_asr_command(recipes)
    add_train_endpoint_command(recipes)
    add_train_tokenizer_command(recipes)
    judge = commands.add_parser(
        "eval", help="evaluate the codec, the S2S model, end of turn, the recognizer"
    )
    evaluations = judge.add_subparsers(dest="evaluation", required=True)
    add_eval_codec_command(evaluations)
    add_eval_s2s_command(evaluations)
    add_eval_eot_command(evaluations)
    add_eval_asr_command(evaluations)
    add_eval_monologue_command(evaluations)
    add_transcribe_command(commands)

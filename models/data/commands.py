"""`telugu-s2s data import|synth|stats|voices`: the data kit's command-line sub-commands."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from models.data.importers import IMPORTERS, Fractions, import_dataset
from models.data.manifest import read_manifest
from models.data.stats import format_stats, manifest_stats
from models.data.synth import BANK_ANSWERS, SLOT_VALUES, SMALL_CORPUS, synthesize_corpus
from models.data.voices import PERSONAS, SHIPPED_PERSONAS, bank_splits, voice_bank


def add_data_commands(actions: argparse._SubParsersAction) -> None:
    """Add `import`, `synth`, `stats` and `voices` to the sub-commands of the `data` parser,
    each with `run`."""
    imp = actions.add_parser(
        "import",
        help="write a manifest for a dataset on disk",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    imp.add_argument("--format", required=True, choices=sorted(IMPORTERS), help="its layout")
    imp.add_argument("src", help="the unpacked dataset folder (the .csv file for csv)")
    imp.add_argument("out", help="the manifest to write (.jsonl)")
    imp.add_argument("--speaker", help="speaker name for every utterance")
    imp.add_argument(
        "--fractions",
        type=_fractions,
        default="90/5/5",
        metavar="TRAIN/VALIDATION/TEST",
        help="shares of the hashed split, e.g. 90/5/5, for data that states none",
    )
    imp.add_argument("--log-level", default="warning")
    imp.set_defaults(run=_import)

    synth = actions.add_parser(
        "synth",
        help="speak the synthetic Telugu conversational corpus with espeak-ng",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    synth.add_argument("out_dir", help="folder for user/, agent/ and manifest.jsonl")
    synth.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    synth.add_argument("--small", action="store_true", help="a tiny corpus, made in seconds")
    synth.add_argument("--paraphrases", type=int, help="paraphrases per intent (None: all)")
    synth.add_argument(
        "--answer-voices", type=int, default=2, help="personas speaking each answer (1-4)"
    )
    synth.add_argument(
        "--slot-values",
        type=int,
        help=f"values per slot type of the slot intents, split 70/15/15 (0: no slot intents; "
        f"default {SLOT_VALUES}, {SMALL_CORPUS['slot_values']} with --small)",
    )
    synth.add_argument(
        "--bank-voices",
        type=int,
        help="voices of the voice bank that speak answers, for zero-shot voice training "
        f"(default all 70, {SMALL_CORPUS['bank_voices']} with --small)",
    )
    synth.add_argument(
        "--bank-answers",
        type=int,
        help=f"answers each bank voice speaks (0: none; default {BANK_ANSWERS}, "
        f"{SMALL_CORPUS['bank_answers']} with --small)",
    )
    synth.add_argument("--workers", type=int, help="parallel renders (None: one per CPU)")
    synth.add_argument("--log-level", default="warning")
    synth.set_defaults(run=_synth)

    stats = actions.add_parser(
        "stats",
        help="files and hours of a manifest by split, role, speaker and emotion, and how much "
        "held-out user wording shares with training",
    )
    stats.add_argument("manifest", help="the manifest (.jsonl)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of text")
    stats.add_argument("--log-level", default="warning")
    stats.set_defaults(run=_stats)

    voices = actions.add_parser(
        "voices",
        help="how far apart the speaker encoder holds the corpus's voices: each speaks the same "
        "answers in every emotion; own similarity, nearest other voice, margin",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    voices.add_argument("--clips", type=int, default=18, help="answers spoken by each voice")
    voices.add_argument(
        "--set",
        default="personas",
        choices=["personas", "shipped", "bank-test", "bank"],
        help="the four personas, the earlier personas the shipped models learned, the voice "
        "bank's test voices (held out from training), or the whole voice bank",
    )
    voices.add_argument("--json", action="store_true", help="print JSON instead of text")
    voices.add_argument("--log-level", default="warning")
    voices.set_defaults(run=_voices)


def _fractions(text: str) -> Fractions:
    try:
        train, validation, test = (float(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TRAIN/VALIDATION/TEST, not {text!r}") from None
    if min(train, validation, test) < 0 or train + validation + test <= 0:
        raise argparse.ArgumentTypeError(f"shares must be >= 0 and not all 0: {text!r}")
    return train, validation, test


def _import(args: argparse.Namespace) -> int:
    count = import_dataset(args.format, args.src, args.out, args.speaker, args.fractions)
    print(f"{args.out}: {count} utterances")
    return 0


def _synth(args: argparse.Namespace) -> int:
    options = dict(SMALL_CORPUS) if args.small else {}
    if args.paraphrases is not None:
        options["paraphrases_per_intent"] = args.paraphrases
    if args.slot_values is not None:
        options["slot_values"] = args.slot_values
    if args.bank_voices is not None:
        options["bank_voices"] = args.bank_voices
    if args.bank_answers is not None:
        options["bank_answers"] = args.bank_answers
    start = time.monotonic()
    manifest = synthesize_corpus(
        args.out_dir,
        args.seed,
        answer_voices=args.answer_voices,
        workers=args.workers,
        **options,
    )
    entries = read_manifest(manifest)
    hours = sum(e.duration for e in entries) / 3600
    elapsed = time.monotonic() - start
    print(f"{manifest}: {len(entries)} files, {hours:.2f} h of audio in {elapsed:.0f} s")
    return 0


def _stats(args: argparse.Namespace) -> int:
    stats = manifest_stats(read_manifest(args.manifest))
    print(json.dumps(stats, indent=1) if args.json else format_stats(stats))
    return 0


def _voices(args: argparse.Namespace) -> int:
    from models.data.voice_report import format_report, voice_report

    bank = voice_bank()
    chosen = {
        "personas": PERSONAS,
        "shipped": SHIPPED_PERSONAS,
        "bank": bank,
        "bank-test": {n: v for n, v in bank.items() if bank_splits(list(bank))[n] == "test"},
    }[args.set]
    rows = voice_report(chosen, args.clips)
    if args.json:
        print(json.dumps([asdict(r) | {"margin": r.margin} for r in rows], indent=1))
    else:
        print(format_report(rows))
    return 0

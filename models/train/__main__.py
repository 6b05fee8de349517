"""`python -m models.train s2s ...`: S2S training alone, the same command as `telugu-s2s train s2s`.

The console script also wires the agent's server, which imports aiortc and av; this entry point
imports only what training from a codes cache needs (torch, numpy, safetensors, tqdm), so a run
can go to a machine that has those and no audio stack: a GPU machine given the manifest, the
codec checkpoint and the run's codes cache (`models.train.tokens`), without the audio.
"""

from __future__ import annotations

import argparse
import logging
import sys

from models.train.s2s import add_train_s2s_command


def main(argv: list[str] | None = None) -> int:
    """Parse `s2s ...` and run it."""
    parser = argparse.ArgumentParser(prog="python -m models.train")
    add_train_s2s_command(parser.add_subparsers(dest="recipe", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

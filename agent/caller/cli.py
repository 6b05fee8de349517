"""`telugu-s2s call`: call an agent with a WAV file and report each turn's latency."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from functools import partial

TokenLoader = Callable[[str | None], str | None]
"""The API token from a file, or from the environment when the path is None."""


def add_call_arguments(p: argparse.ArgumentParser, load_token: TokenLoader) -> None:
    """The `call` command's options; `load_token` reads the server's API token from a file or
    the environment (the server's own reader, handed in by the composition root)."""
    p.add_argument("url", help="the agent, e.g. http://127.0.0.1:8080")
    p.add_argument("--audio", required=True, help="WAV (any rate) to speak, in real time")
    p.add_argument("--out", help="write everything heard back to this WAV (48 kHz)")
    p.add_argument("--speaker")
    p.add_argument("--emotion")
    voice = p.add_mutually_exclusive_group()
    voice.add_argument(
        "--voice",
        metavar="FILE",
        help="answer in the voice of this clip (WAV, Ogg, WebM, MP3; 1-15 s, at most 1 MiB)",
    )
    voice.add_argument(
        "--my-voice",
        action="store_true",
        help="answer in the caller's own voice once the agent has heard 3 s of it",
    )
    p.add_argument("--endpoint", choices=["offer", "whip"], default="offer")
    p.add_argument(
        "--jitter",
        choices=["adaptive", "skip", "aiortc"],
        default="adaptive",
        help="the caller's own receive path (as serve --jitter)",
    )
    p.add_argument(
        "--turn-gap-ms",
        type=float,
        default=700,
        help="pauses shorter than this stay inside one user turn",
    )
    p.add_argument(
        "--ice-from-server",
        action="store_true",
        help="use the agent's /ice-config (STUN, TURN with fresh credentials)",
    )
    p.add_argument(
        "--relay-only",
        action="store_true",
        help="gather TURN relay candidates only (implies --ice-from-server)",
    )
    p.add_argument(
        "--api-token-file",
        metavar="PATH",
        help="the server's API token, in this file or in $API_TOKEN",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=partial(_call, load_token=load_token))


def _call(args: argparse.Namespace, load_token: TokenLoader) -> int:
    from agent.caller.caller import CALLER_VOICE, CallRefused, call, fetch_ice_servers
    from agent.wire import WIRE_RATE
    from models.speech.audio import read_audio, write_audio

    pcm = read_audio(args.audio, WIRE_RATE)
    token = load_token(args.api_token_file)
    voice: bytes | str | None = CALLER_VOICE if args.my_voice else None
    if args.voice:
        with open(args.voice, "rb") as clip:
            voice = clip.read()

    async def run() -> tuple:
        servers = None
        if args.ice_from_server or args.relay_only:
            servers = await fetch_ice_servers(args.url, token)
        return await call(
            args.url,
            pcm,
            args.speaker,
            args.emotion,
            args.endpoint,
            args.jitter,
            args.turn_gap_ms,
            ice_servers=servers,
            relay_only=args.relay_only,
            token=token,
            voice=voice,
        )

    try:
        report, heard = asyncio.run(run())
    except CallRefused as refused:
        print(refused, file=sys.stderr)
        return 2
    if args.out:
        write_audio(args.out, heard, WIRE_RATE)
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        if report.voice is not None:
            fields = " ".join(f"{k}={v}" for k, v in report.voice.items() if k != "type")
            print(f"{report.voice['type']}: {fields}")
        for turn in report.turns:
            v2v = (
                "no answer"
                if turn.voice_to_voice_ms is None
                else (
                    f"voice_to_voice_ms={turn.voice_to_voice_ms:.1f} "
                    f"answer_ms={turn.answer_duration_ms:.0f}"
                )
            )
            stages = " ".join(f"{k}={v:g}" for k, v in turn.server.items())
            print(f"turn {turn.turn} (speech ends {turn.speech_end_s:.2f} s): {v2v}  {stages}")
            for who, text in (("user", turn.user_text), ("agent", turn.agent_text)):
                if text is not None:
                    print(f"  {who}: {text}")
    if report.answered == 0:
        print("no answer arrived", file=sys.stderr)
        return 1
    return 0

"""`telugu-s2s`: serve the agent, or call one from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from agent.config import AgentConfig
from models.speech.turns import TurnConfig

DEFAULT_TURNS = TurnConfig()
DEFAULT_AGENT = AgentConfig()
DEFAULT_RATE_LIMIT = "20/min"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = argparse.ArgumentParser(
        prog="telugu-s2s", description="Real-time Telugu speech-to-speech voice agent"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(
        commands.add_parser(
            "serve",
            help="run the agent's HTTP + WebRTC server",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
    )
    _add_call(
        commands.add_parser(
            "call",
            help="call an agent with a WAV file, report latency",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
    )
    _add_models(commands.add_parser("models", help="facts about the model presets"))
    _add_turn(
        commands.add_parser(
            "turn",
            help="run coturn for the agent (TURN relay for clients behind NAT)",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
    )
    _add_pipeline(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.run(args)


def _add_serve(p: argparse.ArgumentParser) -> None:
    from agent.responders import RESPONDERS
    from models.config import PRESETS
    from models.loading import DEMO_CHECKPOINT
    from signaling.auth import TOKEN_ENV

    p.add_argument("--host", default="0.0.0.0", help="address to listen on")
    p.add_argument("--port", type=int, default=8080, help="HTTP port")
    p.add_argument(
        "--responder",
        default="s2s",
        choices=RESPONDERS,
        help="s2s answers with the transformer; parrot plays each turn back; codec does so "
        "through TeluCodec",
    )
    p.add_argument(
        "--checkpoint",
        default=str(DEMO_CHECKPOINT),
        help="model directory for codec/s2s (default: the shipped demo model)",
    )
    p.add_argument(
        "--untrained",
        action="store_true",
        help="codec/s2s with the --preset's random weights instead of a checkpoint "
        "(latency work only)",
    )
    p.add_argument(
        "--preset", default="demo", choices=sorted(PRESETS), help="model sizes with --untrained"
    )
    p.add_argument(
        "--max-sessions", type=int, default=8, help="calls at once; more get 503 + Retry-After"
    )
    p.add_argument(
        "--rate-limit",
        default=DEFAULT_RATE_LIMIT,
        metavar="N/PERIOD",
        help="call requests per client address, e.g. 20/min, 2/s, 100/h; more get "
        "429 + Retry-After; 'off' disables",
    )
    p.add_argument(
        "--rate-burst",
        type=int,
        metavar="N",
        help="call requests one address may make at once (None: the N of --rate-limit)",
    )
    p.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR[/BITS]",
        help="reverse proxy whose X-Forwarded-For names the client (repeatable); "
        "without one the header is ignored",
    )
    p.add_argument(
        "--api-token-file",
        metavar="PATH",
        help=f"call requests need 'Authorization: Bearer <token>' with the token in this "
        f"file (or in ${TOKEN_ENV}); None: no token needed",
    )
    p.add_argument(
        "--vad-threshold",
        type=float,
        default=DEFAULT_TURNS.threshold,
        help="Silero speech probability that counts as speech",
    )
    p.add_argument(
        "--min-speech-ms",
        type=int,
        default=DEFAULT_TURNS.min_speech_ms,
        help="speech needed to start a turn",
    )
    p.add_argument(
        "--min-silence-ms",
        type=int,
        default=DEFAULT_TURNS.min_silence_ms,
        help="silence that ends a turn (chosen by benchmarks/turn_silence.py)",
    )
    p.add_argument(
        "--eot",
        default=DEFAULT_TURNS.eot,
        choices=["silence", "model"],
        help="end of turn after --min-silence-ms of silence, or as soon as the s2s model's "
        "end-of-turn head is confident in a pause (the silence rule stays as the fallback)",
    )
    p.add_argument(
        "--eot-threshold",
        type=float,
        default=DEFAULT_TURNS.eot_threshold,
        help="end-of-turn probability that ends the turn with --eot model",
    )
    p.add_argument(
        "--speech-pad-ms",
        type=int,
        default=DEFAULT_TURNS.speech_pad_ms,
        help="audio kept before the detected start of speech",
    )
    p.add_argument(
        "--no-barge-in",
        action="store_true",
        help="let answers finish when the user talks over them",
    )
    p.add_argument(
        "--jitter",
        default=DEFAULT_AGENT.jitter,
        choices=["adaptive", "skip", "aiortc"],
        help="receive path: ours (no hold on a clean path, lost frames concealed), ours "
        "without concealment, or aiortc's",
    )
    p.add_argument(
        "--no-opus-fec",
        action="store_true",
        help="send aiortc's default Opus (96 kbps, no in-band FEC) and do not ask for FEC",
    )
    p.add_argument(
        "--peer-timeout",
        type=float,
        default=DEFAULT_AGENT.peer_timeout_s,
        help="seconds without audio after which a call is over",
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=DEFAULT_AGENT.connect_timeout_s,
        help="seconds after the answer within which the peer's first audio must arrive",
    )
    p.add_argument(
        "--no-memory-trim",
        action="store_true",
        help="keep freed memory in the C heap after calls (for comparison; see "
        "agent.process.memory)",
    )
    p.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN URL for the page and the agent (repeatable)",
    )
    p.add_argument(
        "--turn-url",
        action="append",
        default=[],
        metavar="URL",
        help="turn:/turns: URL to hand out with time-limited credentials (repeatable; "
        "default: $TURN_URLS, comma-separated); the secret comes from $TURN_SECRET or the file",
    )
    p.add_argument(
        "--turn-secret-file",
        metavar="PATH",
        help="file holding the TURN shared secret (default: $TURN_SECRET_FILE, $TURN_SECRET)",
    )
    p.add_argument(
        "--turn-ttl",
        type=int,
        metavar="SECONDS",
        help="lifetime of minted TURN credentials, at most 86400 (default: $TURN_TTL_S or 3600)",
    )
    p.add_argument(
        "--turn-for-agent",
        action="store_true",
        help="the agent's own peer connections gather TURN candidates too (agent behind NAT)",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="intra-op threads for model compute (each call has its own workers)",
    )
    p.add_argument("--log-level", default="info")
    p.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    import torch
    from aiohttp import web

    from agent.responders import make_responder
    from signaling.app import create_app
    from signaling.ice import IceConfig
    from turn.credentials import TurnSettings

    try:
        turn = TurnSettings.from_env(
            urls=tuple(args.turn_url), secret_file=args.turn_secret_file, ttl_s=args.turn_ttl
        )
        access = _access_policy(args)
    except (OSError, ValueError) as err:
        print(f"telugu-s2s serve: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.torch_threads)
    config = AgentConfig(
        turns=TurnConfig(
            threshold=args.vad_threshold,
            min_speech_ms=args.min_speech_ms,
            min_silence_ms=args.min_silence_ms,
            speech_pad_ms=args.speech_pad_ms,
            eot=args.eot,
            eot_threshold=args.eot_threshold,
        ),
        barge_in=not args.no_barge_in,
        jitter=args.jitter,
        opus_fec=not args.no_opus_fec,
        peer_timeout_s=args.peer_timeout,
        connect_timeout_s=args.connect_timeout,
        trim_memory=not args.no_memory_trim,
    )
    checkpoint = None if args.untrained else args.checkpoint
    app = create_app(
        make_responder(args.responder, checkpoint, args.preset),
        config,
        IceConfig(urls=tuple(args.ice_server), turn=turn, agent_turn=args.turn_for_agent),
        max_sessions=args.max_sessions,
        access=access,
    )
    print(f"telugu-s2s: {args.responder} agent on http://{args.host}:{args.port}", flush=True)
    if access.api_token is not None:
        print("telugu-s2s: call requests need the API token (page: /#token=...)", flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None, shutdown_timeout=5.0)
    return 0


def _access_policy(args: argparse.Namespace):  # noqa: ANN202 - signaling.admission.AccessPolicy
    """Rate limit, trusted proxies and API token from the serve options."""
    from signaling.admission import AccessPolicy
    from signaling.auth import load_token
    from signaling.clientip import parse_networks
    from signaling.ratelimit import RateLimit

    return AccessPolicy(
        rate_limit=RateLimit.parse(args.rate_limit, args.rate_burst),
        trusted_proxies=parse_networks(args.trusted_proxy),
        api_token=load_token(args.api_token_file),
    )


def _add_pipeline(commands: argparse._SubParsersAction) -> None:
    """`data`, `train` and `eval`: the commands that make and judge a model."""
    from models.data.commands import add_data_commands
    from models.eval.codec import add_eval_codec_command
    from models.eval.eot import add_eval_eot_command
    from models.eval.s2s import add_eval_s2s_command
    from models.train.codec import add_train_codec_command
    from models.train.s2s import add_train_s2s_command

    data = commands.add_parser("data", help="import datasets, synthesize the Telugu corpus")
    add_data_commands(data.add_subparsers(dest="action", required=True))
    train = commands.add_parser("train", help="train the codec or the S2S model")
    recipes = train.add_subparsers(dest="recipe", required=True)
    add_train_codec_command(recipes)
    add_train_s2s_command(recipes)
    judge = commands.add_parser("eval", help="evaluate the codec, the S2S model, end of turn")
    evaluations = judge.add_subparsers(dest="evaluation", required=True)
    add_eval_codec_command(evaluations)
    add_eval_s2s_command(evaluations)
    add_eval_eot_command(evaluations)


def _add_models(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True)
    info = actions.add_parser("info", help="sizes, rates and parameter counts of each preset")
    info.add_argument("--json", action="store_true", help="print one JSON document")
    info.add_argument("--log-level", default="warning")
    info.set_defaults(run=_models_info)
    export = actions.add_parser("export", help="re-save a checkpoint for shipping")
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
    card.add_argument("--codec-run", required=True, help="the codec's training directory")
    card.add_argument("--s2s-run", required=True, help="the S2S training directory")
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

    from models.loading import export

    dtype = torch.float16 if args.dtype == "float16" else None
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


def _add_call(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="the agent, e.g. http://127.0.0.1:8080")
    p.add_argument("--audio", required=True, help="WAV (any rate) to speak, in real time")
    p.add_argument("--out", help="write everything heard back to this WAV (48 kHz)")
    p.add_argument("--speaker")
    p.add_argument("--emotion")
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
    p.set_defaults(run=_call)


def _call(args: argparse.Namespace) -> int:
    from agent.caller.caller import call, fetch_ice_servers
    from agent.wire import WIRE_RATE
    from models.speech.audio import read_audio, write_audio
    from signaling.auth import load_token

    pcm = read_audio(args.audio, WIRE_RATE)

    async def run() -> tuple:
        servers = None
        if args.ice_from_server or args.relay_only:
            servers = await fetch_ice_servers(args.url)
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
            token=load_token(args.api_token_file),
        )

    report, heard = asyncio.run(run())
    if args.out:
        write_audio(args.out, heard, WIRE_RATE)
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
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
    if report.answered == 0:
        print("no answer arrived", file=sys.stderr)
        return 1
    return 0


def _add_turn(p: argparse.ArgumentParser) -> None:
    from turn.cli import add_turn_arguments

    add_turn_arguments(p)


if __name__ == "__main__":
    raise SystemExit(main())

"""`telugu-s2s`: the composition root. It builds the server (`serve`, here) and puts the
other command groups together, each defined beside what it drives: `call` (agent/caller/cli.py),
`models`, `data`, `train`, `eval`, `transcribe` (models/cli.py) and `turn` (turn/cli.py)."""

from __future__ import annotations

import argparse
import logging
import sys

from agent.caller.cli import add_call_arguments
from agent.config import AgentConfig
from models.cli import add_models_commands, add_pipeline_commands
from models.speech.turns import TurnConfig
from signaling.auth import load_token
from turn.cli import add_turn_arguments

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
    add_call_arguments(
        commands.add_parser(
            "call",
            help="call an agent with a WAV file, report latency",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        ),
        load_token,
    )
    add_models_commands(commands.add_parser("models", help="facts about the model presets"))
    add_turn_arguments(
        commands.add_parser(
            "turn",
            help="run coturn for the agent (TURN relay for clients behind NAT)",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
    )
    add_pipeline_commands(commands)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.run(args)


def _add_serve(p: argparse.ArgumentParser) -> None:
    from agent.responders import RESPONDERS
    from models.config import PRESETS
    from models.loading import DEMO_CHECKPOINT
    from models.speed import DECODER_PRECISIONS
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
        "--decoder-precision",
        default="float32",
        choices=DECODER_PRECISIONS,
        help="the s2s decoder's weights when answering: float32 as trained, or int8 (dynamic "
        "quantization of its Linear layers: the step a fifth faster, a call no cheaper here)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="agent processes behind one address, each with its own models and calls "
        "(default: one per core available)",
    )
    p.add_argument(
        "--capacity",
        default="auto",
        metavar="N|auto",
        help="calls each process holds in real time; more get 503 + Retry-After; auto: "
        "measured at start-up on this machine (agent/process/capacity.py)",
    )
    p.add_argument("--worker-socket", help=argparse.SUPPRESS)
    p.add_argument(
        "--max-sessions",
        type=int,
        default=8,
        help="calls at once per process, whatever the capacity; more get 503 + Retry-After",
    )
    p.add_argument(
        "--max-pending-per-client",
        type=int,
        metavar="N",
        help="calls one client address may have still connecting (ICE/DTLS); more get 429; "
        "0: no cap (default: a quarter of --max-sessions, at least 1)",
    )
    p.add_argument(
        "--max-calls-per-client",
        type=int,
        metavar="N",
        help="calls one client address may hold in all; more get 429; 0: no cap "
        "(default: half of --max-sessions, at least 1)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="web origin besides the page's own whose scripts may call the API, with CORS, "
        "e.g. https://example.org (repeatable; '*': any)",
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
        choices=["silence", "model", "content"],
        help="end of turn after --min-silence-ms of silence; 'model': also as soon as the s2s "
        "model's end-of-turn head is confident in a pause; 'content': the content head "
        "(what was said before the pause, how the voice fell, the silence so far; "
        "`train endpoint`) at its own threshold and fallback silence",
    )
    p.add_argument(
        "--endpoint",
        help="checkpoint of the content end-of-turn head (--eot content; default: the shipped "
        "one, fitted on the shipped recognizer)",
    )
    p.add_argument(
        "--eot-threshold",
        type=float,
        default=DEFAULT_TURNS.eot_threshold,
        help="end-of-turn probability that ends the turn with --eot model",
    )
    p.add_argument(
        "--answer-ahead-ms",
        type=int,
        default=DEFAULT_AGENT.answer_ahead_ms,
        help="silence inside a turn after which the answer to the turn so far is started "
        "ahead, released at the end of turn, thrown away if the user goes on (0: off)",
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
        "--listen-batch-ms",
        type=float,
        default=DEFAULT_AGENT.listen_batch_ms,
        help="the model hears the windows of all calls together this often (the VAD hears "
        "each window at once)",
    )
    p.add_argument(
        "--peer-timeout",
        type=float,
        default=DEFAULT_AGENT.peer_timeout_s,
        help="seconds without audio after which a call is over",
    )
    p.add_argument(
        "--establish-timeout",
        type=float,
        default=DEFAULT_AGENT.establish_timeout_s,
        help="seconds after the answer within which ICE and DTLS must be done, or the call "
        "ends and its slot is free",
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
        "--all-levels",
        action="store_true",
        help="s2s: compute and draw every codec level of every answer step (by default the "
        "finer levels of silent steps are left out)",
    )
    p.add_argument(
        "--no-captions",
        action="store_true",
        help="parrot: play turns back without recognizing them (no caption events, about a "
        "third less listening compute per call)",
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
    from signaling.admission import AccessPolicy
    from signaling.app import create_app
    from signaling.calls import ClientCaps
    from signaling.ice import IceConfig
    from signaling.origins import OriginPolicy
    from signaling.workers import default_workers
    from turn.credentials import TurnSettings

    try:
        turn = TurnSettings.from_env(
            urls=tuple(args.turn_url), secret_file=args.turn_secret_file, ttl_s=args.turn_ttl
        )
        access = _access_policy(args)
        origins = OriginPolicy(tuple(args.allow_origin))
        configured_capacity = _capacity_setting(args.capacity)
        defaults = ClientCaps.for_capacity(args.max_sessions)
        caps = ClientCaps(
            pending=_given(args.max_pending_per_client, defaults.pending),
            calls=_given(args.max_calls_per_client, defaults.calls),
        )
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
        endpoint=args.endpoint,
        barge_in=not args.no_barge_in,
        answer_ahead_ms=args.answer_ahead_ms or None,
        jitter=args.jitter,
        opus_fec=not args.no_opus_fec,
        peer_timeout_s=args.peer_timeout,
        listen_batch_ms=args.listen_batch_ms,
        establish_timeout_s=args.establish_timeout,
        connect_timeout_s=args.connect_timeout,
        trim_memory=not args.no_memory_trim,
    )
    ice = IceConfig(urls=tuple(args.ice_server), turn=turn, agent_turn=args.turn_for_agent)
    workers = default_workers() if args.workers is None else args.workers
    if args.worker_socket is None and workers > 1:
        _run_router(args, workers, ice, access, origins)
        return 0
    if args.worker_socket is not None:  # behind the router, which checks tokens and rates
        access = AccessPolicy(behind_router=True)
    checkpoint = None if args.untrained else args.checkpoint
    responder = make_responder(
        args.responder,
        checkpoint,
        args.preset,
        not args.all_levels,
        not args.no_captions,
        args.decoder_precision,
    )
    capacity = configured_capacity or _measured_capacity(responder, args.listen_batch_ms)
    app = create_app(
        responder,
        config,
        ice,
        max_sessions=args.max_sessions,
        access=access,
        origins=origins,
        caps=caps,
        capacity=capacity,
    )
    admitted = min(args.max_sessions, capacity)
    if args.worker_socket is not None:
        from signaling.workers import follow_router

        follow_router(app)
        print(f"telugu-s2s: worker holding {admitted} calls at once", flush=True)
        web.run_app(  # the router logs the requests, and polls this one's /healthz
            app, path=args.worker_socket, print=None, shutdown_timeout=5.0, access_log=None
        )
        return 0
    _run_public(app, args, access.api_token is not None, f"{admitted} calls at once")
    return 0


def _run_public(app, args: argparse.Namespace, token: bool, what: str) -> None:  # noqa: ANN001
    """Serve `app` on --host/--port until stopped, saying where and what."""
    from aiohttp import web

    from signaling.app import RedactingAccessLogger

    url = f"http://{args.host}:{args.port}"
    print(f"telugu-s2s: {args.responder} agent on {url} ({what})", flush=True)
    if token:
        print("telugu-s2s: call requests need the API token (page: /#token=...)", flush=True)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=None,
        shutdown_timeout=5.0,
        access_log_class=RedactingAccessLogger,
    )


def _capacity_setting(setting: str) -> int | None:
    """--capacity as a number of calls, or None for auto; ValueError otherwise."""
    if setting == "auto":
        return None
    if not setting.isdigit() or int(setting) < 1:
        raise ValueError(f"--capacity must be a number of calls (at least 1) or auto: {setting!r}")
    return int(setting)


def _measured_capacity(responder, batch_ms: float) -> int:  # noqa: ANN001 - a Responder
    from agent.process.capacity import measure_capacity
    from models.speech.vad import WINDOW_MS

    measured = measure_capacity(responder, chunk_windows=max(1, round(batch_ms / WINDOW_MS)))
    print(f"telugu-s2s: capacity measured: {measured.describe()}", flush=True)
    return measured.calls


def _run_router(args: argparse.Namespace, workers: int, ice, access, origins) -> None:  # noqa: ANN001
    """`serve` with several workers: this process routes, the workers hold the calls."""
    from signaling.router import create_router_app
    from signaling.workers import WorkerPool

    serve_args = args.argv[args.argv.index("serve") + 1 :]
    pool = WorkerPool(serve_args, workers)
    try:
        app = create_router_app(pool, args.responder, ice, access, origins)
        _run_public(app, args, access.api_token is not None, f"{workers} workers")
    finally:
        pool.kill()  # no-op after a clean stop; no orphan when the port was taken


def _given(value: int | None, default: int) -> int:
    return default if value is None else value


def _access_policy(args: argparse.Namespace):  # noqa: ANN202 - signaling.admission.AccessPolicy
    """Rate limit, trusted proxies and API token from the serve options."""
    from signaling.admission import AccessPolicy
    from signaling.clientip import parse_networks
    from signaling.ratelimit import RateLimit

    return AccessPolicy(
        rate_limit=RateLimit.parse(args.rate_limit, args.rate_burst),
        trusted_proxies=parse_networks(args.trusted_proxy),
        api_token=load_token(args.api_token_file),
    )


if __name__ == "__main__":
    raise SystemExit(main())

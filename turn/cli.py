"""`telugu-s2s turn`: run coturn with the project's configuration until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from turn.coturn import CoturnConfig
from turn.credentials import read_secret

DEFAULTS = CoturnConfig()


def add_turn_arguments(p: argparse.ArgumentParser) -> None:
    """The `turn` subcommand's options."""
    p.add_argument(
        "--listen", action="append", default=[], metavar="IP", help="address (default: all)"
    )
    p.add_argument("--port", type=int, default=DEFAULTS.port, help="TURN over UDP and TCP")
    p.add_argument("--tls-port", type=int, default=DEFAULTS.tls_port, help="TURN over TLS")
    p.add_argument("--realm", default=DEFAULTS.realm)
    p.add_argument("--relay-ip", action="append", default=[], metavar="IP")
    p.add_argument("--external-ip", help="public address behind 1:1 NAT: PUBLIC or PUBLIC/PRIVATE")
    p.add_argument("--min-port", type=int, default=DEFAULTS.min_port, help="relay port range")
    p.add_argument("--max-port", type=int, default=DEFAULTS.max_port, help="relay port range")
    p.add_argument(
        "--allow-peer",
        action="append",
        default=[],
        metavar="IP",
        help="reachable although private (the agent's own address; repeatable)",
    )
    p.add_argument("--user-quota", type=int, default=DEFAULTS.user_quota)
    p.add_argument("--total-quota", type=int, default=DEFAULTS.total_quota)
    p.add_argument(
        "--secret-file", help="shared secret file (default: $TURN_SECRET_FILE, $TURN_SECRET)"
    )
    p.add_argument("--cert", help="TLS certificate (default: a self-signed one for localhost)")
    p.add_argument("--pkey", help="TLS private key for --cert")
    p.add_argument("--run-dir", help="where the rendered config and log go (default: temporary)")
    p.add_argument(
        "--test-mode",
        action="store_true",
        help="allow loopback peers (tests, one-machine demos; never in production)",
    )
    p.add_argument("--log-level", default="info")
    p.set_defaults(run=run_turn)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops coturn like Ctrl-C does."""
    raise KeyboardInterrupt


def run_turn(args: argparse.Namespace) -> int:
    """Start coturn, print the URLs to configure the agent with, wait for Ctrl-C."""
    from turn.server import Coturn

    try:
        secret = read_secret(os.environ, args.secret_file)
    except (OSError, ValueError) as err:
        print(f"telugu-s2s turn: {err}", file=sys.stderr)
        return 2
    if not secret:
        print("telugu-s2s turn: set TURN_SECRET or TURN_SECRET_FILE", file=sys.stderr)
        return 2
    if bool(args.cert) != bool(args.pkey):
        print("telugu-s2s turn: --cert and --pkey go together", file=sys.stderr)
        return 2
    config = CoturnConfig(
        realm=args.realm,
        listening_ips=tuple(args.listen),
        port=args.port,
        tls_port=args.tls_port,
        relay_ips=tuple(args.relay_ip),
        external_ip=args.external_ip,
        min_port=args.min_port,
        max_port=args.max_port,
        allowed_peers=tuple(args.allow_peer),
        user_quota=args.user_quota,
        total_quota=args.total_quota,
        test_mode=args.test_mode,
    )
    server = Coturn(
        config,
        secret,
        run_dir=Path(args.run_dir) if args.run_dir else None,
        cert=Path(args.cert) if args.cert else None,
        pkey=Path(args.pkey) if args.pkey else None,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    with server:
        host = args.external_ip.split("/")[0] if args.external_ip else None
        host = host or (args.listen[0] if args.listen else "HOST")
        print(f"telugu-s2s turn: coturn running, log {server.log_path}", flush=True)
        print(f"  TURN_URLS={','.join(config.urls(host))}", flush=True)
        try:
            while server.process is not None and server.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
        print(f"telugu-s2s turn: coturn stopped: {server.log()}", file=sys.stderr)
        return 1

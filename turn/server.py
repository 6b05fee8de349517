"""Run coturn: render the configuration into a run directory, start `turnserver`, wait until
it answers, stop it cleanly. Usable as a context manager (tests) and from `telugu-s2s turn`."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from aioice import stun

from turn.certs import self_signed
from turn.coturn import CoturnConfig

TURNSERVER = "turnserver"


class Coturn:
    """One `turnserver` process and its run directory.

    Without `run_dir` a temporary directory is made and removed on stop. Without `cert`/`pkey`
    a self-signed certificate for localhost is generated there."""

    def __init__(
        self,
        config: CoturnConfig,
        secret: str,
        run_dir: Path | None = None,
        cert: Path | None = None,
        pkey: Path | None = None,
        binary: str = TURNSERVER,
    ) -> None:
        self.config = config
        self._secret = secret
        self._own_dir = run_dir is None
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="coturn-"))
        self.cert, self.pkey = cert, pkey
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def conf_path(self) -> Path:
        return self.run_dir / "turnserver.conf"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "turnserver.log"

    def start(self, timeout_s: float = 10.0) -> Coturn:
        """Render, launch, and wait until the UDP listener answers a STUN Binding request."""
        if shutil.which(self.binary) is None:
            raise FileNotFoundError(f"{self.binary} not found (Debian package: coturn)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.cert is None or self.pkey is None:
            self.cert, self.pkey = self.run_dir / "cert.pem", self.run_dir / "key.pem"
            self_signed(self.cert, self.pkey)
        text = self.config.render(self._secret, self.run_dir, self.cert, self.pkey)
        self.conf_path.touch(mode=0o600)  # holds the secret
        self.conf_path.write_text(text, encoding="utf-8")
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        host = self.config.listening_ips[0] if self.config.listening_ips else "127.0.0.1"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"turnserver exited ({self.process.returncode}): {self.log()}")
            if stun_binding(host, self.config.port) and _tcp_open(host, self.config.tls_port):
                return
            time.sleep(0.1)
        raise TimeoutError(f"turnserver not ready within {timeout_s} s: {self.log()}")

    def log(self, tail: int = 2000) -> str:
        """The end of coturn's log file."""
        for path in sorted(self.run_dir.glob("turnserver*.log")):
            return path.read_text(errors="replace")[-tail:]
        return ""

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`; remove a temporary run directory."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._own_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Coturn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stun_binding(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether a STUN server answers a Binding request on UDP host:port."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.sendto(bytes(request), (host, port))
            data = sock.recv(2048)
        except OSError:
            return False
    try:
        return stun.parse_message(data).transaction_id == request.transaction_id
    except ValueError:
        return False


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` (TURN listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def free_range(count: int, host: str = "127.0.0.1") -> tuple[int, int]:
    """`count` consecutive UDP and TCP ports that are free now, for coturn's relay range."""
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(20000, 60000 - count)
        if all(_bindable(host, p) for p in range(first, first + count)):
            return first, first + count - 1
    raise RuntimeError(f"no {count} free consecutive ports")


def _bindable(host: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True

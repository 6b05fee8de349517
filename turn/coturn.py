"""The coturn configuration: a dataclass of the settings that matter, rendered into
`turnserver.conf.in`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from string import Template

TEMPLATE = Path(__file__).resolve().parent / "turnserver.conf.in"

DENIED_PEERS = (
    "0.0.0.0-0.255.255.255",  # "this network"
    "10.0.0.0-10.255.255.255",  # RFC 1918
    "100.64.0.0-100.127.255.255",  # carrier-grade NAT (RFC 6598)
    "169.254.0.0-169.254.255.255",  # link-local
    "172.16.0.0-172.31.255.255",  # RFC 1918
    "192.168.0.0-192.168.255.255",  # RFC 1918
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  # unique local
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  # link-local
)
LOOPBACK_PEERS = ("127.0.0.0-127.255.255.255", "::1")


@dataclass(frozen=True)
class CoturnConfig:
    """Everything the rendered configuration depends on (the secret is passed separately)."""

    realm: str = "telugu-s2s"
    listening_ips: tuple[str, ...] = ()
    """Empty: every interface."""
    port: int = 3478
    tls_port: int = 5349
    relay_ips: tuple[str, ...] = ()
    external_ip: str | None = None
    """Public address behind 1:1 NAT, `PUBLIC` or `PUBLIC/PRIVATE` (coturn's syntax)."""
    min_port: int = 49160
    max_port: int = 49359
    allowed_peers: tuple[str, ...] = field(default_factory=tuple)
    """Addresses reachable although in a denied range (the agent's private address)."""
    user_quota: int = 12
    total_quota: int = 1200
    max_lifetime_s: int = 3600
    test_mode: bool = False
    """Allow loopback peers: for tests and a single-machine demo only."""

    def __post_init__(self) -> None:
        if not 0 < self.min_port <= self.max_port < 65536:
            raise ValueError(f"bad relay port range {self.min_port}-{self.max_port}")
        if self.port == self.tls_port:
            raise ValueError("the TURN and TURN/TLS ports must differ")

    def peer_rules(self) -> list[str]:
        """`denied-peer-ip` / `allowed-peer-ip` lines (and loopback, in test mode)."""
        lines = [f"denied-peer-ip={r}" for r in DENIED_PEERS]
        if self.test_mode:
            lines.append("allow-loopback-peers")
        else:
            lines += [f"denied-peer-ip={r}" for r in LOOPBACK_PEERS]
        lines += [f"allowed-peer-ip={ip}" for ip in self.allowed_peers]
        return lines

    def render(self, secret: str, run_dir: Path, cert: Path, pkey: Path) -> str:
        """The configuration file's text; state files go under `run_dir`."""
        if not secret or any(c in secret for c in "\r\n"):
            raise ValueError("the TURN secret must be one non-empty line")
        text = Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
            secret=secret,
            realm=self.realm,
            listening_ips="\n".join(f"listening-ip={ip}" for ip in self.listening_ips),
            port=self.port,
            tls_port=self.tls_port,
            cert=cert,
            pkey=pkey,
            relay_ips="\n".join(f"relay-ip={ip}" for ip in self.relay_ips),
            external_ip=f"external-ip={self.external_ip}" if self.external_ip else "",
            min_port=self.min_port,
            max_port=self.max_port,
            peer_rules="\n".join(self.peer_rules()),
            user_quota=self.user_quota,
            total_quota=self.total_quota,
            max_lifetime=self.max_lifetime_s,
            log_file=run_dir / "turnserver.log",
            pid_file=run_dir / "turnserver.pid",
            userdb=run_dir / "turndb",
        )
        return text

    def urls(self, host: str) -> tuple[str, ...]:
        """The three URLs a client can use: TURN/UDP, TURN/TCP and TURN/TLS."""
        return (
            f"turn:{host}:{self.port}?transport=udp",
            f"turn:{host}:{self.port}?transport=tcp",
            f"turns:{host}:{self.tls_port}?transport=tcp",
        )

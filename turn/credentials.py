"""Time-limited TURN credentials (the TURN REST API scheme that coturn's `use-auth-secret`
checks): username `<unix expiry>:<session id>`, password `base64(HMAC-SHA1(secret, username))`.

The secret comes from `TURN_SECRET` or from the file named by `TURN_SECRET_FILE`; the TURN
URLs from `TURN_URLS` (comma-separated `turn:` / `turns:` URLs). Command-line values win.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TTL_S = 3600
MAX_TTL_S = 24 * 3600
SCHEMES = ("turn:", "turns:")


@dataclass(frozen=True)
class TurnCredential:
    """One minted username/password pair and the moment it stops working."""

    username: str
    password: str
    expires_at: int


def check_ttl(ttl_s: int) -> int:
    """`ttl_s` when it lies in 1 s .. 24 h, else ValueError."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"TURN credential TTL must be 1..{MAX_TTL_S} s, not {ttl_s}")
    return ttl_s


def sign(secret: str, username: str) -> str:
    """The password coturn expects for `username`: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def mint(
    secret: str, session_id: str, ttl_s: int = DEFAULT_TTL_S, now: float | None = None
) -> TurnCredential:
    """A credential for one session, valid for `ttl_s` seconds from `now`."""
    if not secret:
        raise ValueError("empty TURN secret")
    if not session_id or ":" in session_id:
        raise ValueError("a session id must be non-empty and hold no ':'")
    expires_at = int(time.time() if now is None else now) + check_ttl(ttl_s)
    username = f"{expires_at}:{session_id}"
    return TurnCredential(username, sign(secret, username), expires_at)


def read_secret(
    env: Mapping[str, str], secret_file: str | os.PathLike[str] | None = None
) -> str | None:
    """The shared secret: `secret_file`, else `TURN_SECRET_FILE`, else `TURN_SECRET`.

    A file's surrounding whitespace (the trailing newline) is dropped; an empty one is an error.
    """
    path = secret_file or env.get("TURN_SECRET_FILE")
    if path:
        secret = Path(path).read_text(encoding="utf-8").strip()
        if not secret:
            raise ValueError(f"TURN secret file {path} is empty")
        return secret
    return env.get("TURN_SECRET") or None


def split_urls(text: str) -> tuple[str, ...]:
    """`TURN_URLS`: comma-separated, blanks ignored."""
    return tuple(u.strip() for u in text.split(",") if u.strip())


@dataclass(frozen=True)
class TurnSettings:
    """Where the TURN server is and how to sign credentials for it."""

    urls: tuple[str, ...]
    secret: str
    ttl_s: int = DEFAULT_TTL_S

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("no TURN URLs")
        bad = [u for u in self.urls if not u.startswith(SCHEMES)]
        if bad:
            raise ValueError(f"TURN URLs must start with turn: or turns:, not {bad}")
        if not self.secret:
            raise ValueError("TURN URLs given without a secret (TURN_SECRET or TURN_SECRET_FILE)")
        check_ttl(self.ttl_s)

    def ice_server(self, session_id: str | None = None, now: float | None = None) -> dict[str, Any]:
        """One browser-format ICE server entry with fresh credentials."""
        cred = mint(self.secret, session_id or uuid.uuid4().hex, self.ttl_s, now)
        return {"urls": list(self.urls), "username": cred.username, "credential": cred.password}

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        urls: tuple[str, ...] = (),
        secret_file: str | None = None,
        ttl_s: int | None = None,
    ) -> TurnSettings | None:
        """Settings from arguments, then `TURN_URLS`, `TURN_SECRET(_FILE)`, `TURN_TTL_S`;
        None when no TURN URL is configured."""
        env = os.environ if env is None else env
        urls = urls or split_urls(env.get("TURN_URLS", ""))
        if not urls:
            return None
        secret = read_secret(env, secret_file) or ""
        if ttl_s is None:
            ttl_s = int(env.get("TURN_TTL_S", DEFAULT_TTL_S))
        return cls(urls=tuple(urls), secret=secret, ttl_s=ttl_s)

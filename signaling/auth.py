"""Optional bearer token for call creation, hang-up and TURN credentials (off unless a token is
configured).

The token comes from the `API_TOKEN` environment variable or a file (`--api-token-file`);
requests compare it in constant time. The call page takes it from its URL fragment
(`/#token=...`, never sent to the server or its logs) and sends it as the header.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from aiohttp import web

from signaling.guards import ClientError

TOKEN_ENV = "API_TOKEN"


def load_token(path: str | Path | None = None, env: dict[str, str] | None = None) -> str | None:
    """The configured token: the file's first line if `path` is given, else `$API_TOKEN`;
    None when neither is set. ValueError on an empty token."""
    if path is not None:
        text = Path(path).read_text(encoding="utf-8").strip()
        source = str(path)
    else:
        text = (os.environ if env is None else env).get(TOKEN_ENV, "").strip()
        if not text:
            return None
        source = TOKEN_ENV
    token = text.splitlines()[0].strip() if text else ""
    if not token:
        raise ValueError(f"the API token from {source} is empty")
    return token


def check_bearer(request: web.Request, token: str | None) -> None:
    """Pass when no token is configured or the request carries it; 401 otherwise."""
    if token is None:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    ):
        err = ClientError(401, "unauthorized", "this request needs Authorization: Bearer <token>")
        err.headers["WWW-Authenticate"] = 'Bearer realm="telugu-s2s"'
        raise err

"""Which web pages may use the API: browsers' `Origin` checked against an allow-list, and CORS
for the origins allowed besides the page's own.

A request that carries `Origin` comes from a script on that origin. It passes when the origin
is the server's own (same scheme-less host and port as the request's `Host`: the call page),
or is on the operator's allow-list (`serve --allow-origin`); anything else gets 403 before
its body is read, so no other site can start calls, read TURN credentials or hang up from a
visitor's browser. Requests without `Origin` (curl, the headless caller, WHIP clients) are
not browsers' cross-site requests; the API token governs them. Allowed cross-origin callers
get CORS headers, and their preflights (`OPTIONS`) are answered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlsplit

from aiohttp import web

from signaling.guards import ClientError, shown

ANY_ORIGIN = "*"
ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type"
EXPOSED_HEADERS = "Location, Retry-After"
PREFLIGHT_MAX_AGE_S = 600


@dataclass(frozen=True)
class OriginPolicy:
    """Origins besides the page's own whose scripts may call the API ('*': any)."""

    allowed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for origin in self.allowed:
            if origin != ANY_ORIGIN and not normalise(origin):
                raise ValueError(f"{origin!r} is not an origin such as https://example.org:8443")

    def allows(self, origin: str, host: str) -> bool:
        """Whether a script on `origin` may call a server reached as `host`."""
        return _same_host(origin, host) or self.allows_other(origin)

    def allows_other(self, origin: str) -> bool:
        """Whether `origin`, not the page's own, is on the allow-list."""
        return ANY_ORIGIN in self.allowed or normalise(origin) in self._normalised

    @cached_property
    def _normalised(self) -> frozenset[str]:
        return frozenset(normalise(o) for o in self.allowed if o != ANY_ORIGIN)


def normalise(origin: str) -> str:
    """`HTTPS://Example.org:443/` -> `https://example.org`; '' for what is not an origin."""
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return ""
    try:
        port = parts.port
    except ValueError:
        return ""
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _same_host(origin: str, host: str) -> bool:
    """The origin names the host and port the request was sent to. The scheme is not
    compared: behind a TLS-terminating proxy the page is https while the agent hears http."""
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    try:
        port = parts.port
    except ValueError:
        return False
    default = {"http": 80, "https": 443}[parts.scheme]
    netloc = parts.netloc if port is not None else f"{parts.netloc}:{default}"
    wanted = host.lower()
    if ":" not in wanted.rsplit("]", 1)[-1]:
        wanted = f"{wanted}:{default}"
    return netloc == wanted


def _cors_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def origin_check(policy: OriginPolicy) -> Callable:
    """Middleware: refuse scripts of origins not allowed, answer preflights, add CORS."""

    @web.middleware
    async def check(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        cross = not _same_host(origin, request.host)
        if cross and not policy.allows_other(origin):
            return ClientError(
                403, "origin_not_allowed", f"pages of origin {shown(origin)} may not use this API"
            ).response()
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            headers = {
                **_cors_headers(origin),
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
            }
            return web.Response(status=204, headers=headers)
        response = await handler(request)
        if cross:
            response.headers.update(_cors_headers(origin))
        return response

    return check

"""Repairs of aiohttp's answers to requests that are not valid HTTP (aiohttp 3.14).

Before a request reaches the application, aiohttp's `RequestHandler.handle_error` answers a
malformed one (a bad method, a control character in a header, a line over 8 KiB) itself:
a text body that repeats up to 8 KiB of what the client sent, a `Server: Python/3.11
aiohttp/3.x` banner, and a full traceback logged at ERROR for every such request (an
unauthenticated client can fill the log). `install()` replaces that for statuses below 500
with a short JSON 4xx of ours, logged as one DEBUG line, and sets the banner that aiohttp
puts on responses made outside the application (the application's own responses get theirs
from `signaling.app.SECURITY_HEADERS`). Delete this module when aiohttp answers malformed
requests without echoing them (tests/unit/test_hostile_http.py checks it).
"""

from __future__ import annotations

import logging

from aiohttp import web, web_protocol, web_response
from aiohttp.web_request import BaseRequest

from signaling.guards import shown

log = logging.getLogger(__name__)

SERVER_NAME = "telugu-s2s"
_original_handle_error = web_protocol.RequestHandler.handle_error


def _handle_error(
    self: web_protocol.RequestHandler,
    request: BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    if status >= 500:
        return _original_handle_error(self, request, status, exc, message)
    log.debug("malformed request from %s: %s", request.remote, shown(str(exc or message)))
    if request.writer.output_size > 0:
        raise ConnectionError("a response was already sent on this connection")
    response = web.json_response(
        {"error": "bad_request", "message": "the request is not valid HTTP/1.1"}, status=status
    )
    response.force_close()
    return response


def install() -> None:
    """Answer malformed requests with a short JSON 4xx and no version banner (idempotent)."""
    web_protocol.RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]

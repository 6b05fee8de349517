"""The aiohttp application: call page, call endpoints, ICE configuration, health and metrics."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from aiohttp import web
from aiohttp.abc import BaseRequest
from aiohttp.web_log import AccessLogger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent.config import AgentConfig
from agent.process.metrics import AgentMetrics
from agent.responders import Responder
from models.controls import DEFAULT_EMOTION, DEFAULT_SPEAKER, EMOTIONS, SPEAKERS
from signaling.admission import GATE, AccessPolicy, CallGate
from signaling.aiohttp_fixes import SERVER_NAME
from signaling.aiohttp_fixes import install as install_aiohttp_fixes
from signaling.calls import (
    CALLS,
    CALLS_PATH,
    CallManager,
    ClientCaps,
    delete_call,
    post_offer,
    post_whip,
)
from signaling.guards import ClientError
from signaling.ice import IceConfig
from signaling.origins import OriginPolicy, origin_check

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
METRICS = web.AppKey("metrics", AgentMetrics)
ICE = web.AppKey("ice", IceConfig)
STATIC_FILES = web.AppKey("static_files", dict)
RESPONDER_NAME = web.AppKey("responder_name", str)

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The page's Content-Security-Policy: its own script, style and API, nothing inline, no
framing (the page loads no third-party resource; the favicon is an empty data: URL)."""
SECURITY_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Server": SERVER_NAME,
}
"""On every response; `Server` replaces aiohttp's banner with its version numbers."""
_RESOURCE_SECRET = re.compile(rf"({re.escape(CALLS_PATH)}/[^/?#\s]+/)[^/?#\s]+")


def redact(path: str) -> str:
    """A request path fit for logs: a call's resource secret replaced by `***`."""
    return _RESOURCE_SECRET.sub(r"\1***", path)


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access log without the secrets that hang-up paths carry."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        if CALLS_PATH in request.path:
            try:
                request = request.clone(rel_url=redact(request.rel_url.raw_path_qs))
            except RuntimeError:  # a request whose body was read cannot be cloned
                return
        super().log(request, response, time)


def app_runner(app: web.Application, **kwargs: object) -> web.AppRunner:
    """An AppRunner for the agent's application, with the redacting access log."""
    return web.AppRunner(app, access_log_class=RedactingAccessLogger, **kwargs)


@web.middleware
async def json_errors(request: web.Request, handler):  # noqa: ANN001
    """ClientError -> its JSON 4xx; aiohttp's own HTTP errors -> JSON; anything else -> 500."""
    try:
        return await handler(request)
    except ClientError as err:
        return err.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(
            {"error": exc.reason.lower().replace(" ", "_"), "message": exc.text or exc.reason},
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k == "Allow"},
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, redact(request.path))
        return web.json_response({"error": "internal", "message": "internal error"}, status=500)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def static_file(request: web.Request) -> web.FileResponse:
    """One of the page's files by name; only files present at start-up are served."""
    path = request.app[STATIC_FILES].get(request.match_info["name"])
    if path is None:
        raise ClientError(404, "not_found", "no such file")
    return web.FileResponse(path)


async def ice_config(request: web.Request) -> web.Response:
    """ICE servers for one call page; TURN credentials are fresh on every request, and need
    the API token when one is configured."""
    request.app[GATE].admit_ice(request)
    ice: IceConfig = request.app[ICE]
    return web.json_response(ice.for_client(), headers={"Cache-Control": "no-store"})


async def options(request: web.Request) -> web.Response:
    """The voices and emotions a call can ask for."""
    return web.json_response(
        {
            "speakers": SPEAKERS,
            "emotions": list(EMOTIONS),
            "default_speaker": DEFAULT_SPEAKER,
            "default_emotion": DEFAULT_EMOTION,
            "responder": request.app[RESPONDER_NAME],
        }
    )


async def healthz(request: web.Request) -> web.Response:
    calls: CallManager = request.app[CALLS]
    return web.json_response(
        {"status": "ok", "sessions": len(calls.sessions), "capacity": calls.max_sessions}
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def base_app(
    responder_name: str,
    ice: IceConfig | None = None,
    access: AccessPolicy | None = None,
    origins: OriginPolicy | None = None,
) -> web.Application:
    """What every front of the agent serves, with one process or a router before several:
    the page and its files, the options, ICE configuration, the checks on every request
    (origins, token, rate limits, JSON errors, security headers) and the metrics registry."""
    install_aiohttp_fixes()
    app = web.Application(
        middlewares=[origin_check(origins or OriginPolicy()), json_errors],
        client_max_size=64 * 1024,
    )
    app.on_response_prepare.append(security_headers)
    app[METRICS] = AgentMetrics()
    app[ICE] = ice or IceConfig()
    app[GATE] = CallGate(access or AccessPolicy(), app[METRICS])
    app[RESPONDER_NAME] = responder_name
    app[STATIC_FILES] = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/v1/options", options)
    app.router.add_get("/ice-config", ice_config)
    return app


def create_app(
    responder: Responder,
    config: AgentConfig | None = None,
    ice: IceConfig | None = None,
    max_sessions: int = 8,
    access: AccessPolicy | None = None,
    origins: OriginPolicy | None = None,
    caps: ClientCaps | None = None,
    capacity: int | None = None,
) -> web.Application:
    """Build the server application around one responder; `access` sets the rate limit,
    trusted proxies and API token (default: none of them), `origins` the web origins besides
    the page's own that may call the API (default: none), `caps` the calls one client address
    may hold (default: ClientCaps.for_capacity(max_sessions)), `capacity` the calls the
    process holds in real time (agent.process.capacity; None: max_sessions alone)."""
    app = base_app(responder.name, ice, access, origins)
    app[CALLS] = CallManager(
        responder, config or AgentConfig(), app[METRICS], app[ICE], max_sessions, caps, capacity
    )

    async def hang_up_everyone(app: web.Application) -> None:
        await app[CALLS].close_all()

    app.on_shutdown.append(hang_up_everyone)
    app.router.add_post("/offer", post_offer)
    app.router.add_post(CALLS_PATH, post_whip)
    app.router.add_delete(CALLS_PATH + "/{session_id}/{secret}", delete_call)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app

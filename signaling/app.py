"""The aiohttp application: call page, call endpoints, ICE configuration, health and metrics."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent.config import AgentConfig
from agent.process.metrics import AgentMetrics
from agent.responders import Responder
from models.controls import DEFAULT_EMOTION, DEFAULT_SPEAKER, EMOTIONS, SPEAKERS
from signaling.admission import GATE, AccessPolicy, CallGate
from signaling.calls import CALLS, CallManager, delete_call, post_offer, post_whip
from signaling.guards import ClientError
from signaling.ice import IceConfig

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
METRICS = web.AppKey("metrics", AgentMetrics)
ICE = web.AppKey("ice", IceConfig)


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
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response({"error": "internal", "message": "internal error"}, status=500)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def ice_config(request: web.Request) -> web.Response:
    """ICE servers for one call page; TURN credentials are fresh on every request."""
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
            "responder": request.app[CALLS].responder.name,
        }
    )


async def healthz(request: web.Request) -> web.Response:
    calls: CallManager = request.app[CALLS]
    return web.json_response({"status": "ok", "sessions": len(calls.sessions)})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(
    responder: Responder,
    config: AgentConfig | None = None,
    ice: IceConfig | None = None,
    max_sessions: int = 8,
    access: AccessPolicy | None = None,
) -> web.Application:
    """Build the server application around one responder; `access` sets the rate limit,
    trusted proxies and API token of call requests (default: none of them)."""
    app = web.Application(middlewares=[json_errors], client_max_size=64 * 1024)
    app[METRICS] = AgentMetrics()
    app[ICE] = ice or IceConfig()
    app[GATE] = CallGate(access or AccessPolicy(), app[METRICS])
    app[CALLS] = CallManager(
        responder, config or AgentConfig(), app[METRICS], app[ICE], max_sessions
    )

    async def hang_up_everyone(app: web.Application) -> None:
        await app[CALLS].close_all()

    app.on_shutdown.append(hang_up_everyone)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_post("/offer", post_offer)
    app.router.add_post("/v1/calls", post_whip)
    app.router.add_delete("/v1/calls/{session_id}", delete_call)
    app.router.add_get("/v1/options", options)
    app.router.add_get("/ice-config", ice_config)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app

"""The front of `serve --workers N`: one address for the page, the API, /healthz and /metrics,
with the calls themselves in the worker processes (signaling/workers.py).

The router checks what every request must pass (origins, token, rate limits) and serves the
page, options and ICE configuration itself. A call request goes to the worker with the most
room; a worker at its capacity answers 503 and the next one is asked; when every worker is
full the caller gets 503 with Retry-After, and the calls in progress keep their pace. A
hang-up goes to every worker (only the call's own knows its secret). /healthz sums the
workers; /metrics is every worker's registry with a `worker` label, and the router's own.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from signaling.admission import GATE, AccessPolicy
from signaling.app import METRICS, base_app
from signaling.calls import CALLS_PATH, RETRY_AFTER_S
from signaling.guards import MAX_BODY_BYTES, MAX_OFFER_BODY_BYTES, ClientError, read_body
from signaling.ice import IceConfig
from signaling.origins import OriginPolicy
from signaling.workers import WORKER_HOST, Worker, WorkerPool

log = logging.getLogger(__name__)
POOL = web.AppKey("workers", WorkerPool)
PASSED_BACK = ("Content-Type", "Location", "Retry-After", "Cache-Control")
"""Headers of a worker's answer that reach the caller."""


def create_router_app(
    pool: WorkerPool,
    responder_name: str,
    ice: IceConfig | None = None,
    access: AccessPolicy | None = None,
    origins: OriginPolicy | None = None,
) -> web.Application:
    """The router's application over a started-or-starting pool of workers."""
    app = base_app(responder_name, ice, access, origins)
    app[POOL] = pool

    async def start_workers(app: web.Application) -> None:
        await app[POOL].start()

    async def stop_workers(app: web.Application) -> None:
        await app[POOL].stop()

    app.on_startup.append(start_workers)
    app.on_shutdown.append(stop_workers)
    app.router.add_post("/offer", forward_call)
    app.router.add_post(CALLS_PATH, forward_call)
    app.router.add_delete(CALLS_PATH + "/{session_id}/{secret}", forward_hang_up)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def forward_call(request: web.Request) -> web.Response:
    """A new call, to the worker with the most room (the next one while they are full)."""
    client = request.app[GATE].admit(request)
    offer = request.path == "/offer"  # a JSON offer may carry a voice clip; WHIP's SDP not
    body = await read_body(request, MAX_OFFER_BODY_BYTES if offer else MAX_BODY_BYTES)
    headers = {
        "Content-Type": request.headers.get("Content-Type", ""),
        "X-Forwarded-For": client,
    }
    for worker in request.app[POOL].by_room():
        answer = await _post(worker, request.rel_url.raw_path_qs, body, headers)
        if answer is None or _at_capacity(answer):
            continue
        status, payload, passed = answer
        return web.Response(status=status, body=payload, headers=passed)
    request.app[METRICS].rejected.labels(reason="at_capacity").inc()
    err = ClientError(503, "at_capacity", "every worker is at its capacity; try again later")
    err.headers["Retry-After"] = str(RETRY_AFTER_S)
    raise err


async def _post(
    worker: Worker, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes, dict[str, str]] | None:
    """The worker's answer (status, body, headers passed back); None when it is unreachable."""
    assert worker.client is not None
    worker.pending += 1
    try:
        async with worker.client.post(f"{WORKER_HOST}{path}", data=body, headers=headers) as resp:
            payload = await resp.read()
            passed = {k: resp.headers[k] for k in PASSED_BACK if k in resp.headers}
            return resp.status, payload, passed
    except (aiohttp.ClientError, OSError, TimeoutError):
        log.warning("worker %d did not answer a call request", worker.index, exc_info=True)
        worker.healthy = False
        return None
    finally:
        worker.pending -= 1


def _at_capacity(answer: tuple[int, bytes, dict[str, str]]) -> bool:
    status, payload, _ = answer
    if status != 503:
        return False
    try:
        return json.loads(payload).get("error") == "at_capacity"
    except ValueError:
        return False


async def forward_hang_up(request: web.Request) -> web.Response:
    """A hang-up, to every worker: the one holding the call ends it."""
    request.app[GATE].authenticate(request)
    path = request.rel_url.raw_path

    async def delete(worker: Worker) -> int:
        assert worker.client is not None
        try:
            async with worker.client.delete(f"{WORKER_HOST}{path}") as resp:
                return resp.status
        except (aiohttp.ClientError, OSError, TimeoutError):
            return 0

    workers = [w for w in request.app[POOL].workers if w.running]
    statuses = await asyncio.gather(*(delete(w) for w in workers))
    if 200 in statuses:
        return web.Response(status=200)
    raise ClientError(404, "no_such_call", "no call with that resource is in progress")


async def healthz(request: web.Request) -> web.Response:
    """The workers' calls and capacity as they are now, summed; 503 when no worker is
    healthy."""
    await request.app[POOL].refresh()
    workers = request.app[POOL].workers
    healthy = [w for w in workers if w.healthy and w.running]
    return web.json_response(
        {
            "status": "ok" if len(healthy) == len(workers) else "degraded",
            "sessions": sum(w.sessions for w in healthy),
            "capacity": sum(w.capacity for w in healthy),
            "workers": len(healthy),
        },
        status=200 if healthy else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    """Every worker's metrics with a `worker` label, and the router's own (`worker="router"`)."""
    workers = request.app[POOL].workers

    async def scrape(worker: Worker) -> str:
        assert worker.client is not None
        try:
            async with worker.client.get(f"{WORKER_HOST}/metrics") as resp:
                return await resp.text()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return ""

    texts = await asyncio.gather(*(scrape(w) for w in workers))
    families: dict[str, Metric] = {}
    for worker, text in zip(workers, texts, strict=True):
        _merge(families, text_string_to_metric_families(text), str(worker.index))
    _merge(families, request.app[METRICS].registry.collect(), "router")
    registry = CollectorRegistry()
    registry.register(_Families(list(families.values())))
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def _merge(into: dict[str, Metric], families, worker: str) -> None:  # noqa: ANN001
    for family in families:
        merged = into.get(family.name)
        if merged is None:
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            into[family.name] = merged
        merged.samples += [
            sample._replace(labels={**sample.labels, "worker": worker}) for sample in family.samples
        ]


class _Families:
    """A collector that yields metric families already gathered."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families

"""`serve --workers N`: N agent processes on one machine, each with its own interpreter, models
and calls, behind one router (signaling/router.py).

Each worker is a whole `telugu-s2s serve` listening on a Unix socket in a private folder
(mode 0700), so only the router reaches it. A call lives in the worker that answered its
offer: its media flow straight between the peer and that worker's own UDP ports (ICE), and
its hang-up is sent to every worker, of which only the owner knows the call's secret. The
router polls each worker's /healthz to know its calls and capacity, sends a new call to the
worker with the most room, and starts a worker again when its process has ended (the calls
it held ended with it). A worker ends itself when its router is gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)
START_TIMEOUT_S = 180.0
"""How long a worker may take to load its models and measure its capacity."""
POLL_S = 0.5
"""How often the router refreshes each worker's calls and capacity."""
RESTART_AFTER_S = 5.0
"""Least time between two starts of the same worker (a worker that keeps dying is not
started in a tight loop)."""
WORKER_CONNECTIONS = 16
"""Connections the router keeps open to one worker (its file descriptors stay bounded)."""
WORKER_HOST = "http://worker"
"""Host part of the URLs the router sends over a worker's socket (never resolved)."""


def follow_router(app: web.Application) -> None:
    """A worker ends itself (as on SIGTERM: its calls hung up) when its router is gone, even
    killed outright: a worker must not outlive the server it belongs to."""
    router = os.getppid()

    async def watch(app: web.Application) -> AsyncIterator[None]:
        async def check() -> None:
            while True:
                await asyncio.sleep(1.0)
                if os.getppid() != router:
                    break
            log.warning("the router (pid %d) is gone: stopping", router)
            signal.raise_signal(signal.SIGTERM)

        task = asyncio.create_task(check(), name="follow-router")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(watch)


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(eq=False)
class Worker:
    """One agent process and what the router last heard from it."""

    index: int
    socket: Path
    process: subprocess.Popen
    client: aiohttp.ClientSession | None = None
    sessions: int = 0
    capacity: int = 0
    healthy: bool = False
    pending: int = field(default=0)
    """Offers sent to it and not answered yet (counted as calls until the next poll)."""
    started: float = field(default_factory=time.monotonic)

    @property
    def room(self) -> int:
        return self.capacity - self.sessions - self.pending

    @property
    def running(self) -> bool:
        return self.process.poll() is None


class WorkerPool:
    """Starts, watches and stops the worker processes."""

    def __init__(self, worker_args: list[str], count: int) -> None:
        if count < 1:
            raise ValueError("--workers must be at least 1")
        self._args = worker_args
        self._folder = Path(tempfile.mkdtemp(prefix="telugu-s2s-workers-"))
        os.chmod(self._folder, 0o700)
        self.workers: list[Worker] = []
        for index in range(count):
            socket = self._folder / f"worker-{index}.sock"
            self.workers.append(Worker(index, socket, self._spawn(socket)))
        self._poller: asyncio.Task | None = None
        self.restarts = 0
        """Workers started again after they died."""

    def _spawn(self, socket: Path) -> subprocess.Popen:
        socket.unlink(missing_ok=True)
        command = [sys.executable, "-m", "signaling.cli", "serve", *self._args]
        return subprocess.Popen([*command, "--worker-socket", str(socket)])

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until every worker answers /healthz; then keep polling them."""
        deadline = time.monotonic() + timeout_s
        for worker in self.workers:
            worker.client = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(worker.socket), limit=WORKER_CONNECTIONS),
                timeout=aiohttp.ClientTimeout(total=15),
            )
            while not await self._poll_one(worker):
                if not worker.running:
                    raise RuntimeError(
                        f"worker {worker.index} exited ({worker.process.returncode})"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker {worker.index} did not start in {timeout_s:g} s")
                await asyncio.sleep(0.2)
        self._poller = asyncio.create_task(self._poll_forever(), name="poll-workers")

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            self._restart_dead()
            await self.refresh()

    def _restart_dead(self) -> None:
        """Start again a worker whose process has ended (its calls ended with it); it takes
        calls once its /healthz answers."""
        now = time.monotonic()
        for worker in self.workers:
            if not worker.running and now - worker.started >= RESTART_AFTER_S:
                log.warning(
                    "worker %d exited (%s): starting it again",
                    worker.index,
                    worker.process.returncode,
                )
                worker.healthy = False
                worker.process = self._spawn(worker.socket)
                worker.started = now
                self.restarts += 1

    async def refresh(self) -> None:
        """Ask every worker for its calls and capacity now."""
        await asyncio.gather(*(self._poll_one(w) for w in self.workers))

    async def _poll_one(self, worker: Worker) -> bool:
        assert worker.client is not None
        try:
            async with worker.client.get(f"{WORKER_HOST}/healthz") as resp:
                health = await resp.json()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            worker.healthy = False
            return False
        worker.sessions = int(health["sessions"])
        worker.capacity = int(health["capacity"])
        worker.healthy = worker.running
        return worker.healthy

    def by_room(self) -> list[Worker]:
        """The healthy workers, the one with the most room first."""
        healthy = [w for w in self.workers if w.healthy and w.running]
        return sorted(healthy, key=lambda w: (-w.room, w.index))

    def kill(self) -> None:
        """Stop every worker still running, at once (the router could not serve)."""
        for worker in self.workers:
            if worker.running:
                worker.process.terminate()
        for worker in self.workers:
            try:
                worker.process.wait(15)
            except subprocess.TimeoutExpired:
                worker.process.kill()
        shutil.rmtree(self._folder, ignore_errors=True)

    async def stop(self) -> None:
        """Stop polling, then stop every worker (each hangs its calls up first)."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for worker in self.workers:
            if worker.running:
                worker.process.terminate()
        for worker in self.workers:
            try:
                await asyncio.get_running_loop().run_in_executor(None, worker.process.wait, 15)
            except subprocess.TimeoutExpired:
                worker.process.kill()
            if worker.client is not None:
                await worker.client.close()
        shutil.rmtree(self._folder, ignore_errors=True)

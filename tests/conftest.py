"""Shared fixtures: a real agent server on a free loopback port, Telugu speech, one torch
thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import torch
from aiohttp import web

from agent.config import AgentConfig
from agent.responders import Responder, make_responder
from signaling.admission import AccessPolicy
from signaling.app import app_runner, create_app
from signaling.calls import CALLS, ClientCaps
from signaling.ice import IceConfig
from signaling.origins import OriginPolicy


@dataclass
class RunningAgent:
    url: str
    app: web.Application

    @property
    def sessions(self) -> dict:
        return self.app[CALLS].sessions


async def start_agent(
    config: AgentConfig | None = None,
    max_sessions: int = 8,
    responder: Responder | None = None,
    ice: IceConfig | None = None,
    access: AccessPolicy | None = None,
    origins: OriginPolicy | None = None,
    caps: ClientCaps | None = None,
    capacity: int | None = None,
):
    app = create_app(
        responder or make_responder("parrot"),
        config or AgentConfig(),
        ice=ice,
        max_sessions=max_sessions,
        access=access,
        origins=origins,
        caps=caps,
        capacity=capacity,
    )
    runner = app_runner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return RunningAgent(f"http://127.0.0.1:{port}", app), runner


@pytest_asyncio.fixture
async def agent() -> AsyncIterator[RunningAgent]:
    """A parrot agent with the default settings, served on loopback for one test."""
    running, runner = await start_agent()
    yield running
    await runner.cleanup()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where tests leave files worth looking at (screenshots, recordings)."""
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny networks gain nothing from more threads and lose much on a busy machine (the
    speaker encoder's LSTM crawls on two busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

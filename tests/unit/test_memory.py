"""Freed memory goes back to the system after calls; /metrics reports what the process holds."""

import asyncio
import json
import subprocess
import sys
from types import SimpleNamespace

import aiohttp
import pytest

from agent.config import AgentConfig
from agent.process import memory
from agent.process.memory import MemoryTrimmer
from agent.process.metrics import AgentMetrics
from agent.responders import make_responder
from benchmarks.churn import Resources
from signaling.calls import CallManager
from signaling.ice import IceConfig
from tests.conftest import start_agent

HEAP_SCENARIO = """
import json
import numpy as np
from agent.process.memory import release_free_memory

def rss_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

start = rss_mib()
blocks = [np.ones(8_000) for _ in range(3_000)]
pin = np.ones(100)
blocks.clear()
held = rss_mib() - start
trimmed = release_free_memory()
print(json.dumps({"held": held, "after": rss_mib() - start, "trimmed": trimmed}))
"""


def test_release_free_memory_gives_freed_heap_pages_back():
    """3000 blocks of 64 KiB (under malloc's mmap threshold: on the heap), then a small one
    above them that stays: freeing the big ones leaves the heap's top in use, so glibc keeps
    their pages until a trim. In a fresh interpreter, where the heap is as described."""
    out = subprocess.run(
        [sys.executable, "-c", HEAP_SCENARIO], capture_output=True, text=True, check=True
    )
    figures = json.loads(out.stdout)
    assert figures["trimmed"]
    assert figures["held"] > 50, "glibc gave the freed blocks back by itself"
    assert figures["after"] < figures["held"] / 2


async def test_trimmer_runs_once_for_calls_ending_together(monkeypatch):
    runs = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: runs.append(1) or True)
    trimmer = MemoryTrimmer(delay_s=0.05)
    for _ in range(5):
        trimmer.schedule()
    await asyncio.sleep(0.2)
    trimmer.schedule()
    await asyncio.sleep(0.2)
    await trimmer.close()
    assert runs == [1, 1]


async def test_close_cancels_a_pending_trim(monkeypatch):
    runs = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: runs.append(1) or True)
    trimmer = MemoryTrimmer(delay_s=0.05)
    trimmer.schedule()
    await trimmer.close()
    await asyncio.sleep(0.1)
    assert runs == []


async def test_metrics_report_the_process_resources():
    agent, runner = await start_agent()
    try:
        async with aiohttp.ClientSession() as http:
            resources = await Resources.of(http, agent.url)
    finally:
        await runner.cleanup()
    assert resources.tasks >= 1
    assert resources.threads >= 1
    assert resources.call_threads == 0
    assert resources.fds > 2
    assert resources.rss_mib > 50


@pytest.mark.parametrize("trim", [True, False])
async def test_calls_ending_ask_for_a_trim_unless_configured_off(monkeypatch, trim):
    runs = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: runs.append(1) or True)
    manager = CallManager(
        make_responder("parrot"), AgentConfig(trim_memory=trim), AgentMetrics(), IceConfig(), 8
    )
    manager.trimmer.delay_s = 0.05
    manager._forget(SimpleNamespace(id="ended"))  # what a session calls when it closes
    await asyncio.sleep(0.2)
    await manager.close_all()
    assert runs == ([1] if trim else [])

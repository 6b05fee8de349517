"""200 real calls opened and dropped every way a client can drop one; afterwards the agent
(and this process, whose aiortc clients share it) holds nothing more than after a warm-up."""

from __future__ import annotations

import pytest

from benchmarks.churn import CHURN_CONFIG, KINDS, churn, settled, speech
from tests.conftest import start_agent

pytestmark = pytest.mark.slow

CALLS = 200
CONCURRENCY = 10
RSS_MARGIN_MIB = 4.0 * CALLS
"""Resident memory still grows by about 2 MiB per call: native memory, not Python objects
(an open finding, see docs/benchmarks.md). This bound catches anything worse."""


@pytest.mark.timeout(300)
async def test_churn_leaves_no_sessions_tasks_threads_or_fds():
    agent, runner = await start_agent(CHURN_CONFIG, max_sessions=CONCURRENCY * 6)
    pcm48 = speech()

    def left() -> int:
        return len(agent.sessions)

    try:
        await churn(agent.url, 20, CONCURRENCY, pcm48, left)
        before = await settled()
        result = await churn(agent.url, CALLS, CONCURRENCY, pcm48, left)
        after = await settled()
    finally:
        await runner.cleanup()
    print(f"churn: {result} before={before} after={after}")
    assert result.refused == 0
    assert result.kinds == {kind: CALLS // len(KINDS) for kind in KINDS}
    # every call that spoke heard its answer start before it dropped (the drops really
    # happened in the middle of answers)
    assert result.answered >= 0.9 * CALLS * 3 / len(KINDS)
    assert agent.sessions == {}
    assert after.call_threads == 0
    assert after.tasks <= before.tasks
    assert after.threads <= before.threads
    assert after.fds <= before.fds + 2
    assert after.rss_mib - before.rss_mib < RSS_MARGIN_MIB

"""A real browser calls a real agent: headless Chromium opens the call page, speaks a
synthesized Telugu clip through its fake microphone and measures voice-to-voice itself."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest

from agent.responders.s2s import S2SResponder
from models.asr.errors import ErrorRates
from models.loading import DEMO_CHECKPOINT, load
from models.speech.audio import write_audio
from signaling.admission import AccessPolicy
from signaling.origins import OriginPolicy
from tests.conftest import start_agent
from tests.speech import SENTENCES, conversation

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
RATE = 48000

# Console messages a healthy call page may log in a sandboxed headless browser.
HARMLESS_CONSOLE = (
    "ice-config unavailable",  # the page falls back to host candidates
    "favicon",
)


def chromium_args(clip: str) -> list[str]:
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={clip}",
        "--autoplay-policy=no-user-gesture-required",
    ]


async def poll(
    check: Callable[[], Awaitable[bool]], limit_s: float, what: str, step_s: float = 0.1
) -> float:
    """Await `check()` until it is true; seconds it took, or fail after limit_s."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        if loop.time() - start > limit_s:
            raise AssertionError(f"{what}: not within {limit_s} s")
        await asyncio.sleep(step_s)
    return loop.time() - start


TOKEN = "browser-test-token"


@pytest.fixture(params=["defaults", "token_and_origins", "demo_model"])
async def served(request):
    """An agent with the defaults (the parrot), with an API token and an origin allow-list
    configured, or answering with the shipped demo model (its captions: the recognizer's
    words and the decoder's text stream); the page's address (with the token in its fragment
    when there is one)."""
    if request.param == "defaults":
        agent, runner = await start_agent()
        page_url = agent.url
    elif request.param == "demo_model":
        agent, runner = await start_agent(responder=S2SResponder(load(DEMO_CHECKPOINT), seed=0))
        page_url = agent.url
    else:
        access = AccessPolicy(api_token=TOKEN)
        origins = OriginPolicy(("https://embed.example",))
        agent, runner = await start_agent(access=access, origins=origins)
        page_url = f"{agent.url}/#token={TOKEN}"
    yield agent, page_url
    await runner.cleanup()


async def test_browser_call_page_talks_to_the_agent_and_measures_voice_to_voice(
    served, artifacts, tmp_path
):
    from playwright.async_api import async_playwright

    agent, page_url = served

    clip = tmp_path / "telugu.wav"
    write_audio(clip, conversation([0.5, "greeting", 3.5, "weather", 3.5], RATE), RATE)

    page_errors: list[str] = []
    console_errors: list[str] = []

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=chromium_args(str(clip))
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1000})
            await context.grant_permissions(["microphone"], origin=agent.url)
            page = await context.new_page()
            page.on("pageerror", lambda err: page_errors.append(str(err)))
            page.on(
                "console",
                lambda msg: console_errors.append(msg.text) if msg.type == "error" else None,
            )

            await page.goto(page_url)
            # the options have loaded: the voice list is filled
            await page.wait_for_function("document.querySelectorAll('#speaker option').length > 0")
            assert await page.locator("#status").get_attribute("data-state") == "idle"
            assert await page.locator("#hangup").is_disabled()

            await page.click("#call")

            # the agent answered: the page got its first response and latency report
            await page.wait_for_function(
                """() => {
                    const kinds = window.agentCall.events.map((e) => e.type);
                    return kinds.includes('response_started') && kinds.includes('latency');
                }""",
                timeout=30_000,
            )
            assert await page.locator("#status").get_attribute("data-state") == "connected"
            assert await page.locator("#call").is_disabled()
            assert len(agent.sessions) == 1
            session_id = await page.evaluate("window.agentCall.sessionId")
            assert session_id in agent.sessions
            assert await page.locator("#session-id").inner_text() == session_id

            # ...and the page measured voice-to-voice itself
            await page.wait_for_function(
                "() => window.agentCall.v2v.length > 0 && /^\\d+$/.test("
                "document.getElementById('v2v-last').textContent.trim())",
                timeout=15_000,
            )
            v2v: list[int] = await page.evaluate("window.agentCall.v2v")
            shown = int((await page.locator("#v2v-last").inner_text()).strip())
            assert shown == v2v[-1]
            assert all(0 < ms < 5000 for ms in v2v), v2v

            # the latency table has the turn's row with the server's stages and the page figure
            rows = page.locator("tr.latency-row")
            assert await rows.count() >= 1
            latency = next(
                e for e in await page.evaluate("window.agentCall.events") if e["type"] == "latency"
            )
            row = page.locator(f'tr.latency-row[data-turn="{latency["turn"]}"]')
            for stage, value in latency["stages"].items():
                text = (await row.locator(f'td[data-key="{stage}"]').inner_text()).strip()
                assert re.fullmatch(r"\d+(\.\d)?", text), (stage, text)
                assert abs(float(text) - value) <= 1, (stage, text, value)
            # whether the answer was started ahead (in the pause before the end of turn), and
            # how many answers started ahead were thrown away before it
            discarded = sum(
                1
                for e in await page.evaluate("window.agentCall.events")
                if e["type"] == "answer_ahead"
                and e["turn"] == latency["turn"]
                and e["outcome"] != "used"
            )
            ahead = (await row.locator('td[data-key="ahead"]').inner_text()).strip()
            shown_used = "yes" if latency["ahead"] else "no"
            assert ahead.endswith(f"{shown_used} ({discarded})"), (ahead, latency["ahead"])
            measured = page.locator("tr.latency-row td.v2v")
            assert await measured.count() >= 1
            assert int((await measured.first.inner_text()).strip()) in v2v

            # the captions panel shows the first turn's words, the user's and the agent's, each
            # on one line updated in place until its final caption
            await page.wait_for_function(
                """() => {
                    const turn = document.querySelector('#captions li[data-turn="1"]');
                    const lines = turn ? turn.querySelectorAll('.caption') : [];
                    return lines.length === 2
                        && [...lines].every((line) => line.dataset.final === 'true');
                }""",
                timeout=15_000,
            )
            events = await page.evaluate("window.agentCall.events")
            captions = [e for e in events if e["type"] == "caption" and e["turn"] == 1]
            finals = {e["who"]: e["text"] for e in captions if e["final"]}
            assert len(captions) > len(finals) == 2, captions  # partial ones came first
            turn = page.locator('#captions li[data-turn="1"]')
            assert await turn.locator(".caption").count() == 2
            for who, text in finals.items():
                shown = await turn.locator(f'.caption[data-who="{who}"] .text').inner_text()
                assert shown == text, (who, shown, text)
            errors = ErrorRates()
            errors.add(SENTENCES["greeting"], finals["user"])
            assert errors.cer < 0.5, finals  # Telugu words, through Chromium's capture path

            print(f"page voice-to-voice ms: {v2v}; server stages ms: {latency['stages']}")
            print(f"captions of turn 1: {finals}")
            await page.screenshot(path=str(artifacts / "browser-call.png"), full_page=True)

            async def no_sessions() -> bool:
                return not agent.sessions

            await page.click("#hangup")
            await poll(no_sessions, 5.0, "the agent ended the session")
            assert await page.locator("#status").get_attribute("data-state") == "closed"
            assert await page.locator("#vad-state").inner_text() == "idle"
            assert await page.locator("#call").is_enabled()
        finally:
            await browser.close()

    assert not page_errors, page_errors
    unexpected = [m for m in console_errors if not any(h in m for h in HARMLESS_CONSOLE)]
    assert not unexpected, unexpected


async def test_browser_call_page_sends_a_voice_clip_and_shows_its_event(tmp_path):
    """The page's voice clip input: the clip goes with the offer, the call is answered in its
    voice (the embedding is taken: voice_ready), and the page says so; an unusable clip is
    refused with the server's reason on the page, and no call is opened."""
    from playwright.async_api import async_playwright

    from tests.clips import encode, speech

    agent, runner = await start_agent(responder=S2SResponder(load(DEMO_CHECKPOINT), seed=0))
    microphone = tmp_path / "telugu.wav"
    write_audio(microphone, conversation([0.5, "greeting", 3.5], RATE), RATE)
    clip = tmp_path / "voice.mp3"
    clip.write_bytes(encode(speech(4.0), "mp3"))
    silent = tmp_path / "silent.wav"
    silent.write_bytes(encode(speech(2.0) * 0.0, "wav"))
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=chromium_args(str(microphone))
            )
            try:
                context = await browser.new_context()
                await context.grant_permissions(["microphone"], origin=agent.url)
                page = await context.new_page()
                await page.goto(agent.url)
                await page.wait_for_function(
                    "() => document.querySelectorAll('#speaker option').length > 0"
                )

                await page.set_input_files("#voice-clip", str(silent))
                await page.click("#call")
                await page.wait_for_function(
                    "() => document.getElementById('status').dataset.state === 'error'"
                )
                assert "of sound" in await page.locator("#status").inner_text()  # the reason
                assert agent.sessions == {}

                await page.set_input_files("#voice-clip", str(clip))
                await page.click("#call")
                await page.wait_for_function(
                    """() => window.agentCall.events.some((e) => e.type === 'voice_ready')
                        && window.agentCall.events.some((e) => e.type === 'response_started')""",
                    timeout=30_000,
                )
                ready = await page.evaluate(
                    "window.agentCall.events.find((e) => e.type === 'voice_ready')"
                )
                assert ready["source"] == "clip" and ready["ms"] > 0
                assert "Voice ready" in await page.locator("#voice-state").inner_text()
                (session,) = agent.sessions.values()
                assert session.options.voice is not None
                await page.click("#hangup")
            finally:
                await browser.close()
    finally:
        await runner.cleanup()

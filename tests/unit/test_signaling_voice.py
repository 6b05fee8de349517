"""An offer's `voice`: every unusable one is refused with its own 4xx reason and opens no call;
a usable clip is answered with a call whose answers take its embedding; a responder that
cannot clone refuses voices; only the JSON offer's body limit grows to carry a clip."""

import base64

import aiohttp
import numpy as np
import pytest

from agent.responders.s2s import S2SResponder
from models.config import DEMO
from models.loading import build
from models.speech.audio import MODEL_RATE
from signaling.guards import MAX_VOICE_CHARS
from tests.clips import encode, speech
from tests.conftest import start_agent
from tests.unit.test_signaling import expect_refused, make_offer, post_json


@pytest.fixture(scope="module")
def responder() -> S2SResponder:
    return S2SResponder(build(DEMO, seed=3))


@pytest.fixture
async def s2s_agent(responder):
    running, runner = await start_agent(responder=responder)
    yield running
    await runner.cleanup()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def clip() -> bytes:
    return encode(speech(3.0), "webm")


@pytest.mark.parametrize(
    ("voice", "status", "error"),
    [
        (123, 400, "invalid_voice"),
        (["caller"], 400, "invalid_voice"),
        ("", 400, "invalid_voice"),
        ("my voice please", 400, "voice_not_base64"),
        ("A" * (MAX_VOICE_CHARS + 4), 413, "voice_too_large"),
        (b64(b"not audio, just some bytes"), 422, "voice_undecodable"),
        (b64(encode(speech(0.5), "wav")), 422, "voice_too_short"),
        (b64(encode(speech(16.0), "mp3")), 422, "voice_too_long"),
        (b64(encode(np.zeros(3 * MODEL_RATE, np.float32), "ogg")), 422, "voice_silent"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
async def test_unusable_voices_are_refused_with_their_reason(s2s_agent, http, voice, status, error):
    sdp = await make_offer()
    await expect_refused(
        s2s_agent, http, {"sdp": sdp, "type": "offer", "voice": voice}, status, error
    )


async def test_a_clip_opens_a_call_whose_answers_take_its_voice(s2s_agent, http, clip):
    sdp = await make_offer()
    status, body, _ = await post_json(
        http, f"{s2s_agent.url}/offer", {"sdp": sdp, "type": "offer", "voice": b64(clip)}
    )
    assert status == 200, body
    (session,) = s2s_agent.sessions.values()
    assert session.options.voice is not None and session.options.voice.shape == (256,)
    speaker = session._responder.answer_speaker()
    assert speaker.shape == (1, 256)
    np.testing.assert_allclose(speaker[0].numpy(), session.options.voice)
    async with http.get(f"{s2s_agent.url}/metrics") as resp:
        text = await resp.text()
    assert 'telugu_s2s_voice_ms_count{source="clip"} 1.0' in text


async def test_my_voice_opens_a_call_in_the_named_voice_until_it_is_heard(s2s_agent, http):
    sdp = await make_offer()
    body = {"sdp": sdp, "type": "offer", "voice": "caller", "speaker": "male_2"}
    status, payload, _ = await post_json(http, f"{s2s_agent.url}/offer", body)
    assert status == 200, payload
    (session,) = s2s_agent.sessions.values()
    assert session.options.caller_voice and session.options.voice is None
    assert not session._responder.answer_speaker().is_floating_point()  # the named voice


@pytest.mark.parametrize("voice", ["caller", None])
async def test_a_responder_that_cannot_clone_refuses_voices(agent, http, clip, voice):
    sdp = await make_offer()
    body = {"sdp": sdp, "type": "offer", "voice": voice or b64(clip)}
    payload = await expect_refused(agent, http, body, 422, "voice_not_supported")
    assert "parrot" in payload["message"]


async def test_only_the_json_offer_may_carry_a_clip_sized_body(s2s_agent, http):
    headers = {"Content-Type": "application/sdp"}
    async with http.post(
        f"{s2s_agent.url}/v1/calls", data="v=0\r\n" + "a" * 70_000, headers=headers
    ) as r:
        assert r.status == 413 and (await r.json())["error"] == "body_too_large"

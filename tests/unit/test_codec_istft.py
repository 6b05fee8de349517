"""The istft decoder: an exact inverse STFT with its delay, streaming == offline (also as one
batch of several calls' states), causality; quantizer dropout; the conv decoder stays default."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models.codec import TeluCodec
from models.codec.codec import DecoderState
from models.codec.istft import ISTFTHead, delay
from models.config import DEMO, S2SConfig
from tests.unit.test_codec import assert_streaming_decode_matches_whole, noise

HOP = DEMO.codec.hop
ISTFT = replace(DEMO.codec, decoder="istft")
SHIPPED_CONFIG = Path(__file__).parents[2] / "models" / "checkpoints" / "demo" / "config.json"


@pytest.fixture(scope="module")
def codec() -> TeluCodec:
    """Demo-sized istft codec with random weights, codebooks set from data by one step."""
    torch.manual_seed(0)
    model = TeluCodec(ISTFT)
    model.train()
    model(noise(200, seed=100), levels=ISTFT.num_quantizers)
    return model.eval()


def test_delay_is_three_hops_at_four_hop_frames(codec: TeluCodec) -> None:
    assert ISTFT.istft_n_fft == 4 * HOP and codec.delay == delay(ISTFT) == 3 * HOP
    assert 1000 * codec.delay / ISTFT.sample_rate == 15.0
    assert TeluCodec(DEMO.codec).delay == 0
    wav = noise(5)
    torch.testing.assert_close(codec.delayed(wav)[:, 3 * HOP :], wav[:, : 2 * HOP])
    assert not codec.delayed(wav)[:, : 3 * HOP].any()


def test_head_inverts_the_stft_of_a_signal_with_its_delay() -> None:
    n_fft = 4 * HOP
    head = ISTFTHead(dim=n_fft + 2, n_fft=n_fft, hop=HOP)
    with torch.no_grad():
        head.project.weight.copy_(torch.eye(n_fft + 2))
        head.project.bias.zero_()
    wav = noise(30, batch=1, seed=3)
    # frame j: the n_fft samples that end with frame j's hop, under the analysis window
    padded = torch.nn.functional.pad(wav, (n_fft - HOP, 0))
    frames = padded.unfold(-1, n_fft, HOP) * torch.hann_window(n_fft)
    spectrum = torch.fft.rfft(frames, dim=-1)
    features = torch.cat((spectrum.abs().clamp_min(1e-12).log(), spectrum.angle()), -1)
    out = head(features.transpose(1, 2))[:, 0]
    expected = torch.nn.functional.pad(wav, (n_fft - HOP, 0))[:, : wav.shape[1]]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("seed", [4, 5])
def test_streaming_decode_matches_whole_utterance(codec: TeluCodec, seed: int) -> None:
    assert_streaming_decode_matches_whole(codec, seed, loudest_at_least=0.01, atol=1e-5)


def test_stacked_states_decode_as_the_separate_streams(codec: TeluCodec) -> None:
    """Two calls in one batch (the server's `DecoderState.stack` / `rows`), 4 frames a call."""
    codes = codec.encode(noise(16, seed=6))
    like = codec.quantizer.decode(codes[:1, :, :1])
    alone = [codec.decode(codes[i : i + 1]) for i in range(2)]
    states = [codec.initial_decoder_state(1, like) for _ in range(2)]
    pieces = []
    for start in range(0, 16, 4):
        pcm, stacked = codec.decode_stream(
            codes[:, :, start : start + 4], DecoderState.stack(states)
        )
        states = stacked.rows()
        pieces.append(pcm)
    streamed = torch.cat(pieces, -1)
    for i in range(2):
        torch.testing.assert_close(streamed[i : i + 1], alone[i], rtol=0, atol=1e-5)


def test_later_codes_change_no_earlier_sample(codec: TeluCodec) -> None:
    codes = codec.encode(noise(40, seed=9))
    changed = codes.clone()
    changed[..., 30:] = torch.randint(0, ISTFT.codebook_size, (2, 8, 10))
    out, changed_out = codec.decode(codes), codec.decode(changed)
    torch.testing.assert_close(changed_out[:, : 30 * HOP], out[:, : 30 * HOP], rtol=0, atol=1e-6)
    assert (changed_out[:, 30 * HOP : 31 * HOP] - out[:, 30 * HOP : 31 * HOP]).abs().max() > 1e-4


def test_training_pass_reaches_every_part(codec: TeluCodec) -> None:
    model = TeluCodec(ISTFT).train()
    wav = noise(20, seed=8)
    reconstruction, codes, _ = model(wav, levels=3)
    assert reconstruction.shape == wav.shape and codes.shape == (2, 3, 20)
    (reconstruction - model.delayed(wav)).pow(2).mean().backward()
    for name, parameter in model.named_parameters():
        if "codewords" not in name:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_quantizer_dropout_share() -> None:
    wav = noise(2, batch=1)
    torch.manual_seed(0)
    never = TeluCodec(replace(DEMO.codec, quantizer_dropout=0.0)).train()
    assert {never(wav)[1].shape[1] for _ in range(8)} == {8}
    always = TeluCodec(replace(DEMO.codec, quantizer_dropout=1.0)).train()
    drawn = [always(wav)[1].shape[1] for _ in range(40)]
    assert len(set(drawn)) > 4 and set(drawn) <= set(range(1, 9))
    half = TeluCodec(DEMO.codec).train()
    full = sum(half(wav)[1].shape[1] == 8 for _ in range(80))
    assert 30 < full < 65  # about 1/2 + 1/16 of 80


def test_shipped_config_keeps_the_conv_decoder() -> None:
    config = S2SConfig.from_dict(json.loads(SHIPPED_CONFIG.read_text())["config"])
    assert config.codec.decoder == DEMO.codec.decoder == "conv"
    with pytest.raises(ValueError, match="decoder"):
        TeluCodec(replace(DEMO.codec, decoder="wavenet"))
    with pytest.raises(ValueError, match="multiple of hop"):
        TeluCodec(replace(ISTFT, istft_n_fft=300))

"""TeluCodec: shapes, bitrate, streaming == whole utterance, causality, RVQ training behaviour."""

from __future__ import annotations

import copy

import pytest
import torch

from models.codec import TeluCodec
from models.codec.quantizer import EMACodebook
from models.config import DEMO, SEED

HOP = DEMO.codec.hop


def noise(frames: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Random PCM of `frames` codec frames."""
    generator = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(batch, frames * HOP, generator=generator)


def partition(total: int, seed: int, largest: int = 9) -> list[int]:
    """Random chunk sizes (1..largest) that add up to `total`."""
    generator = torch.Generator().manual_seed(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        size = int(torch.randint(1, largest + 1, (), generator=generator))
        sizes.append(min(size, total - sum(sizes)))
    return sizes


@pytest.fixture(scope="module")
def codec() -> TeluCodec:
    """Demo codec with random weights whose codebooks one training step set from data."""
    torch.manual_seed(0)
    model = TeluCodec(DEMO.codec)
    model.train()
    model(noise(200, seed=100), levels=DEMO.codec.num_quantizers)
    return model.eval()


def test_shapes_and_hop(codec: TeluCodec) -> None:
    assert codec.hop == 80 and DEMO.codec.frame_rate_hz == 200
    wav = noise(12)
    codes = codec.encode(wav)
    assert codes.shape == (2, 8, 12) and codes.dtype == torch.long
    assert int(codes.max()) < DEMO.codec.codebook_size and int(codes.min()) >= 0
    assert codec.decode(codes).shape == wav.shape
    reconstruction, train_codes, losses = codec(wav)
    assert reconstruction.shape == wav.shape and torch.equal(train_codes, codes)
    assert {"commitment", "orthogonal"} <= set(losses)


def test_seed_preset_shapes_params_and_bitrate() -> None:
    config = SEED.codec
    model = TeluCodec(config).eval()
    assert 10e6 < sum(p.numel() for p in model.parameters()) < 50e6
    codes = model.encode(torch.zeros(1, config.sample_rate // 10))  # 0.1 s
    assert codes.shape == (1, 8, 20)
    bits_per_second = codes.shape[1] * codes.shape[2] * config.bits_per_code / 0.1
    assert bits_per_second == config.bitrate_bps() == 16_000
    assert config.bitrate_bps(2) == 4_000
    assert model.decode(codes[:, :2]).shape == (1, config.sample_rate // 10)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_streaming_encode_matches_whole_utterance(codec: TeluCodec, seed: int) -> None:
    wav = noise(60, seed=seed)
    whole_latent = codec.encoder(wav[:, None])
    whole_codes = codec.encode(wav)
    states = codec.encoder.initial_states(2, wav)
    latents, codes, state, start = [], [], None, 0
    with torch.inference_mode():
        for frames in partition(60, seed):
            chunk = wav[:, start * HOP : (start + frames) * HOP]
            latent, states = codec.encoder.stream(chunk[:, None], states)
            chunk_codes, state = codec.encode_stream(chunk, state)
            latents.append(latent)
            codes.append(chunk_codes)
            start += frames
    assert whole_latent.abs().max() > 0.05  # the tolerance below is meaningful
    torch.testing.assert_close(torch.cat(latents, -1), whole_latent, rtol=0, atol=1e-4)
    streamed_codes = torch.cat(codes, -1)
    assert streamed_codes.shape == whole_codes.shape
    assert (streamed_codes == whole_codes).float().mean() >= 0.995


def assert_streaming_decode_matches_whole(
    codec: TeluCodec, seed: int, loudest_at_least: float, atol: float
) -> None:
    """60 frames decoded in random chunks give the whole utterance's decode (within atol),
    and that decode is not silence."""
    codes = codec.encode(noise(60, seed=seed))
    whole = codec.decode(codes)
    pieces, state, start = [], None, 0
    with torch.inference_mode():
        for frames in partition(60, seed):
            piece, state = codec.decode_stream(codes[:, :, start : start + frames], state)
            assert piece.shape == (2, frames * HOP)
            pieces.append(piece)
            start += frames
    assert whole.abs().max() > loudest_at_least
    torch.testing.assert_close(torch.cat(pieces, -1), whole, rtol=0, atol=atol)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_streaming_decode_matches_whole_utterance(codec: TeluCodec, seed: int) -> None:
    assert_streaming_decode_matches_whole(codec, seed, loudest_at_least=0.05, atol=1e-4)


def test_fewer_levels_decode_to_a_different_signal(codec: TeluCodec) -> None:
    wav = noise(20)
    codes = codec.encode(wav)
    assert torch.equal(codec.encode(wav, levels=2), codes[:, :2])
    low_rate = codec.decode(codes[:, :2])
    assert low_rate.shape == wav.shape and torch.isfinite(low_rate).all()
    assert (low_rate - codec.decode(codes)).abs().max() > 1e-2
    streamed, _ = codec.decode_stream(codes[:, :2])
    torch.testing.assert_close(streamed, low_rate, rtol=0, atol=1e-4)


def test_training_without_levels_drops_random_quantizers(codec: TeluCodec) -> None:
    model = copy.deepcopy(codec).train()
    torch.manual_seed(0)
    levels = {model(noise(4, batch=1))[1].shape[1] for _ in range(12)}
    assert len(levels) > 1 and levels <= set(range(1, 9))
    assert model.eval()(noise(4, batch=1))[1].shape[1] == 8


def test_ema_step_moves_used_codes_towards_their_vectors() -> None:
    torch.manual_seed(0)
    codebook = EMACodebook(dim=4, codebook_size=8, decay=0.9, dead_code_threshold=2.0)
    codebook.cluster_size.fill_(10.0)
    before = codebook.codewords.detach().clone()
    vectors = before[0] + 0.01 * torch.randn(5, 4)
    codes = codebook.nearest(vectors)
    assert (codes == 0).all()
    codebook.update(vectors, codes)
    expected = (0.9 * 10 * before[0] + 0.1 * vectors.sum(0)) / (0.9 * 10 + 0.1 * 5)
    torch.testing.assert_close(codebook.codewords[0].detach(), expected)
    torch.testing.assert_close(codebook.codewords[1:].detach(), before[1:])
    assert codebook.cluster_size[0] == pytest.approx(9.5)
    assert codebook.cluster_size[1] == pytest.approx(9.0)


def test_codebooks_update_in_training_mode_only(codec: TeluCodec) -> None:
    model = copy.deepcopy(codec)
    wav = noise(20, seed=7)
    before = copy.deepcopy(model.quantizer.state_dict())
    model.eval()(wav, levels=8)
    for name, tensor in model.quantizer.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    model.train()(wav, levels=8)
    after = model.quantizer.state_dict()
    for level in range(8):
        name = f"levels.{level}.codewords"
        assert not torch.equal(after[name], before[name]), name


def test_dead_code_is_replaced_by_a_batch_vector() -> None:
    torch.manual_seed(0)
    codebook = EMACodebook(dim=4, codebook_size=8, decay=0.99, dead_code_threshold=2.0)
    codebook.cluster_size.fill_(10.0)
    codebook.cluster_size[3] = 0.5
    before = codebook.codewords.detach().clone()
    vectors = before[0] + 0.01 * torch.randn(6, 4)
    codebook.update(vectors, codebook.nearest(vectors))
    replaced = codebook.codewords[3].detach()
    assert torch.cdist(replaced[None], vectors).min() == 0
    assert codebook.cluster_size[3] == 2.0
    torch.testing.assert_close(codebook.codewords[4:].detach(), before[4:])


def test_losses_are_finite_and_gradients_reach_the_encoder(codec: TeluCodec) -> None:
    model = copy.deepcopy(codec).train()
    reconstruction, _, losses = model(noise(20, seed=8), levels=4)
    assert all(torch.isfinite(loss) and loss > 0 for loss in losses.values())
    first_conv = model.encoder.layers[0].weight
    # straight-through: the reconstruction loss alone reaches the encoder
    (first_grad,) = torch.autograd.grad(reconstruction.pow(2).mean(), first_conv, retain_graph=True)
    assert torch.isfinite(first_grad).all() and first_grad.abs().sum() > 0
    (commitment_grad,) = torch.autograd.grad(losses["commitment"], first_conv)
    assert commitment_grad.abs().sum() > 0
    codewords = model.quantizer.levels[0].codewords
    (orthogonal_grad,) = torch.autograd.grad(losses["orthogonal"], codewords)
    assert orthogonal_grad.abs().sum() > 0


def test_future_input_does_not_change_past_codes_or_samples(codec: TeluCodec) -> None:
    wav = noise(40, seed=9)
    changed = wav.clone()
    changed[:, 30 * HOP + 17 :] = noise(40, seed=10)[:, 30 * HOP + 17 :]
    latent, changed_latent = codec.encoder(wav[:, None]), codec.encoder(changed[:, None])
    torch.testing.assert_close(changed_latent[..., :30], latent[..., :30], rtol=0, atol=1e-6)
    assert (changed_latent[..., 30] - latent[..., 30]).abs().max() > 1e-3
    assert torch.equal(codec.encode(changed)[..., :30], codec.encode(wav)[..., :30])

    codes = codec.encode(wav)
    changed_codes = codes.clone()
    changed_codes[..., 30:] = torch.randint(0, DEMO.codec.codebook_size, (2, 8, 10))
    out, changed_out = codec.decode(codes), codec.decode(changed_codes)
    torch.testing.assert_close(changed_out[:, : 30 * HOP], out[:, : 30 * HOP], rtol=0, atol=1e-6)
    assert (changed_out[:, 30 * HOP : 31 * HOP] - out[:, 30 * HOP : 31 * HOP]).abs().max() > 1e-3


def test_a_frame_uses_its_last_sample(codec: TeluCodec) -> None:
    wav = noise(40, seed=11)
    changed = wav.clone()
    changed[:, 31 * HOP - 1] += 3.0
    latent, changed_latent = codec.encoder(wav[:, None]), codec.encoder(changed[:, None])
    torch.testing.assert_close(changed_latent[..., :30], latent[..., :30], rtol=0, atol=1e-6)
    assert (changed_latent[..., 30] - latent[..., 30]).abs().max() > 1e-5


def test_bad_input_is_rejected(codec: TeluCodec) -> None:
    with pytest.raises(ValueError, match="multiple of 80"):
        codec.encode(torch.zeros(1, 81))
    with pytest.raises(ValueError):
        codec.encode(torch.zeros(80))
    with pytest.raises(ValueError):
        codec.encode_stream(torch.zeros(1, 100))
    with pytest.raises(ValueError):
        codec(torch.zeros(1, 159))
    with pytest.raises(ValueError):
        codec.encode(torch.zeros(1, 80), levels=0)
    with pytest.raises(ValueError):
        codec.decode(torch.zeros(1, 9, 3, dtype=torch.long))
    with pytest.raises(ValueError):
        codec.decode(torch.zeros(1, 2, 3))

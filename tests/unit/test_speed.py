"""Each optional speed-up gives the float32 eager numbers within its stated tolerance."""

from __future__ import annotations

import pytest
import torch

from models.codec import TeluCodec
from models.codec.layers import ResidualUnit
from models.config import DEMO
from models.loading import DEMO_CHECKPOINT, load
from models.modules.attention import HAS_FLASH_ATTN, attend
from models.s2s.encoder import StreamingEncoder
from models.speed import (
    TOLERANCE,
    compile_module,
    quantize_int8,
    to_dtype,
    with_decoder_precision,
)


@pytest.fixture(scope="module")
def encoder_inputs():
    torch.manual_seed(0)
    encoder = StreamingEncoder(DEMO).eval()
    codes = torch.randint(0, DEMO.codec.codebook_size, (1, 8, 40))
    return encoder, codes, torch.tensor([1]), torch.tensor([2])


def test_int8_dynamic_quantization_stays_close(encoder_inputs):
    encoder, codes, speaker, emotion = encoder_inputs
    with torch.inference_mode():
        reference, _ = encoder(codes, speaker, emotion)
        quantized, _ = quantize_int8(encoder)(codes, speaker, emotion)
    assert not torch.equal(reference, quantized)  # it really ran quantized layers
    assert (reference - quantized).abs().max() < TOLERANCE["int8"] * reference.abs().max()


def test_the_int8_decoder_predicts_what_the_float32_one_does():
    """The shipped decoder, teacher-forced on two answers: int8 moves its code distributions
    by a KL of 0.0003 nats on average and keeps 95.2 % of the likeliest codes (printed with
    -s); the bounds leave 30x and 5 points of room."""
    models = load(DEMO_CHECKPOINT)
    int8 = with_decoder_precision(models, "int8")
    assert int8.encoder is models.encoder and int8.decoder is not models.decoder
    assert with_decoder_precision(models, "float32") is models
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, DEMO.codec.codebook_size, (2, 8, 40), generator=generator)
    memory = torch.randn(2, 20, models.config.encoder.dim, generator=generator)
    text = torch.randint(0, models.config.text.vocab_size, (2, 10), generator=generator)
    speaker, emotion = torch.tensor([0, 1]), torch.tensor([0, 2])
    with torch.inference_mode():
        exact = models.decoder(codes, memory, speaker, emotion, text=text).log_softmax(-1)
        close = int8.decoder(codes, memory, speaker, emotion, text=text).log_softmax(-1)
    kl = float((exact.exp() * (exact - close)).sum(-1).mean())
    same = float((exact.argmax(-1) == close.argmax(-1)).float().mean())
    print(f"int8 decoder: mean KL {kl:.4f} nats, likeliest code the same {same:.1%}")
    assert kl < 0.01
    assert same > 0.9
    with pytest.raises(ValueError, match="int8, float32"):
        with_decoder_precision(models, "int4")


def test_bf16_weights_stay_close(encoder_inputs):
    encoder, codes, speaker, emotion = encoder_inputs
    half = to_dtype(StreamingEncoder(DEMO).eval(), torch.bfloat16)
    half.load_state_dict(encoder.state_dict())
    with torch.inference_mode():
        reference, _ = encoder(codes, speaker, emotion)
        reduced, _ = half(codes, speaker, emotion)
    assert reduced.dtype == torch.bfloat16
    error = (reference - reduced.float()).abs().max()
    assert error < TOLERANCE["bf16"] * reference.abs().max()
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        to_dtype(encoder, torch.float64)


@pytest.mark.slow
def test_torch_compile_matches_eager():
    """One residual unit of the codec's decoder (causal convolutions, activations, the skip),
    compiled: the whole decoder takes four times as long to compile and tests no more."""
    torch.manual_seed(0)
    codec = TeluCodec(DEMO.codec).eval()
    unit = next(layer for layer in codec.decoder.layers if isinstance(layer, ResidualUnit))
    hidden = torch.randn(1, unit.pointwise.out_channels, 40)
    with torch.inference_mode():
        reference = unit(hidden)
        compiled = compile_module(unit)(hidden)
    assert (reference - compiled).abs().max() < TOLERANCE["compile"]


def test_sdpa_attention_matches_the_textbook_formula():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8) for _ in range(3))
    mask = torch.rand(5, 5) > 0.3
    mask.fill_diagonal_(True)
    scores = (q @ k.transpose(-1, -2)) / 8**0.5
    expected = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v
    torch.testing.assert_close(attend(q, k, v, mask), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(
    not (HAS_FLASH_ATTN and torch.cuda.is_available()), reason="flash-attn and CUDA needed"
)
def test_flash_attn_matches_sdpa():
    q, k, v = (torch.randn(1, 4, 16, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    import torch.nn.functional as F

    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(attend(q, k, v, causal=True), expected, atol=2e-2, rtol=2e-2)

"""Speed of the models on their streaming paths, per preset and device.

    python benchmarks/models.py --preset demo --device cpu
    python benchmarks/models.py --preset seed --device cuda --dtype bf16

Times (medians over --runs, after warm-up): codec encode of one 20 ms chunk, codec decode of
one 20 ms chunk, encoder on one 20 ms chunk with full caches, one cached decoder step, the
first audio of an answer (decoder until its first complete step, then codec decode), and the
streaming real-time factor of a whole exchange (user audio encoded as it streams, an answer
generated and decoded). Random weights: speed does not depend on training. The text streams
carry the shipped demo model's copy path by default (`--copy-pieces`). The last line is one
JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script is named like the `models` package it measures; run as a script, its own
# folder would come first on sys.path and shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import torch  # noqa: E402

from models.config import TextConfig, preset, with_copy_pieces  # noqa: E402
from models.loading import Models, build  # noqa: E402
from models.s2s.kv_cache import MemoryCache  # noqa: E402
from models.s2s.sampling import ANSWERS, GREEDY  # noqa: E402
from models.speaker import SpeakerEncoder  # noqa: E402
from models.speed import compile_module, quantize_int8, to_dtype  # noqa: E402

CHUNK_MS = 20
GUIDED_GREEDY = replace(GREEDY, guidance=ANSWERS.guidance)
"""The agent's decoder compute per step (two passes, for guidance), without random draws."""


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def median_ms(fn: Callable[[], object], runs: int, device: torch.device) -> float:
    times = []
    for _ in range(runs):
        start = clock(device)
        fn()
        times.append((clock(device) - start) * 1000)
    return statistics.median(times)


USER_PIECES = 24
"""Pieces of a user turn's words in the text-stream memory (a long sentence)."""


def with_user_words(models: Models, memory: MemoryCache, device: torch.device) -> MemoryCache:
    """The turn's memory as the agent makes it at the end of a turn: the acoustic steps, and
    with text streams USER_PIECES pieces of the user's words embedded and projected."""
    user_text = models.encoder.user_text
    if user_text is None:
        return memory
    pieces = torch.randint(5, models.config.text.vocab_size, (1, USER_PIECES), device=device)
    keys, values = models.decoder.memory_kv(user_text(pieces))
    cache = models.decoder.new_memory(1, memory.length + USER_PIECES, device)
    cache.append(
        torch.cat((memory.keys[..., : memory.length, :], keys), dim=3),
        torch.cat((memory.values[..., : memory.length, :], values), dim=3),
    )
    return cache


def never_ending(models: Models) -> None:
    """Random weights end an answer wherever greedy decoding happens to draw EOS (at the first
    step for some initialisations): rule EOS out, so that every answer runs its steps."""
    with torch.no_grad():
        models.decoder.output.bias[models.decoder.vocab.eos] = -1e4  # level 0, frame 0's EOS


def apply_options(models: Models, args: argparse.Namespace) -> None:
    for name in ("codec", "encoder", "decoder"):
        module = getattr(models, name)
        if args.int8:
            module = quantize_int8(module)
        if args.dtype != "fp32":
            module = to_dtype(module, {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype])
        setattr(models, name, module)
    if args.compile:
        # compile the per-step compute; the streaming loops stay in Python
        models.codec.encoder = compile_module(models.codec.encoder)
        models.codec.decoder = compile_module(models.codec.decoder)


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    config = preset(args.preset)
    if args.codes_only:
        config = replace(config, text=TextConfig())
    else:
        config = with_copy_pieces(config, args.copy_pieces != "none", args.copy_pieces == "follow")
    models = build(config, device)
    never_ending(models)
    apply_options(models, args)
    dtype = next(models.codec.parameters()).dtype
    hop, q, group = config.codec.hop, config.codec.num_quantizers, config.frames_per_step
    chunk = config.codec.sample_rate * CHUNK_MS // 1000
    frames = chunk // hop
    speaker = torch.zeros(1, dtype=torch.long, device=device)
    emotion = torch.zeros(1, dtype=torch.long, device=device)
    params = {
        name: sum(p.numel() for p in getattr(models, name).parameters())
        for name in ("codec", "encoder", "decoder")
    }

    with torch.inference_mode():
        audio = torch.randn(1, chunk, device=device, dtype=dtype) * 0.1
        state = None
        for _ in range(50):  # warm-up: 1 s of audio
            codes, state = models.codec.encode_stream(audio, state)

        def encode() -> None:
            nonlocal state
            _, state = models.codec.encode_stream(audio, state)

        codec_encode_ms = median_ms(encode, args.runs, device)

        some_codes = torch.randint(0, config.codec.codebook_size, (1, q, frames), device=device)
        dstate = None
        for _ in range(50):
            _, dstate = models.codec.decode_stream(some_codes, dstate)

        def decode() -> None:
            nonlocal dstate
            _, dstate = models.codec.decode_stream(some_codes, dstate)

        codec_decode_ms = median_ms(decode, args.runs, device)

        # encoder: 20 ms chunks of codes, after 2 s of warm-up so caches are full
        chunk_codes = torch.randint(0, config.codec.codebook_size, (1, q, frames), device=device)
        estate = models.encoder.init_state(1)
        steps_per_chunk = frames // group
        memory = models.decoder.new_memory(1, 100 * max(1, steps_per_chunk), device)
        for _ in range(100):
            hidden, _, estate = models.encoder.stream(chunk_codes, estate, speaker, emotion)
            # as in the agent: the decoder's memory is projected while the user speaks
            models.decoder.append_memory(memory, hidden)

        def encode_chunk() -> None:
            nonlocal estate
            _, _, estate = models.encoder.stream(chunk_codes, estate, speaker, emotion)

        encoder_chunk_ms = median_ms(encode_chunk, args.runs, device)

        # decoder: first audio and per-step time over one answer; with text streams the end
        # of the turn first adds the turn's words (USER_PIECES pieces) to the memory, as the
        # agent does
        answer_steps = max(args.answer_steps, q + 2)
        step_times, first_audio_ms = [], []
        for _ in range(max(3, args.runs // 20)):
            start = clock(device)
            previous = start
            cstate = None
            turn_memory = with_user_words(models, memory, device)
            steps = models.decoder.generate_stream(
                turn_memory, speaker, emotion, GUIDED_GREEDY, max_steps=answer_steps
            )
            for i, step_codes in enumerate(steps):
                now = clock(device)
                if i == 0:
                    models.codec.decode_stream(step_codes, cstate)
                    first_audio_ms.append((clock(device) - start) * 1000)
                else:
                    step_times.append((now - previous) * 1000)
                previous = clock(device)
        decoder_step_ms = statistics.median(step_times)

        # streaming RTF: 2 s of user audio in 20 ms chunks, then a 2 s answer
        user_chunks = 100
        answer = int(2000 / config.step_ms)
        start = clock(device)
        state, estate = None, models.encoder.init_state(1)
        mem = models.decoder.new_memory(1, user_chunks * max(1, steps_per_chunk), device)
        pending = torch.zeros(1, q, 0, dtype=torch.long, device=device)
        for _ in range(user_chunks):
            codes, state = models.codec.encode_stream(audio, state)
            pending = torch.cat([pending, codes], dim=2)
            usable = pending.shape[2] // group * group
            if usable:
                hidden, _, estate = models.encoder.stream(
                    pending[:, :, :usable], estate, speaker, emotion
                )
                pending = pending[:, :, usable:]
                models.decoder.append_memory(mem, hidden)
        cstate = None
        produced = 0
        for step_codes in models.decoder.generate_stream(
            mem, speaker, emotion, GUIDED_GREEDY, max_steps=answer
        ):
            _, cstate = models.codec.decode_stream(step_codes, cstate)
            produced += 1
        elapsed = clock(device) - start
        audio_s = user_chunks * CHUNK_MS / 1000 + produced * config.step_ms / 1000
        streaming_rtf = elapsed / audio_s

    speaker_embed_ms = speaker_embedding_ms(args.runs)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "preset": args.preset,
        "device": args.device,
        "dtype": args.dtype,
        "int8": args.int8,
        "compile": args.compile,
        "text_streams": not args.codes_only,
        "copy_pieces": "none" if args.codes_only else args.copy_pieces,
        "codec_encode_ms": round(codec_encode_ms, 3),
        "codec_decode_ms": round(codec_decode_ms, 3),
        "encoder_chunk_ms": round(encoder_chunk_ms, 3),
        "decoder_step_ms": round(decoder_step_ms, 3),
        "first_audio_ms": round(statistics.median(first_audio_ms), 3),
        "streaming_rtf": round(streaming_rtf, 3),
        "speaker_embed_3s_ms": round(speaker_embed_ms, 3),
        "peak_memory_mb": round(peak_mb, 1),
        "params": params,
    }


def speaker_embedding_ms(runs: int) -> float:
    """Zero-shot voice: the speaker embedding of a 3 s reference clip, on the CPU."""
    encoder = SpeakerEncoder()
    t = torch.arange(48_000) / 16_000
    clip = 0.3 * torch.sin(2 * torch.pi * 140 * t) * (1 + torch.sin(2 * torch.pi * 3 * t))
    clip = clip + 0.01 * torch.randn_like(clip)
    encoder.embed(clip)
    return median_ms(lambda: encoder.embed(clip), runs, torch.device("cpu"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="demo", choices=["demo", "seed"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--answer-steps", type=int, default=60)
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--int8", action="store_true", help="int8 dynamic quantization (CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the codec")
    parser.add_argument(
        "--codes-only",
        action="store_true",
        help="without the text streams (the design document's codes-only transformer)",
    )
    parser.add_argument(
        "--copy-pieces",
        choices=["none", "copy", "follow"],
        default="follow",
        help="the text streams' copy path as the shipped demo model has it (`train monologue "
        "--copy-pieces`, `--follow-pieces`)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run(args)
    for key in (
        "codec_encode_ms",
        "codec_decode_ms",
        "encoder_chunk_ms",
        "decoder_step_ms",
        "first_audio_ms",
        "streaming_rtf",
        "speaker_embed_3s_ms",
        "peak_memory_mb",
    ):
        print(f"{key:20} {result[key]:10.3f}")
    print(f"{'params':20} {result['params']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

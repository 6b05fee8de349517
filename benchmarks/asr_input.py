"""Which input should the user text stream read: log-mel, or the codec codes the S2S encoder
already has? Trains a recognizer on TeluCodec codes, with everything else as the shipped
log-mel recognizer's recipe (`train asr`: 40 ms frames, 3 x GRU 288, CTC over the same
letters, AdamW 2e-3, batch 16 of similar length, warm-up then cosine, the same fixed sample of
300 validation clips), and prints its validation CER at a few steps, to set beside the log-mel
run's curve (docs/benchmarks.md).

    python -m benchmarks.asr_input --data build/demo/data/manifest.jsonl \
        --codec models/checkpoints/demo --steps 1200 --threads 1

Input: each 5 ms codec frame is the sum of its 8 codebook embeddings (as the S2S encoder
embeds a frame), 8 frames are stacked into one 40 ms frame and projected; no SpecAugment (it
has no mel axis). The codes come from the S2S run's cache when one is given (`--codes`).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.asr.checkpoint import load_config_asr
from models.asr.decode import greedy_decode
from models.asr.errors import ErrorRates
from models.asr.vocab import Vocabulary
from models.checkpoints import load_config, load_state
from models.codec import TeluCodec
from models.data.manifest import read_manifest
from models.train.common import warmup_cosine
from models.train.s2s import length_batch
from models.train.tokens import encode_manifest

FRAMES = 8
"""Codec frames (5 ms) per recognizer frame (40 ms, as the log-mel recognizer's)."""
VALIDATION = 300
WARMUP = 200


class CodesRecognizer(nn.Module):
    """Codec codes (batch, Q, frames) -> CTC logits (batch, frames // FRAMES, vocab)."""

    def __init__(self, quantizers: int, codebook: int, vocab: int, hidden: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(quantizers * codebook, 96)
        self.register_buffer("offsets", torch.arange(quantizers) * codebook, persistent=False)
        self.project = nn.Linear(FRAMES * 96, 192)
        self.gru = nn.GRU(192, hidden, layers, batch_first=True, dropout=0.1)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, codes: Tensor) -> Tensor:
        batch, _, frames = codes.shape
        summed = self.embed(codes + self.offsets[:, None]).sum(dim=1)  # (batch, frames, 96)
        steps = frames // FRAMES
        x = self.project(summed[:, : steps * FRAMES].reshape(batch, steps, FRAMES * 96))
        return self.head(self.gru(F.gelu(x))[0])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--codec", required=True, help="checkpoint whose codec encodes the audio")
    p.add_argument("--codes", default=None, help="a codes cache of the same codec and manifest")
    p.add_argument("--recognizer", default="models/checkpoints/asr", help="whose letters")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--eval-every", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    codec = TeluCodec(load_config(args.codec).codec)
    load_state(args.codec, "codec", codec)
    encoded = encode_manifest(codec.eval(), args.data, cache=args.codes, frames_per_step=4)
    config = load_config_asr(args.recognizer)
    vocab = Vocabulary(config.letters)
    entries = read_manifest(args.data)
    train = [e for e in entries if e.split == "train" and len(vocab.encode(e.text))]
    validation = [e for e in entries if e.split == "validation"]
    if len(validation) > VALIDATION:  # the same fixed sample as `train asr`
        chosen = torch.randperm(len(validation), generator=torch.Generator().manual_seed(0))
        validation = [validation[i] for i in chosen[:VALIDATION].tolist()]
    cq = codec.config
    model = CodesRecognizer(
        cq.num_quantizers, cq.codebook_size, config.vocab_size, config.hidden, config.layers
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.98))
    scheduler = warmup_cosine(optimizer, min(WARMUP, args.steps // 10), args.steps)
    generator = torch.Generator().manual_seed(0)
    by_length = torch.tensor([encoded.codes[e.key].shape[1] for e in train]).argsort()
    began, results = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        batch = [train[i] for i in length_batch(by_length, 16, generator, 8).tolist()]
        codes = [encoded.codes[e.key] for e in batch]
        width = max(c.shape[1] for c in codes)
        padded = torch.stack([F.pad(c, (0, width - c.shape[1])) for c in codes])
        labels = [vocab.encode(e.text) for e in batch]
        log_probs = model(padded).log_softmax(-1).transpose(0, 1)
        frames = torch.tensor([c.shape[1] // FRAMES for c in codes])
        loss = F.ctc_loss(
            log_probs,
            torch.cat(labels),
            frames,
            torch.tensor([len(x) for x in labels]),
            zero_infinity=True,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            rates = ErrorRates()
            with torch.no_grad():
                for entry in validation:
                    logits = model(encoded.codes[entry.key][None])[0]
                    frame_s = FRAMES * codec.hop / cq.sample_rate
                    rates.add(entry.text, greedy_decode(logits, vocab, frame_s).text)
            model.train()
            row = {
                "step": step,
                "minutes": round((time.perf_counter() - began) / 60, 1),
                "loss": round(loss.item(), 3),
                "val_cer": round(rates.cer, 4),
                "val_wer": round(rates.wer, 4),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"input": "codec codes", "parameters": params, "curve": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The training-only heads on the encoder output: transcript labels, CTC and intent losses."""

from __future__ import annotations

import torch

from models.data.text import normalise
from models.train.turn_heads import TurnHeads, alphabet


def test_transcripts_keep_what_is_heard() -> None:
    assert normalise("అంటే...  Hi అండీ, నమస్తే!") == "అంటే hi అండీ నమస్తే"
    letters = alphabet(["హలో!", "Hi అండీ"])
    assert letters == tuple(sorted(set("హలో hi అండీ")))
    heads = TurnHeads(8, letters, ("greeting", "time"))
    labels = heads.labels("హలో, HI? x")  # "x" is not in the alphabet: skipped
    assert [letters[i - 1] for i in labels.tolist()] == list("హలో hi ")
    assert heads.intent_index("time") == 1 and heads.intent_index(None) == -1
    assert TurnHeads(8, letters, ()).intent is None


def test_the_heads_learn_a_transcript_and_an_intent() -> None:
    torch.manual_seed(0)
    heads = TurnHeads(16, alphabet(["నమస్తే", "సమయం"]), ("greeting", "time"))
    hidden = torch.randn(2, 12, 16)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False  # the second turn is 8 steps long
    labels = torch.nn.utils.rnn.pad_sequence(
        [heads.labels("నమస్తే"), heads.labels("సమయం")], batch_first=True
    )
    lengths = torch.tensor([len(heads.labels("నమస్తే")), len(heads.labels("సమయం"))])
    intents = torch.tensor([0, 1])
    optimizer = torch.optim.Adam(heads.parameters(), lr=0.05)
    first = None
    for _ in range(150):
        loss = heads.ctc_loss(hidden, mask, labels, lengths) + heads.intent_loss(
            hidden, mask, intents
        )
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.1 * first
    assert heads.intent_logits(hidden, mask).argmax(-1).tolist() == [0, 1]
    # the padded steps of the shorter turn do not count
    changed = hidden.clone()
    changed[1, 8:] = 100.0
    assert torch.allclose(heads.intent_logits(changed, mask), heads.intent_logits(hidden, mask))
    # unknown intents are ignored; no intent at all costs nothing
    unknown = torch.tensor([0, -1])
    expected = torch.nn.functional.cross_entropy(heads.intent_logits(hidden, mask)[:1], intents[:1])
    assert torch.isclose(heads.intent_loss(hidden, mask, unknown), expected)
    assert float(heads.intent_loss(hidden, mask, torch.tensor([-1, -1]))) == 0.0

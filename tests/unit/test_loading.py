import json

import pytest
import torch

from agent.responders import make_responder
from models.checkpoints import CheckpointError, save_checkpoint
from models.config import DEMO
from models.loading import build, load, save_models


def test_a_saved_demo_checkpoint_loads_back_into_the_responders(tmp_path):
    models = build(DEMO, seed=1)
    save_models(tmp_path, models)
    loaded = load(tmp_path)
    assert loaded.trained and loaded.config == DEMO
    for name in ("codec", "encoder", "decoder"):
        original, restored = getattr(models, name).state_dict(), getattr(loaded, name).state_dict()
        assert original.keys() == restored.keys()
        assert all(torch.equal(original[k], restored[k]) for k in original)
    answering = make_responder("s2s", tmp_path).models
    assert answering.trained
    assert isinstance(answering.decoder.output, torch.nn.Linear)  # float32 by default
    int8 = make_responder("s2s", tmp_path, decoder_precision="int8").models
    assert not isinstance(int8.decoder.output, torch.nn.Linear)
    assert make_responder("codec", tmp_path).name == "codec"


def test_a_checkpoint_of_other_sizes_is_refused_clearly(tmp_path):
    models = build(DEMO)
    save_checkpoint(tmp_path, {"codec": models.codec}, DEMO)
    with pytest.raises(CheckpointError, match="encoder"):
        load(tmp_path)


def test_unknown_responder_lists_the_known_ones():
    with pytest.raises(ValueError, match="parrot, codec, s2s"):
        make_responder("oracle")


def test_export_to_float16_halves_the_checkpoint_and_loads(tmp_path):
    from signaling.cli import main

    models = build(DEMO, seed=2)
    source, target = tmp_path / "run", tmp_path / "shipped"
    save_models(source, models, extra={"steps": 7})
    assert main(["models", "export", str(source), str(target)]) == 0

    def size(path):
        return sum(f.stat().st_size for f in path.iterdir())

    assert size(target) < 0.55 * size(source)
    assert size(target) < 25 * 2**20  # the demo model's budget
    shipped = load(target)
    weight = shipped.decoder.embeddings.weight
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, models.decoder.embeddings.weight, atol=1e-3, rtol=1e-3)


def test_export_takes_a_codec_whose_decoder_alone_changed(tmp_path):
    from signaling.cli import main

    models = build(DEMO, seed=2)
    source = tmp_path / "run"
    save_models(source, models)
    tuned = build(DEMO, seed=2).codec
    with torch.no_grad():
        for parameter in tuned.decoder.parameters():
            parameter.add_(0.5)
    save_checkpoint(tmp_path / "tuned", {"codec": tuned}, DEMO)
    target = tmp_path / "shipped"
    args = ["models", "export", str(source), str(target), "--dtype", "float32"]
    assert main([*args, "--codec", str(tmp_path / "tuned")]) == 0
    shipped = load(target)
    for name, value in tuned.state_dict().items():
        assert torch.equal(shipped.codec.state_dict()[name], value), name
    assert torch.equal(shipped.decoder.embeddings.weight, models.decoder.embeddings.weight)

    other = build(DEMO, seed=3).codec  # another encoder: other codes
    save_checkpoint(tmp_path / "other", {"codec": other}, DEMO)
    with pytest.raises(ValueError, match="encodes differently"):
        main([*args, "--codec", str(tmp_path / "other")])


def test_the_shipped_demo_model_loads_fits_its_budget_and_has_its_card():
    from models.card import CARD_FILE, EVAL_FILES
    from models.loading import DEMO_CHECKPOINT

    models = load(DEMO_CHECKPOINT)
    assert models.trained and models.config.name == "demo"
    assert sum(f.stat().st_size for f in DEMO_CHECKPOINT.iterdir()) <= 25 * 2**20
    card = (DEMO_CHECKPOINT / CARD_FILE).read_text(encoding="utf-8")
    assert "trained only on synthetic speech" in card
    for name in EVAL_FILES:
        result = json.loads((DEMO_CHECKPOINT / name).read_text())
        assert result["split"] == "test"
    s2s = json.loads((DEMO_CHECKPOINT / "eval-s2s.json").read_text())
    assert f"{100 * s2s['voice_accuracy']:.1f} %" in card

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from models.checkpoints import (
    CheckpointError,
    load_config,
    load_extra,
    load_state,
    save_checkpoint,
)
from models.config import DEMO, PRESETS


def mlp(sizes: tuple[int, ...] = (8, 16, 4), seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False)]
    return nn.Sequential(*layers, nn.LayerNorm(sizes[-1]))


class Tied(nn.Module):
    """An embedding tied to the output layer, plus a non-contiguous buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.out = nn.Linear(6, 10, bias=False)
        self.out.weight = self.embed.weight
        self.register_buffer("table", torch.arange(12.0).reshape(3, 4).T)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(tokens)) + self.table.sum()


def test_round_trip_reproduces_outputs(tmp_path: Path):
    modules = {"encoder": mlp(seed=1), "decoder": mlp((4, 12, 8), seed=2)}
    save_checkpoint(tmp_path, modules, DEMO, extra={"step": 1200, "note": "తెలుగు"})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json",
        "decoder.safetensors",
        "encoder.safetensors",
    ]
    encoder, decoder = mlp(seed=3), mlp((4, 12, 8), seed=4)
    load_state(tmp_path, "encoder", encoder)
    load_state(tmp_path, "decoder", decoder)
    x = torch.randn(5, 8)
    assert torch.equal(encoder(x), modules["encoder"](x))
    assert torch.equal(decoder(encoder(x)), modules["decoder"](modules["encoder"](x)))
    assert load_extra(tmp_path) == {"step": 1200, "note": "తెలుగు"}


def test_shared_and_non_contiguous_tensors_round_trip(tmp_path: Path):
    torch.manual_seed(0)
    model = Tied()
    assert not model.table.is_contiguous()
    save_checkpoint(tmp_path, {"tied": model}, DEMO)
    loaded = Tied()
    load_state(tmp_path, "tied", loaded)
    tokens = torch.tensor([[1, 2, 3]])
    assert torch.equal(loaded(tokens), model(tokens))
    assert loaded.out.weight is loaded.embed.weight
    assert torch.equal(loaded.table, model.table)


@pytest.mark.parametrize("name", list(PRESETS))
def test_config_round_trip(tmp_path: Path, name: str):
    save_checkpoint(tmp_path, {"codec": mlp()}, PRESETS[name])
    assert load_config(tmp_path) == PRESETS[name]
    manifest = json.loads((tmp_path / "config.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["modules"] == ["codec"]
    assert manifest["extra"] == {}


def test_shape_mismatch_is_reported_with_both_shapes(tmp_path: Path):
    save_checkpoint(tmp_path, {"encoder": mlp((8, 16, 4))}, DEMO)
    target = mlp((8, 32, 4))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError) as error:
        load_state(tmp_path, "encoder", target)
    message = str(error.value)
    assert "3 shape mismatches" in message
    assert "0.weight (checkpoint (16, 8), module (32, 8))" in message
    assert "missing" not in message and "unexpected" not in message
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_missing_and_unexpected_keys_are_reported_together(tmp_path: Path):
    save_checkpoint(tmp_path, {"encoder": mlp((8, 16, 4))}, DEMO)
    target = nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 4), nn.Identity(), nn.LayerNorm(4))
    with pytest.raises(CheckpointError) as error:
        load_state(tmp_path, "encoder", target)
    message = str(error.value)
    assert "2 missing keys: 3.weight, 3.bias" in message
    assert "2 unexpected keys: 2.bias, 2.weight" in message
    assert "mismatch" not in message


def test_long_lists_are_shortened(tmp_path: Path):
    save_checkpoint(tmp_path, {"encoder": mlp((4,) * 10)}, DEMO)
    expected = "18 unexpected keys: 1.bias, 1.weight, 2.bias, 2.weight, 3.bias and 13 more"
    with pytest.raises(CheckpointError, match=expected):
        load_state(tmp_path, "encoder", nn.Sequential(nn.Linear(4, 4)))


def test_missing_checkpoint_pieces_are_named(tmp_path: Path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_config(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_state(tmp_path, "codec", mlp())
    save_checkpoint(tmp_path, {"codec": mlp()}, DEMO)
    with pytest.raises(CheckpointError, match="no module 'decoder' .*it has: codec"):
        load_state(tmp_path, "decoder", mlp())
    (tmp_path / "codec.safetensors").unlink()
    with pytest.raises(CheckpointError, match="codec.safetensors is missing"):
        load_state(tmp_path, "codec", mlp())


def test_unreadable_files_give_checkpoint_errors(tmp_path: Path):
    save_checkpoint(tmp_path, {"codec": mlp()}, DEMO)
    (tmp_path / "codec.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_state(tmp_path, "codec", mlp())
    manifest = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_config(tmp_path)


def test_saved_tensors_are_plain_safetensors(tmp_path: Path):
    model = mlp()
    save_checkpoint(tmp_path, {"codec": model}, DEMO)
    stored = load_file(tmp_path / "codec.safetensors")
    assert stored.keys() == model.state_dict().keys()
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_bad_names_and_extra_are_rejected_before_writing(tmp_path: Path):
    with pytest.raises(ValueError, match="plain file name"):
        save_checkpoint(tmp_path / "a", {"../codec": mlp()}, DEMO)
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "b", {"codec": mlp()}, DEMO, extra={"x": object()})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_half_precision_storage_loads_back_into_float32(tmp_path):
    import torch
    from torch import nn

    from models.checkpoints import load_state, save_checkpoint
    from models.config import DEMO

    torch.manual_seed(0)
    module = nn.Linear(64, 64)
    save_checkpoint(tmp_path, {"m": module}, DEMO, storage_dtype=torch.float16)
    size = (tmp_path / "m.safetensors").stat().st_size
    assert size < 64 * 65 * 4 * 0.6  # half the bytes of float32
    restored = nn.Linear(64, 64)
    load_state(tmp_path, "m", restored)
    assert restored.weight.dtype == torch.float32
    torch.testing.assert_close(restored.weight, module.weight, atol=1e-3, rtol=1e-3)

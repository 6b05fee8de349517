import json

from signaling.cli import main


def test_models_info_json_lists_both_presets(capsys):
    assert main(["models", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    seed, demo = info["presets"]["seed"], info["presets"]["demo"]
    assert seed["codec"]["sample_rate"] == 16_000
    assert seed["codec"]["frame_rate_hz"] == 200
    assert seed["codec"]["num_quantizers"] == 8 and seed["codec"]["codebook_size"] == 1024
    assert seed["codec"]["bitrate_bps"] == 16_000
    assert (seed["encoder"]["layers"], seed["encoder"]["dim"], seed["encoder"]["heads"]) == (
        12,
        768,
        12,
    )
    assert (seed["decoder"]["layers"], seed["decoder"]["dim"], seed["decoder"]["heads"]) == (
        12,
        768,
        12,
    )
    for part in ("codec", "encoder", "decoder"):
        assert 0 < demo[part]["params"] < seed[part]["params"]
    assert seed["encoder"]["params"] > 50_000_000  # the design document's 12 x 768

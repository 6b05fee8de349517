"""Where the API token comes from."""

import pytest

from signaling.auth import load_token


def test_token_from_file_or_environment(tmp_path):
    path = tmp_path / "token"
    path.write_text("  abc123  \nignored second line\n")
    assert load_token(path, env={"API_TOKEN": "from-env"}) == "abc123"
    assert load_token(None, env={"API_TOKEN": " from-env\n"}) == "from-env"
    assert load_token(None, env={}) is None
    assert load_token(None, env={"API_TOKEN": "   "}) is None


def test_empty_or_missing_token_file_is_an_error(tmp_path):
    path = tmp_path / "token"
    path.write_text("\n \n")
    with pytest.raises(ValueError):
        load_token(path)
    with pytest.raises(OSError):
        load_token(tmp_path / "missing")

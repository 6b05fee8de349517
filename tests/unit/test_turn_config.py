"""TURN credentials, their configuration, the ICE answer and coturn's rendered config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from signaling.ice import IceConfig
from turn.coturn import CoturnConfig
from turn.credentials import MAX_TTL_S, TurnSettings, mint, read_secret, sign

URLS = ("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp")


def test_username_is_expiry_and_session_and_password_is_its_hmac() -> None:
    cred = mint("north", "abc123", ttl_s=600, now=1_699_999_400.7)
    assert cred.username == "1700000000:abc123"
    assert cred.expires_at == 1_700_000_000
    # computed once with: printf %s 1700000000:abc123 | openssl dgst -sha1 -hmac north -binary
    # | base64
    assert cred.password == "goAllKpbNiqI7pAGyWTsAvjOk/Y="


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")
@pytest.mark.parametrize("secret", ["s3cret", "a much longer shared secret ✓", "x" * 100])
def test_password_matches_openssl(secret: str) -> None:
    cred = mint(secret, "f00d", ttl_s=3600)
    expected = subprocess.run(
        f"printf %s '{cred.username}' | openssl dgst -sha1 -hmac \"$S\" -binary | base64",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
        env={"S": secret, "PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    assert cred.password == expected


@pytest.mark.parametrize("ttl", [0, -1, MAX_TTL_S + 1])
def test_ttl_outside_bounds_is_refused(ttl: int) -> None:
    with pytest.raises(ValueError, match="TTL"):
        mint("s", "id", ttl_s=ttl)
    with pytest.raises(ValueError, match="TTL"):
        TurnSettings(urls=URLS, secret="s", ttl_s=ttl)


def test_ttl_bounds_and_default() -> None:
    assert mint("s", "id", ttl_s=1, now=100).expires_at == 101
    assert mint("s", "id", ttl_s=MAX_TTL_S, now=0).expires_at == MAX_TTL_S
    assert TurnSettings(urls=URLS, secret="s").ttl_s == 3600


def test_session_ids_with_the_separator_are_refused() -> None:
    with pytest.raises(ValueError):
        mint("s", "a:b")
    with pytest.raises(ValueError):
        mint("", "a")


def test_settings_from_the_environment() -> None:
    env = {"TURN_URLS": f" {URLS[0]} ,{URLS[1]},", "TURN_SECRET": "env-secret"}
    settings = TurnSettings.from_env(env)
    assert settings == TurnSettings(urls=URLS, secret="env-secret", ttl_s=3600)
    assert TurnSettings.from_env({**env, "TURN_TTL_S": "120"}).ttl_s == 120
    assert TurnSettings.from_env({"TURN_SECRET": "x"}) is None  # no URLs, no TURN


def test_arguments_win_over_the_environment(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("file-secret\n")
    env = {"TURN_URLS": URLS[0], "TURN_SECRET": "env-secret"}
    settings = TurnSettings.from_env(env, urls=(URLS[1],), secret_file=str(secret_file), ttl_s=60)
    assert settings == TurnSettings(urls=(URLS[1],), secret="file-secret", ttl_s=60)


def test_secret_file_from_the_environment_beats_the_plain_secret(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("  from-file \n")
    env = {"TURN_SECRET_FILE": str(secret_file), "TURN_SECRET": "plain"}
    assert read_secret(env) == "from-file"
    assert read_secret({"TURN_SECRET": "plain"}) == "plain"
    assert read_secret({}) is None
    secret_file.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_secret(env)
    with pytest.raises(FileNotFoundError):
        read_secret({"TURN_SECRET_FILE": str(tmp_path / "missing")})


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        TurnSettings.from_env({"TURN_URLS": URLS[0]})
    with pytest.raises(ValueError, match="turn: or turns:"):
        TurnSettings(urls=("stun:stun.example.org",), secret="s")


def test_ice_config_for_the_page_mints_fresh_credentials() -> None:
    ice = IceConfig(urls=("stun:stun.example.org:3478",), turn=TurnSettings(URLS, "s", 600))
    body = ice.for_client()
    stun, turn = body["iceServers"]
    assert stun == {"urls": ["stun:stun.example.org:3478"]}
    assert turn["urls"] == list(URLS)
    expiry, session = turn["username"].split(":")
    assert len(session) == 32 and int(expiry) > 0
    assert turn["credential"] == sign("s", turn["username"])
    assert ice.for_client()["iceServers"][1]["username"] != turn["username"]
    assert IceConfig().for_client() == {"iceServers": []}


def test_ice_config_for_the_agent() -> None:
    settings = TurnSettings(URLS, "s", 600)
    assert IceConfig(turn=settings).for_agent("sess").iceServers == []
    (server,) = IceConfig(turn=settings, agent_turn=True).for_agent("sess").iceServers
    assert server.urls == [URLS[0]]  # aiortc gets the plain turn: URL
    assert server.username.endswith(":sess")
    assert server.credential == sign("s", server.username)


def render(config: CoturnConfig, tmp_path: Path) -> list[str]:
    text = config.render("the-secret", tmp_path, tmp_path / "c.pem", tmp_path / "k.pem")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_rendered_coturn_config(tmp_path: Path) -> None:
    lines = render(
        CoturnConfig(
            realm="agent.example.org",
            listening_ips=("203.0.113.5",),
            port=3479,
            tls_port=5350,
            external_ip="198.51.100.7/10.0.0.5",
            min_port=50000,
            max_port=50099,
            allowed_peers=("10.0.0.5",),
            user_quota=4,
            total_quota=400,
        ),
        tmp_path,
    )
    for line in [
        "use-auth-secret",
        "static-auth-secret=the-secret",
        "realm=agent.example.org",
        "listening-ip=203.0.113.5",
        "listening-port=3479",
        "tls-listening-port=5350",
        f"cert={tmp_path / 'c.pem'}",
        f"pkey={tmp_path / 'k.pem'}",
        "external-ip=198.51.100.7/10.0.0.5",
        "min-port=50000",
        "max-port=50099",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=172.16.0.0-172.31.255.255",
        "denied-peer-ip=192.168.0.0-192.168.255.255",
        "denied-peer-ip=169.254.0.0-169.254.255.255",
        "denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "denied-peer-ip=127.0.0.0-127.255.255.255",
        "allowed-peer-ip=10.0.0.5",
        "user-quota=4",
        "total-quota=400",
        "no-cli",
        "fingerprint",
        f"log-file={tmp_path / 'turnserver.log'}",
    ]:
        assert line in lines, line
    assert "allow-loopback-peers" not in lines
    assert not any("$" in line for line in lines)


def test_test_mode_allows_loopback_only(tmp_path: Path) -> None:
    lines = render(CoturnConfig(test_mode=True), tmp_path)
    assert "allow-loopback-peers" in lines
    assert "denied-peer-ip=127.0.0.0-127.255.255.255" not in lines
    assert "denied-peer-ip=10.0.0.0-10.255.255.255" in lines
    assert not any(line.startswith("listening-ip") for line in lines)  # all interfaces


def test_bad_coturn_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        CoturnConfig(min_port=50000, max_port=40000)
    with pytest.raises(ValueError):
        CoturnConfig(port=3478, tls_port=3478)
    with pytest.raises(ValueError):
        render_secret = CoturnConfig().render
        render_secret("two\nlines", tmp_path, tmp_path / "c", tmp_path / "k")


def test_client_urls() -> None:
    assert CoturnConfig(port=3478, tls_port=5349).urls("turn.example.org") == (
        "turn:turn.example.org:3478?transport=udp",
        "turn:turn.example.org:3478?transport=tcp",
        "turns:turn.example.org:5349?transport=tcp",
    )


def test_serve_reads_turn_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    from signaling import cli

    monkeypatch.delenv("TURN_URLS", raising=False)
    monkeypatch.setenv("TURN_SECRET", "")
    assert cli.main(["serve", "--turn-url", URLS[0], "--log-level", "error"]) == 2

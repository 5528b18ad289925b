"""Key files and the public text form ``ed25519:<base64>``."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from horus.errors import ConfigError
from horus.trust import keys


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_key_file(path: Path, text: str, file_mode: int = 0o600) -> Path:
    path.write_text(text, encoding="ascii")
    os.chmod(path, file_mode)
    return path


def load_refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        keys.load(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


# -- generate -----------------------------------------------------------------------------


def test_generate_writes_a_file_only_its_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "local.key"
    keys.generate(path)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_generate_writes_one_private_line_that_load_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "local.key"
    key = keys.generate(path)
    text = path.read_text(encoding="ascii")
    assert text.startswith(keys.PRIVATE_PREFIX)
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert bytes(keys.load(path)) == bytes(key)


def test_generate_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    keys.generate(tmp_path / "local.key")
    assert [p.name for p in tmp_path.iterdir()] == ["local.key"]


def test_generate_makes_a_new_key_each_time(tmp_path: Path) -> None:
    first = keys.generate(tmp_path / "a.key")
    second = keys.generate(tmp_path / "b.key")
    assert keys.public_text(first) != keys.public_text(second)


def test_the_public_text_of_a_generated_key_round_trips(tmp_path: Path) -> None:
    key = keys.generate(tmp_path / "local.key")
    text = keys.public_text(key)
    assert text.startswith("ed25519:")
    assert keys.parse_public(text) == key.verify_key
    assert keys.public_text(keys.parse_public(text)) == text
    assert keys.public_text(key.verify_key) == text


def test_generate_refuses_to_overwrite_a_key_without_force(tmp_path: Path) -> None:
    path = tmp_path / "local.key"
    key = keys.generate(path)
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        keys.generate(path)
    message = str(info.value)
    assert str(path) in message
    assert "--force" in message
    assert "\n" not in message
    assert path.read_bytes() == before
    assert bytes(keys.load(path)) == bytes(key)


def test_generate_with_force_replaces_the_key(tmp_path: Path) -> None:
    path = tmp_path / "local.key"
    old = keys.generate(path)
    new = keys.generate(path, force=True)
    assert bytes(new) != bytes(old)
    assert bytes(keys.load(path)) == bytes(new)
    assert mode(path) == 0o600


# -- load ---------------------------------------------------------------------------------


@pytest.mark.parametrize("file_mode", [0o640, 0o604, 0o644, 0o660, 0o610, 0o602])
def test_load_refuses_a_key_others_can_use(tmp_path: Path, file_mode: int) -> None:
    path = tmp_path / "local.key"
    keys.generate(path)
    os.chmod(path, file_mode)
    message = load_refusal(path)
    assert f"chmod 600 {path}" in message


def test_load_accepts_a_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "local.key"
    key = keys.generate(path)
    os.chmod(path, 0o400)
    assert bytes(keys.load(path)) == bytes(key)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("hello world\n", id="plain text"),
        pytest.param("ed25519:" + base64.b64encode(bytes(32)).decode(), id="a public key"),
        pytest.param("", id="empty"),
    ],
)
def test_load_refuses_a_file_that_is_not_a_private_key(tmp_path: Path, text: str) -> None:
    path = write_key_file(tmp_path / "local.key", text)
    message = load_refusal(path)
    assert "not a Horus private key" in message
    assert "horus keys generate" in message


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("not base64!!", id="not base64"),
        pytest.param(base64.b64encode(bytes(32)).decode()[:-3], id="truncated"),
        pytest.param(base64.b64encode(bytes(16)).decode(), id="16 bytes"),
        pytest.param(base64.b64encode(bytes(33)).decode(), id="33 bytes"),
    ],
)
def test_load_refuses_a_damaged_key(tmp_path: Path, body: str) -> None:
    path = write_key_file(tmp_path / "local.key", keys.PRIVATE_PREFIX + body + "\n")
    message = load_refusal(path)
    assert "damaged" in message
    assert "horus keys generate" in message


def test_load_refuses_a_missing_file_saying_how_to_make_one(tmp_path: Path) -> None:
    path = tmp_path / "missing.key"
    message = load_refusal(path)
    assert f"horus keys generate --out {path}" in message


def test_load_refuses_a_file_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "local.key"
    path.write_bytes(b"\xff\xfe binary")
    os.chmod(path, 0o600)
    assert "cannot read key" in load_refusal(path)


def test_load_reads_a_key_written_by_hand(tmp_path: Path) -> None:
    seed = bytes(range(32))
    text = keys.PRIVATE_PREFIX + base64.b64encode(seed).decode() + "\n"
    path = write_key_file(tmp_path / "hand.key", text)
    assert bytes(keys.load(path)) == seed
    assert keys.public_text(keys.load(path)) == keys.public_text(SigningKey(seed))


def test_load_optional_is_none_without_a_file_and_the_key_with_one(tmp_path: Path) -> None:
    path = tmp_path / "local.key"
    assert keys.load_optional(path) is None
    key = keys.generate(path)
    loaded = keys.load_optional(path)
    assert loaded is not None
    assert bytes(loaded) == bytes(key)


def test_load_optional_still_refuses_a_bad_file(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "local.key", "junk", 0o644)
    with pytest.raises(ConfigError):
        keys.load_optional(path)


# -- parse_public -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        pytest.param(
            "ssh-ed25519:" + base64.b64encode(bytes(32)).decode(), "does not start", id="prefix"
        ),
        pytest.param(base64.b64encode(bytes(32)).decode(), "does not start", id="no prefix"),
        pytest.param(
            "ED25519:" + base64.b64encode(bytes(32)).decode(), "does not start", id="case"
        ),
        pytest.param("ed25519:" + base64.b64encode(bytes(31)).decode(), "31 bytes", id="31 bytes"),
        pytest.param("ed25519:" + base64.b64encode(bytes(33)).decode(), "33 bytes", id="33 bytes"),
        pytest.param("ed25519:", "0 bytes", id="empty"),
        pytest.param("ed25519:not*base64", "not base64", id="not base64"),
        pytest.param(
            "ed25519:" + base64.b64encode(bytes(32)).decode() + "\n", "not base64", id="newline"
        ),
        pytest.param(
            keys.PRIVATE_PREFIX + base64.b64encode(bytes(32)).decode(),
            "does not start",
            id="a private key",
        ),
    ],
)
def test_parse_public_refuses_what_is_not_an_ed25519_public_key(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as info:
        keys.parse_public(text)
    assert "\n" not in str(info.value)

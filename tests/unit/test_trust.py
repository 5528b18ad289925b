"""The gate every job passes (signatures, expiry, policy), signed cancels, and `horus init`."""

from __future__ import annotations

import base64
import dataclasses
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from horus import config
from horus.config import Settings
from horus.errors import ConfigError, NotAllowed
from horus.job import Job, Signature, parse_job
from horus.trust import keys
from horus.trust.bootstrap import init
from horus.trust.gate import Gate, signing_keys
from horus.trust.policy import parse
from horus.trust.signing import CancelRequest, sign

STRANGER = SigningKey(bytes([21]) * 32)
CANCELLER = SigningKey(bytes([22]) * 32)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return dataclasses.replace(
        config.load(),
        key_path=tmp_path / "keys" / "local.key",
        worker_key_path=tmp_path / "keys" / "worker.key",
        policy_path=tmp_path / "policy.toml",
        retention_seconds=7 * 24 * 3600,
    )


@pytest.fixture
def local(settings: Settings) -> SigningKey:
    """The local key, after `horus init` made it and the starter policy."""
    init(settings)
    return keys.load(settings.key_path)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def make_job(**fields: object) -> Job:
    return parse_job({"runner_id": "shell", "payload": "echo hi", **fields})


def signed(*signers: SigningKey, **fields: object) -> Job:
    job = make_job(**fields)
    for key in signers:
        job = sign(job, key, 3600)
    return job


def refusal(settings: Settings, job: Job, policy_required: bool = True) -> str:
    with pytest.raises(NotAllowed) as info:
        Gate(settings).judge(job, policy_required=policy_required)
    message = str(info.value)
    assert "\n" not in message
    return message


def write_policy(settings: Settings, local: SigningKey) -> None:
    """A policy where the local key may run shell jobs and CANCELLER's circle may cancel."""
    settings.policy_path.write_text(
        f"""
cancellers = ["ops"]

[circles]
ops = ["{keys.public_text(CANCELLER)}"]

[[grants]]
who = ["{keys.public_text(local)}"]
runners = ["shell"]
""",
        encoding="utf-8",
    )


# -- init ---------------------------------------------------------------------------------


def test_init_makes_both_keys_and_a_policy(settings: Settings) -> None:
    made = init(settings)
    assert len(made) == 3
    assert str(settings.key_path) in made[0]
    assert str(settings.worker_key_path) in made[1]
    assert str(settings.policy_path) in made[2]
    for path in (settings.key_path, settings.worker_key_path):
        assert mode(path) == 0o600
    local = keys.load(settings.key_path)
    worker = keys.load(settings.worker_key_path)
    assert bytes(local) != bytes(worker)
    assert keys.public_text(local) in made[0]
    assert keys.public_text(local) in made[2]


def test_the_policy_init_makes_trusts_the_local_key_and_seals_to_the_worker_key(
    settings: Settings,
) -> None:
    init(settings)
    local = keys.public_text(keys.load(settings.key_path))
    worker = keys.public_text(keys.load(settings.worker_key_path))
    policy = parse(settings.policy_path.read_text(encoding="utf-8"), "init")
    assert policy.secrets_key == worker
    assert policy.members(policy.cancellers) == {local}
    policy.allows(make_job(runner_id="python", context_id="prod"), (local,))


def test_init_a_second_time_makes_nothing_and_replaces_nothing(settings: Settings) -> None:
    init(settings)
    paths = (settings.key_path, settings.worker_key_path, settings.policy_path)
    before = [p.read_bytes() for p in paths]
    assert init(settings) == []
    assert [p.read_bytes() for p in paths] == before


def test_init_keeps_an_existing_key_and_makes_only_what_is_missing(settings: Settings) -> None:
    mine = keys.generate(settings.key_path)
    made = init(settings)
    assert len(made) == 2
    assert bytes(keys.load(settings.key_path)) == bytes(mine)
    assert keys.public_text(mine) in settings.policy_path.read_text(encoding="utf-8")


def test_init_never_replaces_an_existing_policy(settings: Settings) -> None:
    settings.policy_path.write_text("# mine\n", encoding="utf-8")
    made = init(settings)
    assert len(made) == 2
    assert settings.policy_path.read_text(encoding="utf-8") == "# mine\n"


# -- judge --------------------------------------------------------------------------------


def test_a_job_signed_by_the_local_key_passes_the_starter_policy(
    settings: Settings, local: SigningKey
) -> None:
    gate = Gate(settings)
    decision = gate.judge(signed(local, context_id="prod"))
    assert decision.signers == (keys.public_text(local),)
    assert decision.grant is gate.policy().grants[0]


def test_a_job_signed_by_an_unknown_key_is_refused(settings: Settings, local: SigningKey) -> None:
    assert "no grant lets key" in refusal(settings, signed(STRANGER))


def test_an_unsigned_job_is_refused_by_the_starter_policy(
    settings: Settings, local: SigningKey
) -> None:
    assert "sign it" in refusal(settings, make_job())


def test_a_changed_job_is_refused_before_the_policy_is_asked(
    settings: Settings, local: SigningKey
) -> None:
    job = signed(local).model_copy(update={"payload": "rm -rf ~"})
    assert "does not verify" in refusal(settings, job)


def test_an_expired_job_is_refused(settings: Settings, local: SigningKey) -> None:
    created = datetime.now(UTC) - timedelta(hours=2)
    assert "expired" in refusal(settings, signed(local, created_at=created))


def test_without_a_policy_file_every_job_is_refused(settings: Settings) -> None:
    key = keys.generate(settings.key_path)
    message = refusal(settings, signed(key))
    assert str(settings.policy_path) in message
    assert "horus init" in message


def test_a_broken_policy_file_refuses_every_job(settings: Settings, local: SigningKey) -> None:
    settings.policy_path.write_text("grants = [", encoding="utf-8")
    message = refusal(settings, signed(local))
    assert f"policy {settings.policy_path} is not valid TOML" in message


def test_without_a_policy_file_the_client_checks_only_signatures(settings: Settings) -> None:
    key = keys.generate(settings.key_path)
    gate = Gate(settings)
    decision = gate.judge(signed(STRANGER), policy_required=False)
    assert decision.signers == (keys.public_text(STRANGER),)
    assert decision.grant is None
    assert gate.judge(make_job(), policy_required=False).signers == ()
    changed = signed(key).model_copy(update={"timeout": 999})
    assert "does not verify" in refusal(settings, changed, policy_required=False)


def test_with_a_policy_file_the_client_checks_the_policy_too(
    settings: Settings, local: SigningKey
) -> None:
    assert "no grant lets key" in refusal(settings, signed(STRANGER), policy_required=False)


def test_the_gate_reads_the_policy_again_when_it_changes(
    settings: Settings, local: SigningKey
) -> None:
    gate = Gate(settings)
    gate.judge(signed(local, runner_id="python"))
    write_policy(settings, local)  # shell only
    with pytest.raises(NotAllowed, match="runner 'python'"):
        gate.judge(signed(local, runner_id="python"))


# -- judge_cancel -------------------------------------------------------------------------


def test_the_submitter_may_cancel(settings: Settings, local: SigningKey) -> None:
    write_policy(settings, local)
    job = signed(local)
    request = CancelRequest.make(job.id, [local])
    assert Gate(settings).judge_cancel(job, request) == (keys.public_text(local),)


def test_any_signer_of_a_job_may_cancel_it(settings: Settings, local: SigningKey) -> None:
    write_policy(settings, local)
    job = signed(local, STRANGER)
    request = CancelRequest.make(job.id, [STRANGER])
    assert Gate(settings).judge_cancel(job, request) == (keys.public_text(STRANGER),)


def test_a_canceller_the_policy_names_may_cancel(settings: Settings, local: SigningKey) -> None:
    write_policy(settings, local)
    job = signed(local)
    request = CancelRequest.make(job.id, [CANCELLER])
    assert Gate(settings).judge_cancel(job, request) == (keys.public_text(CANCELLER),)


def test_a_stranger_may_not_cancel(settings: Settings, local: SigningKey) -> None:
    write_policy(settings, local)
    job = signed(local)
    for request in (CancelRequest.make(job.id, [STRANGER]), CancelRequest.make(job.id, [])):
        with pytest.raises(NotAllowed) as info:
            Gate(settings).judge_cancel(job, request)
        message = str(info.value)
        assert f"cancelling job {job.id} needs a signature by its submitter" in message
        assert "--key" in message


def test_a_stranger_may_not_cancel_by_adding_a_forged_submitter_signature(
    settings: Settings, local: SigningKey
) -> None:
    write_policy(settings, local)
    job = signed(local)
    request = CancelRequest.make(job.id, [STRANGER])
    forged = request.signatures[0].model_copy(update={"public_key": keys.public_text(local)})
    request = request.model_copy(update={"signatures": (forged,)})
    with pytest.raises(NotAllowed, match="does not verify"):
        Gate(settings).judge_cancel(job, request)


def test_a_cancel_request_for_another_job_is_refused(settings: Settings, local: SigningKey) -> None:
    job = signed(local)
    request = CancelRequest.make("some-other-job", [local])
    with pytest.raises(NotAllowed, match=f"is for job some-other-job, not {job.id}"):
        Gate(settings).judge_cancel(job, request)


def test_an_unsigned_job_may_be_cancelled_without_a_signature(settings: Settings) -> None:
    job = make_job()
    assert Gate(settings).judge_cancel(job, CancelRequest.make(job.id, [])) == ()


def test_without_a_policy_file_the_client_lets_only_the_submitter_cancel(
    settings: Settings,
) -> None:
    key = keys.generate(settings.key_path)
    job = signed(key)
    gate = Gate(settings)
    own = CancelRequest.make(job.id, [key])
    assert gate.judge_cancel(job, own, policy_required=False) == (keys.public_text(key),)
    other = CancelRequest.make(job.id, [CANCELLER])
    with pytest.raises(NotAllowed, match="needs a signature by its submitter"):
        gate.judge_cancel(job, other, policy_required=False)


def test_without_a_policy_file_the_worker_refuses_a_canceller(settings: Settings) -> None:
    key = keys.generate(settings.key_path)
    job = signed(key)
    with pytest.raises(NotAllowed, match="horus init"):
        Gate(settings).judge_cancel(job, CancelRequest.make(job.id, [CANCELLER]))


def test_a_cancel_request_made_before_the_job_existed_is_refused(
    settings: Settings, local: SigningKey
) -> None:
    write_policy(settings, local)
    # signed yesterday for yesterday's job "nightly", kept by whoever saw it in the store
    yesterday = CancelRequest(job_id="nightly", requested_at=datetime.now(UTC) - timedelta(days=1))
    raw = base64.b64encode(local.sign(yesterday.signed_bytes()).signature).decode()
    old = yesterday.model_copy(
        update={"signatures": (Signature(public_key=keys.public_text(local), signature=raw),)}
    )
    assert old.signers() == (keys.public_text(local),)
    today = signed(local, id="nightly")
    with pytest.raises(NotAllowed):
        Gate(settings).judge_cancel(today, old)


# -- keys for secrets and signing ---------------------------------------------------------


def test_secrets_key_comes_from_the_policy(
    settings: Settings, local: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HORUS_SECRETS_KEY", keys.public_text(STRANGER))
    worker = keys.public_text(keys.load(settings.worker_key_path))
    assert Gate(settings).secrets_key() == worker


def test_secrets_key_comes_from_the_environment_without_one_in_the_policy(
    settings: Settings, local: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_policy(settings, local)  # has no secrets_key
    monkeypatch.setenv("HORUS_SECRETS_KEY", keys.public_text(STRANGER))
    assert Gate(settings).secrets_key() == keys.public_text(STRANGER)


def test_secrets_key_comes_from_the_environment_without_a_policy(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HORUS_SECRETS_KEY", keys.public_text(STRANGER))
    assert Gate(settings).secrets_key() == keys.public_text(STRANGER)


def test_a_bad_secrets_key_in_the_environment_is_a_config_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HORUS_SECRETS_KEY", "ed25519:AAAA")
    with pytest.raises(ConfigError, match=r"HORUS_SECRETS_KEY: .*; give ed25519:<base64>"):
        Gate(settings).secrets_key()


def test_no_secrets_key_anywhere_is_a_config_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HORUS_SECRETS_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        Gate(settings).secrets_key()
    message = str(info.value)
    assert "no key to seal secrets to" in message
    assert str(settings.policy_path) in message
    assert "HORUS_SECRETS_KEY" in message
    assert "\n" not in message


def test_worker_key_is_the_key_in_the_worker_key_file(
    settings: Settings, local: SigningKey
) -> None:
    worker = keys.load(settings.worker_key_path)
    assert bytes(Gate(settings).worker_key()) == bytes(worker)


def test_signing_keys_are_the_given_keys_else_the_local_key_else_none(
    settings: Settings, tmp_path: Path
) -> None:
    assert signing_keys(None, settings) == []
    local = keys.generate(settings.key_path)
    assert [bytes(k) for k in signing_keys(None, settings)] == [bytes(local)]
    assert signing_keys((), settings) == []  # asked for no key: unsigned, local key or not
    other = keys.generate(tmp_path / "other.key")
    given = signing_keys((tmp_path / "other.key", str(tmp_path / "other.key"), local), settings)
    assert [bytes(k) for k in given] == [bytes(other), bytes(other), bytes(local)]

"""Trust with real workers: forged, tampered, replayed, expired, unsigned, unauthorized and
malformed jobs never run and leave a refusal in their record and in the audit; secrets stay
sealed; cancels need the right signature; the policy reloads without a restart.

Jobs that an honest client would refuse are sent around it, as an attacker with access to
the broker would: recorded with ``Store.create`` and published straight to the queue.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from horus import config
from horus.client import Client
from horus.errors import JobNotFound, NotAllowed
from horus.job import Job, JobStatus
from horus.messaging.app import make_app
from horus.routing import queue_for, task_for
from horus.store import keys as store_keys
from horus.store.audit import Audit, Entry
from horus.trust import keys, signing
from horus.trust.signing import CancelRequest
from tests.harness import (
    REPO,
    WorkerProcess,
    attach_cancel,
    end_group,
    horus_cmd,
    run_horus,
    wait_until,
)

app = make_app(config.load())
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    """A key the policy does not know."""
    return keys.generate(tmp_path_factory.mktemp("keys") / "stranger.key")


@pytest.fixture
def policy_text() -> Iterator[Path]:
    """The session's policy file, put back as it was after the test."""
    path = config.load().policy_path
    original = path.read_text()
    yield path
    path.write_text(original)


def canary_job(tmp_path: Path, runner: str = "shell", **fields: object) -> tuple[Job, Path]:
    """A job whose only trace, if it ever runs, is a file."""
    canary = tmp_path / f"ran-{time.time_ns()}"
    return Job.model_validate({"runner_id": runner, "payload": f"touch {canary}", **fields}), canary


def sneak(client: Client, job: Job | str, job_id: str, record: Job | None = None) -> None:
    """Record ``record`` (if given) and publish ``job`` straight to the shell queue."""
    if record is not None:
        assert client.lifecycle.create(record)
    text = job if isinstance(job, str) else job.model_dump_json()
    app.send_task(
        task_for("shell"),
        args=[text],
        task_id=job_id,
        queue=queue_for("shell"),
        routing_key=queue_for("shell"),
    )


def refusal(client: Client, job_id: str, action: str = "run") -> Entry:
    """Wait for the worker's refusal of ``job_id`` in the audit and return it."""
    audit = Audit(client.store)

    def found() -> Entry | None:
        return next(
            (e for e in audit.entries(job_id) if e.decision == "refused" and e.action == action),
            None,
        )

    assert wait_until(found, timeout=15), f"no refusal of {job_id} in the audit"
    entry = found()
    assert entry is not None
    return entry


def never_runs(
    client: Client, sent: Job | str, job_id: str, record: Job, canary: Path, reason: str
) -> Entry:
    """Record ``record``, publish ``sent`` around the client, and check the worker refused
    it for ``reason`` without running it (its canary stays absent)."""
    sneak(client, sent, job_id, record=record)
    entry = refusal(client, job_id)
    assert reason in entry.reason
    assert not canary.exists()
    return entry


def assert_refused_in_record(client: Client, job_id: str, words: str) -> None:
    """The job's record says failed, with a one-line reason containing ``words``."""
    assert wait_until(lambda: client.get_job_status(job_id) is JobStatus.FAILED)
    result = client.get_job_result(job_id)
    assert result is not None
    assert result.error is not None
    assert words in result.error
    assert "\n" not in result.error


def signed(client: Client, job: Job) -> Job:
    """``job`` signed with the session's trusted local key."""
    return client.prepare(job)


# -- the refusals the issue names ------------------------------------------------------


def test_a_tampered_job_never_runs_and_says_why(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    job, canary = canary_job(tmp_path)
    good = signed(client, job)
    tampered = good.model_copy(update={"payload": f"touch {canary}; echo owned"})
    entry = never_runs(client, tampered, good.id, tampered, canary, "does not verify")
    assert entry.signers
    assert_refused_in_record(client, good.id, "changed after signing")


def test_the_client_refuses_a_job_tampered_after_its_own_key_signed_it(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    """The client does not verify again the signatures it has just made, but one it was
    given (even by its own key: a job signed earlier, then changed) it verifies: the
    tampered job is refused at submission, one at a time and in a batch, and nothing of it
    is recorded."""
    good = signed(client, Job.new("shell", "echo signed"))
    tampered = good.model_copy(update={"payload": "echo changed after signing"})
    with pytest.raises(NotAllowed, match="does not verify"):
        client.submit(tampered)
    fresh = Job.new("shell", "true")
    done = client.submit_many([tampered, fresh])
    assert done[0].id is None
    assert "does not verify" in (done[0].error or "")
    assert done[1].id == fresh.id
    with pytest.raises(JobNotFound):
        client.get_job(tampered.id)
    assert client.wait(fresh.id, 30).status is JobStatus.COMPLETED


def test_a_forged_signature_never_runs(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path, stranger: SigningKey
) -> None:
    job, canary = canary_job(tmp_path)
    by_stranger = signing.sign(job, stranger)
    trusted = signed(client, job).signatures[0]
    forged = by_stranger.model_copy(
        update={
            "signatures": (
                by_stranger.signatures[0].model_copy(update={"public_key": trusted.public_key}),
            )
        }
    )
    never_runs(client, forged, job.id, forged, canary, "forged")
    assert_refused_in_record(client, job.id, "does not verify")


def test_a_replayed_job_runs_once(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    job = signed(client, Job.new("shell", f"echo run >> {ledger}"))
    assert client.lifecycle.create(job)
    client.start_job(job.id)
    assert client.wait(job.id, timeout=30).status is JobStatus.COMPLETED
    sneak(client, job, job.id)  # the very same signed message, again
    entry = refusal(client, job.id)
    assert entry.reason.startswith("replay: the job already ended completed")
    assert ledger.read_text() == "run\n"
    assert client.get_job_status(job.id) is JobStatus.COMPLETED


def test_an_expired_job_never_runs(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    job, canary = canary_job(tmp_path, created_at=datetime.now(UTC) - timedelta(seconds=10))
    expired = Client(validity=5).prepare(job)
    with pytest.raises(NotAllowed, match="expired"):
        client.check(expired)  # an honest client stops it at submission
    never_runs(client, expired, expired.id, expired, canary, "expired")
    assert_refused_in_record(client, expired.id, "sign and submit the job again")


def test_an_unsigned_job_is_refused_by_default(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    job, canary = canary_job(tmp_path)
    with pytest.raises(NotAllowed, match="unsigned"):
        Client(keys=[]).submit(job)
    assert client.list_jobs(limit=1000)
    assert job.id not in {r.job.id for r in client.list_jobs(limit=1000)}
    entry = never_runs(client, job, job.id, job, canary, "unsigned")
    assert entry.signers == []
    assert_refused_in_record(client, job.id, "sign it")


def test_a_key_the_policy_does_not_name_is_refused(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path, stranger: SigningKey
) -> None:
    job, canary = canary_job(tmp_path)
    with pytest.raises(NotAllowed, match="no grant lets key"):
        Client(keys=[stranger]).submit(job)
    job = signing.sign(job, stranger)
    entry = never_runs(client, job, job.id, job, canary, "no grant lets key")
    assert entry.signers == [keys.public_text(stranger)]
    assert_refused_in_record(client, job.id, "no grant lets key")


def test_a_malformed_message_for_a_real_record_leaves_that_job_pending(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    """Anyone who can publish could otherwise fail another user's job: a message that does
    not carry the recorded job changes nothing of its record."""
    job, canary = canary_job(tmp_path)
    good = signed(client, job)
    never_runs(client, '{"runner_id": "shell", "payload": ', good.id, good, canary, "is not JSON")
    assert client.get_job_status(good.id) is JobStatus.PENDING


def test_hijacking_env_names_need_a_grant_that_names_them(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path, policy_text: Path
) -> None:
    job, canary = canary_job(tmp_path, env_vars={"BASH_ENV": str(tmp_path / "evil.sh")})
    with pytest.raises(NotAllowed, match="BASH_ENV can hijack"):
        client.submit(job)
    bad = signed(client, job)
    never_runs(client, bad, bad.id, bad, canary, "hijack")
    policy_text.write_text(
        policy_text.read_text().replace(
            'contexts = ["*"]\n', 'contexts = ["*"]\nenv = ["*", "BASH_ENV"]\n', 1
        )
    )
    allowed, _ = canary_job(tmp_path, env_vars={"BASH_ENV": "/dev/null"})
    assert client.run_job_and_await_result(allowed, timeout=30).status is JobStatus.COMPLETED


# -- policy: reload, unsigned grants, several signatures --------------------------------


def test_the_policy_reloads_without_restarting_workers(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path, policy_text: Path
) -> None:
    pid = workers["shell"].proc and workers["shell"].proc.pid
    original = policy_text.read_text()
    policy_text.write_text(original.replace('runners = ["*"]', 'runners = ["python"]', 1))
    job, canary = canary_job(tmp_path)
    job = signed(client, job)
    never_runs(client, job, job.id, job, canary, "use runner 'shell'")
    policy_text.write_text(original)
    again, canary = canary_job(tmp_path)
    assert client.run_job_and_await_result(again, timeout=30).status is JobStatus.COMPLETED
    assert canary.exists()
    assert workers["shell"].proc is not None
    assert workers["shell"].proc.pid == pid


def test_a_grant_can_admit_unsigned_jobs_for_one_runner_and_context(
    client: Client, workers: dict[str, WorkerProcess], policy_text: Path
) -> None:
    policy_text.write_text(
        policy_text.read_text()
        + '\n[[grants]]\nunsigned = true\nrunners = ["shell"]\ncontexts = ["sandbox"]\n'
        + "max_timeout = 30\n"
    )
    anonymous = Client(keys=[])
    ok = anonymous.run_job_and_await_result(
        Job.builder()
        .runner_id("shell")
        .payload("echo hi")
        .context_id("sandbox")
        .timeout(5)
        .build(),
        timeout=30,
    )
    assert (ok.status, ok.output) == (JobStatus.COMPLETED, "hi\n")
    with pytest.raises(NotAllowed, match="unsigned"):
        anonymous.submit(Job.new("shell", "echo hi"))
    with pytest.raises(NotAllowed, match="over the 30 s"):
        anonymous.submit(
            Job.builder().runner_id("shell").payload("true").context_id("sandbox").build()
        )


def test_a_grant_can_require_two_signatures(
    client: Client, workers: dict[str, WorkerProcess], policy_text: Path, tmp_path: Path
) -> None:
    alice, bob = (keys.generate(tmp_path / f"{n}.key") for n in ("alice", "bob"))
    members = ", ".join(f'"{keys.public_text(k)}"' for k in (alice, bob))
    text = policy_text.read_text().replace("[circles]\n", f"[circles]\npair = [{members}]\n")
    policy_text.write_text(
        text + '\n[[grants]]\nwho = ["pair"]\nrunners = ["shell"]\ncontexts = ["prod"]\n'
        "signatures = 2\n"
    )
    job = Job.builder().runner_id("shell").payload("echo two").context_id("prod").build()
    with pytest.raises(NotAllowed, match="needs 2 signatures"):
        Client(keys=[alice]).submit(job)
    result = Client(keys=[alice, bob]).run_job_and_await_result(job, timeout=30)
    assert (result.status, result.output) == (JobStatus.COMPLETED, "two\n")
    accepted = [e for e in Audit(client.store).entries(job.id) if e.decision == "accepted"]
    assert sorted(accepted[0].signers) == sorted(keys.public_text(k) for k in (alice, bob))


# -- secrets ---------------------------------------------------------------------------


def test_secrets_reach_only_the_job_and_are_never_stored_in_clear(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    secret = "s3cret-value-7f3a"
    # The job prints the value: the redacted "***" shows it got exactly the secret.
    job = Job.new("shell", 'echo "${#DB_PASSWORD}"; echo "$DB_PASSWORD"')
    sent = client.prepare(job, secrets={"DB_PASSWORD": secret})
    assert secret not in sent.model_dump_json()
    assert "DB_PASSWORD" in sent.secrets
    result = client.run_job_and_await_result(job, timeout=30, secrets={"DB_PASSWORD": secret})
    assert (result.status, result.output) == (JobStatus.COMPLETED, f"{len(secret)}\n***\n")
    raw = client.store.redis
    stored = [*raw.hgetall(store_keys.job(result.job_id)).values()]
    stored += [str(raw.get(f"celery-task-meta-{result.job_id}"))]
    stored += [json.dumps(e.__dict__) for e in Audit(client.store).entries(result.job_id)]
    assert all(secret not in value for value in stored)
    assert secret not in workers["shell"].log.read_text()


def test_a_secret_sealed_to_another_key_is_refused(
    client: Client,
    workers: dict[str, WorkerProcess],
    stranger: SigningKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sealed_wrong = signing.sign(
        Job.new("shell", "echo $TOKEN").model_copy(
            update={
                "secrets": __import__("horus.trust.sealing", fromlist=["seal"]).seal(
                    {"TOKEN": "abcdef"}, keys.public_text(stranger), "any"
                )
            }
        ),
        keys.load(config.load().key_path),
    )
    sneak(client, sealed_wrong, sealed_wrong.id, record=sealed_wrong)
    assert "not sealed to this worker's key" in refusal(client, sealed_wrong.id).reason
    assert_refused_in_record(client, sealed_wrong.id, "secret TOKEN")


# -- cancel needs a signature ----------------------------------------------------------


def test_only_the_submitter_or_a_canceller_can_cancel(
    client: Client, workers: dict[str, WorkerProcess], stranger: SigningKey, tmp_path: Path
) -> None:
    done = tmp_path / "done"
    job_id = client.submit(Job.new("shell", f"sleep 3; touch {done}"))
    assert wait_until(lambda: client.get_job_status(job_id) is JobStatus.RUNNING)
    with pytest.raises(NotAllowed, match="needs a signature by its submitter"):
        Client(keys=[stranger]).cancel_job(job_id)
    # Around the client: the worker checks the request itself and ignores it.
    attach_cancel(client, job_id, CancelRequest.make(job_id, [stranger]).model_dump_json())
    assert "submitter" in refusal(client, job_id, action="cancel").reason
    assert client.get_job_status(job_id) is JobStatus.RUNNING
    assert client.cancel_job(job_id) is JobStatus.RUNNING
    assert client.wait(job_id, timeout=10).status is JobStatus.CANCELLED
    assert not done.exists()
    assert any(
        e.action == "cancel" and e.decision == "accepted"
        for e in Audit(client.store).entries(job_id)
    )


# -- the CLI ---------------------------------------------------------------------------


def test_cli_keys_generate_show_and_signing_with_an_unknown_key(
    workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    path = tmp_path / "me.key"
    made = run_horus("keys", "generate", "--out", str(path))
    assert made.returncode == 0
    assert made.stdout.startswith("ed25519:")
    assert path.stat().st_mode & 0o777 == 0o600
    shown = run_horus("keys", "show", str(path))
    assert shown.stdout == made.stdout
    again = run_horus("keys", "generate", "--out", str(path))
    assert again.returncode == 2
    assert "--force" in again.stderr
    refused = run_horus("enqueue", "shell", "echo hi", "--key", str(path), "--wait")
    assert refused.returncode == 8
    assert refused.stderr.count("\n") == 1
    assert "no grant lets key" in refused.stderr


def test_cli_audit_lists_decisions_for_a_job(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    done = run_horus("enqueue", "shell", "echo audited", "--wait", "--json")
    job_id = json.loads(done.stdout)["job_id"]
    listed = run_horus("audit", "--job", job_id)
    assert listed.returncode == 0
    assert "accepted" in listed.stdout
    assert job_id in listed.stdout
    as_json = json.loads(run_horus("audit", "--job", job_id, "--json").stdout)
    local = keys.public_text(keys.load(config.load().key_path))
    assert as_json[0]["signers"] == [local]
    assert as_json[0]["decision"] == "accepted"
    checked = run_horus("policy", "check")
    assert checked.returncode == 0
    assert "valid" in checked.stdout


def test_a_job_sent_through_flowers_task_api_never_runs(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {**os.environ, "FLOWER_BASIC_AUTH": "admin:pw"}
    flower = subprocess.Popen(
        horus_cmd("flower", "--port", str(port)),
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        job, canary = canary_job(tmp_path)
        assert client.lifecycle.create(job)
        # The attacker even names the job's id and its runner's queue.
        body = json.dumps(
            {"args": [job.model_dump_json()], "task_id": job.id, "queue": queue_for("shell")}
        ).encode()
        auth = base64.b64encode(b"admin:pw").decode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/task/async-apply/{task_for('shell')}",
            data=body,
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        )

        answers: list[int] = []

        def post() -> bool:
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    answers.append(reply.status)
            except urllib.error.HTTPError as exc:
                answers.append(exc.code)
            except OSError:
                return False  # Flower is not up yet
            return True

        assert wait_until(post, timeout=30, step=0.5)
        # Flower knows no Horus task (only workers register them): it sends nothing
        assert answers == [404]
        time.sleep(1)
        assert client.get_job_status(job.id) is JobStatus.PENDING
        assert not canary.exists()
    finally:
        end_group(flower)

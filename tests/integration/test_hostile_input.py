"""Hostile input from someone who can write to the broker but holds no trusted key.

Every message here goes around the client: a job signed by the session's trusted key (or
not) is recorded with ``Store.create`` where a record is wanted, changed in a way
hypothesis picks, and published straight to the shell queue. Each job's payload would
``touch $HORUS_HOME/canary/<job id>``, so a job that ran leaves a file; each refusal must
be in the audit trail, the record (if any) must end ``failed`` with a one-line reason that
names the problem, nothing else may be written, and the worker must keep serving.

A positive control shows that the same path runs an honest job and makes its canary, so
the negative tests cannot pass because nothing ever runs. Messages that kill a worker run
against a worker of their own (the ``echo`` test runner's queue), never the session's.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu import Connection
from nacl.signing import SigningKey

from horus import config
from horus.client import Client
from horus.errors import InvalidJob, JobNotFound, NotAllowed
from horus.job import (
    MAX_ENV_BYTES,
    MAX_ENV_VARS,
    MAX_PARAMS_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_SIGNATURES,
    MAX_TIMEOUT,
    Job,
    JobStatus,
    Signature,
    parse_job,
)
from horus.messaging.app import make_app
from horus.routing import queue_for, task_for
from horus.services.embedded import EmbeddedRedis
from horus.store.audit import Audit, Entry
from horus.store.records import Store
from horus.trust import keys, sealing, signing
from horus.trust.gate import Gate
from horus.trust.policy import HIJACK_ENV, hijacks
from tests.harness import JOB_FILES, WorkerProcess, pid_alive, plugin_env, wait_until

app = make_app(config.load())
pytestmark = pytest.mark.integration

SETTINGS = config.load()
CANARIES = JOB_FILES / "canary"  # where a sandboxed job may write
#: where a test puts a hostile fragment into a job's JSON text
MARK = "@@HOSTILE@@"
#: seconds the worker has to decide on one message
DECIDE = 10.0

#: examples per kind of mutation: every example is a round trip through a real worker
EACH = 12
#: small, reproducible property runs
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: printable text with no NUL, no control character and no lone surrogate
CLEAN = st.characters(blacklist_categories=("Cs", "Cc"))
POSIX_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SAFE_ENV_NAMES = st.from_regex(r"\A[A-Z][A-Z0-9_]{0,15}\Z").filter(lambda n: not hijacks(n))
PRINCIPALS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:@+/=-]{0,30}\Z")
JOB_IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,40}\Z")


# -- jobs, keys and messages ---------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def canary_dir(embedded_redis: EmbeddedRedis) -> Path:
    """The folder a job that ran leaves its canary in (sandboxed jobs run as another user)."""
    CANARIES.mkdir(parents=True, exist_ok=True)
    CANARIES.chmod(0o777)
    return CANARIES


@cache
def trusted() -> SigningKey:
    """The session's local key, which the starter policy trusts everywhere."""
    return keys.load(SETTINGS.key_path)


@cache
def stranger() -> SigningKey:
    """A key the policy does not know."""
    return keys.generate(SETTINGS.home / "hostile-keys" / "stranger.key", force=True)


def canary(job_id: str) -> Path:
    """The file that shows ``job_id`` ran."""
    return CANARIES / job_id


def unsigned(job_id: str | None = None, **fields: Any) -> Job:
    """A shell job that touches its canary, signed by nobody."""
    job_id = job_id or uuid.uuid4().hex
    return Job.model_validate(
        {"id": job_id, "runner_id": "shell", "payload": f"touch {canary(job_id)}", **fields}
    )


def honest(job_id: str | None = None, key: SigningKey | None = None, **fields: Any) -> Job:
    """A shell job that touches its canary, signed by ``key`` (the trusted key)."""
    return signing.sign(unsigned(job_id, **fields), key or trusted())


def doc(job: Job) -> dict[str, Any]:
    """The job as the JSON object a client sends."""
    return job.model_dump(mode="json")


def text(data: Any) -> str:
    """JSON text of ``data``."""
    return json.dumps(data)


def resign(data: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """``data`` (a job as JSON) with one signature by ``key`` over exactly these fields,
    valid or not: what the holder of ``key`` could send by hand, past every client check."""
    fields = dict(data)
    for name in ("created_at", "expires_at"):
        if isinstance(fields.get(name), str):
            fields[name] = datetime.fromisoformat(fields[name])
    fields["dependencies"] = tuple(fields.get("dependencies", ()))
    message = signing.job_bytes(Job.model_construct(**fields))
    signature = Signature(
        public_key=keys.public_text(key),
        signature=base64.b64encode(key.sign(message).signature).decode(),
    )
    return {**data, "signatures": [signature.model_dump(mode="json")]}


def publish(
    arg: Any,
    task_id: str,
    runner: str = "shell",
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
) -> None:
    """Send a task straight to a runner's queue, as anyone with broker access can."""
    app.send_task(
        task_for(runner),
        args=[arg] if args is None else args,
        kwargs=kwargs,
        task_id=task_id,
        queue=queue_for(runner),
        routing_key=queue_for(runner),
    )


def decisions(store: Store, job_id: str, timeout: float = DECIDE) -> list[Entry]:
    """The worker's run decisions about ``job_id``, once there is one."""
    audit = Audit(store)

    def runs() -> list[Entry]:
        return [e for e in audit.entries(job_id) if e.action == "run"]

    assert wait_until(runs, timeout=timeout), f"the worker never decided on job {job_id}"
    return runs()


def workdirs(job_id: str) -> list[Path]:
    """Working directories the worker made for ``job_id`` and left behind."""
    return list(Path(tempfile.gettempdir()).glob(f"horus-{job_id[:12]}-*"))


def carries(arg: Any, job: Job) -> bool:
    """True when the task argument ``arg`` is exactly the job ``job``."""
    try:
        return isinstance(arg, str) and parse_job(arg) == job
    except InvalidJob:
        return False


def assert_refused(
    store: Store,
    job_id: str,
    expect: str,
    record: Job | None,
    timeout: float = DECIDE,
    carried: bool = True,
) -> Entry:
    """The worker refused ``job_id`` naming the problem (``expect``, a regex), nothing ran,
    and the record (``record`` is what was recorded, None for no record) is failed with
    that reason and nothing else written, if the message ``carried`` the recorded job;
    else it is left as it was (a message without the signed job changes no record)."""
    entries = decisions(store, job_id, timeout)
    assert [e.decision for e in entries] == ["refused"], entries
    reason = entries[0].reason
    assert re.search(expect, reason), f"{reason!r} does not name the problem ({expect})"
    assert "\n" not in reason, reason
    assert "\r" not in reason, reason
    assert not canary(job_id).exists(), f"job {job_id} ran"
    if record is None:
        with pytest.raises(JobNotFound):
            store.get(job_id)  # the worker made no record of its own
    elif not carried:
        stored = store.get(job_id)
        assert stored.status is JobStatus.PENDING
        assert (stored.worker, stored.started_at, stored.attempt) == (None, None, 0)
        assert stored.job == record
    else:
        result = store.wait_finished(job_id, timeout=DECIDE)
        stored = store.get(job_id)
        assert (stored.status, result.status) == (JobStatus.FAILED, JobStatus.FAILED)
        assert result.error == reason
        assert (stored.worker, stored.started_at, stored.attempt) == (None, None, 0)
        assert stored.job == record  # the record still holds what was submitted
    assert workdirs(job_id) == []
    return entries[0]


def assert_still_serving(
    client: Client, workers: dict[str, WorkerProcess], sent: list[str]
) -> None:
    """The shell worker is the same process and runs an honest job; no job sent ran."""
    assert sent, "the property run sent nothing"
    proc = workers["shell"].proc
    assert proc is not None
    assert proc.poll() is None, "the shell worker died"
    result = client.run_job_and_await_result(Job.new("shell", "echo still-serving"), 30)
    assert (result.status, result.output) == (JobStatus.COMPLETED, "still-serving\n")
    ran = sorted(job_id for job_id in sent if canary(job_id).exists())
    assert ran == [], f"jobs ran: {ran}"


@dataclass(frozen=True)
class Hostile:
    """One message an attacker publishes under the job's task id."""

    #: the task argument: JSON text, or anything else
    arg: Any
    #: a regex the refusal's reason must match
    expect: str
    #: whether the job is recorded first; None lets hypothesis choose
    record: bool | None = None


@dataclass(frozen=True)
class Mutation:
    """A named way to turn an honest signed job into a hostile message."""

    name: str
    make: Callable[[Job, st.DataObject], Hostile]

    def __repr__(self) -> str:
        return self.name


def send_and_check(client: Client, job: Job, hostile: Hostile, data: st.DataObject) -> None:
    """Record ``job`` (maybe), publish the hostile message under its id, check the refusal."""
    record = hostile.record
    if record is None:
        record = data.draw(st.booleans(), label="recorded")
    if record:
        assert client.lifecycle.create(job)
    publish(hostile.arg, job.id)
    recorded = job if record else None
    assert_refused(
        client.store, job.id, hostile.expect, recorded, carried=carries(hostile.arg, job)
    )


# -- tampered and badly signed jobs --------------------------------------------------

#: strategies for a different, valid value of each signed field
CHANGES: dict[str, Callable[[Job], st.SearchStrategy[Any]]] = {
    "payload": lambda j: st.text(CLEAN, min_size=1, max_size=30).map(lambda s: f"{j.payload}; {s}"),
    "params": lambda j: st.just({"shell": "bash"}),
    "env_vars": lambda j: st.dictionaries(
        SAFE_ENV_NAMES, st.text(CLEAN, max_size=20), min_size=1, max_size=3
    ),
    "timeout": lambda j: st.integers(1, MAX_TIMEOUT).filter(lambda t: t != j.timeout),
    "runner_id": lambda j: st.sampled_from(["python", "echo", "shell2"]),
    "context_id": lambda j: PRINCIPALS,
    "caller_id": lambda j: PRINCIPALS,
    "created_at": lambda j: (
        st.integers(-3600, 3600)
        .filter(bool)
        .map(lambda s: signing.timestamp(j.created_at + timedelta(seconds=s)))
    ),
    "expires_at": lambda j: (
        st.integers(-3600, 3600)
        .filter(bool)
        .map(lambda s: signing.timestamp((j.expires_at or j.created_at) + timedelta(seconds=s)))
    ),
    "max_attempts": lambda j: st.integers(2, 100),
    "dependencies": lambda j: st.lists(JOB_IDS, min_size=1, max_size=3),
    "secrets": lambda j: st.just({"TOKEN": base64.b64encode(b"x" * 80).decode()}),
}


def _changed_after_signing(job: Job, data: st.DataObject) -> Hostile:
    changed = doc(job)
    field = data.draw(st.sampled_from(sorted(CHANGES)), label="field")
    changed[field] = data.draw(CHANGES[field](job), label="new value")
    return Hostile(text(changed), r"does not verify: the job was changed after signing")


def _signatures_dropped(job: Job, data: st.DataObject) -> Hostile:
    return Hostile(text({**doc(job), "signatures": []}), r"the job is unsigned")


def _never_signed(job: Job, data: st.DataObject) -> Hostile:
    return Hostile(unsigned(job.id).model_dump_json(), r"the job is unsigned")


def _signed_by_a_stranger(job: Job, data: st.DataObject) -> Hostile:
    return Hostile(
        signing.sign(unsigned(job.id), stranger()).model_dump_json(), r"no grant lets key"
    )


def _forged(job: Job, data: st.DataObject) -> Hostile:
    by_stranger = signing.sign(unsigned(job.id), stranger())
    forged = doc(by_stranger)
    forged["signatures"][0]["public_key"] = keys.public_text(trusted())
    return Hostile(text(forged), r"does not verify")


def _signature_of_another_job(job: Job, data: st.DataObject) -> Hostile:
    other = honest(payload=job.payload)
    return Hostile(text({**doc(job), "signatures": doc(other)["signatures"]}), r"does not verify")


def _garbled_signature(job: Job, data: st.DataObject) -> Hostile:
    garbled = doc(job)
    original = garbled["signatures"][0]["signature"]
    garbled["signatures"][0]["signature"] = data.draw(
        st.one_of(
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=600),
            st.binary(min_size=64, max_size=64).map(lambda b: base64.b64encode(b).decode()),
            st.integers(0, len(original) - 3).map(
                lambda i: original[:i] + ("A" if original[i] != "A" else "B") + original[i + 1 :]
            ),
        ).filter(lambda s: s != original),
        label="signature",
    )
    return Hostile(text(garbled), r"signature")


def _garbled_public_key(job: Job, data: st.DataObject) -> Hostile:
    garbled = doc(job)
    original = garbled["signatures"][0]["public_key"]
    garbled["signatures"][0]["public_key"] = data.draw(
        st.one_of(
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300),
            st.binary(min_size=31, max_size=33).map(
                lambda b: keys.PUBLIC_PREFIX + base64.b64encode(b).decode()
            ),
        ).filter(lambda s: s != original),
        label="public key",
    )
    return Hostile(text(garbled), r"signature|public_key")


def _expired(job: Job, data: st.DataObject) -> Hostile:
    now = datetime.now(UTC)
    ago = data.draw(st.integers(1, 3600), label="expired seconds ago")
    expired = honest(
        job.id,
        created_at=now - timedelta(seconds=ago + 60),
        expires_at=now - timedelta(seconds=ago),
    )
    return Hostile(expired.model_dump_json(), r"the signature expired at")


def _from_the_future(job: Job, data: st.DataObject) -> Hostile:
    ahead = data.draw(st.integers(signing.CLOCK_SKEW + 60, 30 * 24 * 3600), label="seconds ahead")
    future = honest(job.id, created_at=datetime.now(UTC) + timedelta(seconds=ahead))
    return Hostile(future.model_dump_json(), r"in the future")


def _valid_for_too_long(job: Job, data: st.DataObject) -> Hostile:
    extra = data.draw(st.integers(1, 365 * 24 * 3600), label="seconds past retention")
    now = datetime.now(UTC)
    long = honest(
        job.id,
        created_at=now,
        expires_at=now + timedelta(seconds=SETTINGS.retention_seconds + extra),
    )
    return Hostile(long.model_dump_json(), r"longer than the \d+ s job records are kept")


def _signed_without_expiry(job: Job, data: st.DataObject) -> Hostile:
    return Hostile(text(resign({**doc(job), "expires_at": None}, trusted())), r"has no expires_at")


def _hijack_names() -> st.SearchStrategy[str]:
    """Names each pattern of the hijack list covers: a leading * stands for a POSIX start
    (``SYSTEMD_PAGER``), any other for any name characters (``GIT_EXTERNAL_DIFF``)."""

    def regex(pattern: str) -> str:
        lead = "[A-Z_][A-Z0-9_]{0,8}" if pattern.startswith("*") else ""
        body = pattern.removeprefix("*").replace("*", "[A-Z0-9_]{0,12}")
        return rf"\A{lead}{body}\Z"

    return st.one_of(*(st.from_regex(regex(p)) for p in HIJACK_ENV)).filter(
        lambda name: POSIX_NAME.match(name) is not None and not name.startswith("HORUS_")
    )


def _hijacking_env(job: Job, data: st.DataObject) -> Hostile:
    name = data.draw(_hijack_names(), label="env name")
    assert hijacks(name)
    value = data.draw(st.text(CLEAN, max_size=30), label="value")
    benign = data.draw(st.dictionaries(SAFE_ENV_NAMES, st.just("1"), max_size=2), label="others")
    benign.pop(name, None)
    if data.draw(st.booleans(), label="as a secret"):
        sealed = sealing.seal({name: value}, Gate(SETTINGS).secrets_key(), job.id)
        bad = honest(job.id, env_vars=benign, secrets=sealed)
    else:
        bad = honest(job.id, env_vars={**benign, name: value})
    return Hostile(bad.model_dump_json(), rf"env var {re.escape(name)} can hijack")


def _unknown_runner(job: Job, data: st.DataObject) -> Hostile:
    runner = data.draw(
        st.from_regex(r"\A[a-z][a-z0-9_-]{0,20}\Z").filter(
            lambda r: r not in ("shell", "python", "echo")
        ),
        label="runner",
    )
    bad = honest(job.id, runner_id=runner)
    return Hostile(bad.model_dump_json(), rf"this worker has no runner {re.escape(repr(runner))}")


def _params_the_runner_refuses(job: Job, data: st.DataObject) -> Hostile:
    params = data.draw(
        st.one_of(
            st.dictionaries(
                st.text(CLEAN, min_size=1, max_size=10).filter(lambda k: k != "shell"),
                st.integers(),
                min_size=1,
                max_size=3,
            ),
            st.sampled_from(["zsh", "python", "/bin/sh", ""]).map(lambda s: {"shell": s}),
        ),
        label="params",
    )
    bad = honest(job.id, params=params)
    return Hostile(bad.model_dump_json(), r"invalid job for runner 'shell'")


def _another_jobs_message(job: Job, data: st.DataObject) -> Hostile:
    other_id = data.draw(JOB_IDS.filter(lambda i: i != job.id), label="other id")
    other = honest(other_id, payload=job.payload)  # would touch this job's canary
    return Hostile(other.model_dump_json(), rf"task id {job.id} is not the job's id")


def _honest_but_unrecorded(job: Job, data: st.DataObject) -> Hostile:
    return Hostile(job.model_dump_json(), r"the job has no record", record=False)


TAMPERING = [
    Mutation(f.__name__.lstrip("_"), f)
    for f in (
        _changed_after_signing,
        _signatures_dropped,
        _never_signed,
        _signed_by_a_stranger,
        _forged,
        _signature_of_another_job,
        _garbled_signature,
        _garbled_public_key,
        _expired,
        _from_the_future,
        _valid_for_too_long,
        _signed_without_expiry,
        _hijacking_env,
        _unknown_runner,
        _params_the_runner_refuses,
        _another_jobs_message,
        _honest_but_unrecorded,
    )
]


# -- malformed job text --------------------------------------------------------------

SPOTS = (
    "payload",
    "env value",
    "env name",
    "params key",
    "params value",
    "caller_id",
    "context_id",
    "tag",
    "dependency",
    "public key",
    "field name",
)


def _place(data: dict[str, Any], spot: str) -> None:
    """Put :data:`MARK` at ``spot`` of a job's JSON object."""
    if spot == "payload":
        data["payload"] += MARK
    elif spot == "env value":
        data["env_vars"] = {"GREETING": f"hi{MARK}"}
    elif spot == "env name":
        data["env_vars"] = {f"A{MARK}": "1"}
    elif spot == "params key":
        data["params"] = {f"shell{MARK}": "sh"}
    elif spot == "params value":
        data["params"] = {"shell": f"sh{MARK}"}
    elif spot in ("caller_id", "context_id"):
        data[spot] = f"me{MARK}"
    elif spot == "tag":
        data["tags"] = [f"t{MARK}"]
    elif spot == "dependency":
        data["dependencies"] = [f"d{MARK}"]
    elif spot == "public key":
        data["signatures"][0]["public_key"] += MARK
    else:
        data[f"x{MARK}"] = 1


def _inject(job: Job, data: st.DataObject, fragments: dict[str, str]) -> Hostile:
    spot = data.draw(st.sampled_from(SPOTS), label="spot")
    fragment = data.draw(st.sampled_from(sorted(fragments)), label="fragment")
    placed = doc(job)
    _place(placed, spot)
    return Hostile(text(placed).replace(MARK, fragment), fragments[fragment])


def _nul_byte(job: Job, data: st.DataObject) -> Hostile:
    return _inject(job, data, {"\\u0000": r"a NUL byte is not allowed", "\x00": r"is not JSON"})


def _lone_surrogate(job: Job, data: st.DataObject) -> Hostile:
    surrogate = r"invalid UTF-8 \(a lone surrogate\)"
    return _inject(
        job,
        data,
        {
            "\\ud800": surrogate,
            "\\udbff": surrogate,
            "\\udc00": surrogate,
            "\\udfff\\ud800": surrogate,  # a pair in the wrong order
            "\ud800": surrogate,  # the character itself, escaped only by the transport
        },
    )


def _duplicate_key(job: Job, data: st.DataObject) -> Hostile:
    where = data.draw(st.sampled_from(["job", "params", "env_vars", "signature"]), label="where")
    dup = doc(job)
    target = {"job": dup, "params": dup["params"], "env_vars": dup["env_vars"]}.get(
        where, dup["signatures"][0]
    )
    target[MARK] = 0
    if where == "job":  # a second copy of a field the job has: even the same value is refused
        key = data.draw(st.sampled_from(sorted(k for k in dup if k != MARK)), label="key")
        same = data.draw(st.booleans(), label="same value")
        value = dup[key] if same else "touch /tmp/decoy"
        pair = f"{json.dumps(key)}: {json.dumps(value)}"
    else:
        key = data.draw(st.text(CLEAN, min_size=1, max_size=10), label="key")
        pair = f"{json.dumps(key)}: 1, {json.dumps(key)}: 2"
    return Hostile(text(dup).replace(f'"{MARK}": 0', pair), r"duplicate key")


def _deep_nesting(job: Job, data: st.DataObject) -> Hostile:
    spot = data.draw(st.sampled_from(["params", "field", "signatures"]), label="spot")
    lowest = 32 if spot == "params" else 40
    depth = data.draw(st.one_of(st.integers(lowest, 3000), st.just(100_000)), label="depth")
    if data.draw(st.booleans(), label="objects"):
        nested = '{"a": ' * depth + "1" + "}" * depth
    else:
        nested = "[" * depth + "]" * depth
    deep = doc(job)
    if spot == "params":
        deep["params"] = {"shell": "sh", "deep": MARK}
    elif spot == "field":
        deep["deep"] = MARK
    else:
        deep["signatures"].append(MARK)
    return Hostile(text(deep).replace(f'"{MARK}"', nested), r"nest")


def _unknown_field(job: Job, data: st.DataObject) -> Hostile:
    extra = doc(job)
    in_signature = data.draw(st.booleans(), label="in the signature")
    known = Signature.model_fields if in_signature else Job.model_fields
    name = data.draw(
        st.text(CLEAN, min_size=1, max_size=20).filter(lambda n: n not in known), label="name"
    )
    value = data.draw(st.one_of(st.integers(), st.text(CLEAN, max_size=10)), label="value")
    (extra["signatures"][0] if in_signature else extra)[name] = value
    return Hostile(text(extra), r"unknown field; remove it")


def _not_an_object(job: Job, data: st.DataObject) -> Hostile:
    value = data.draw(
        st.one_of(
            st.just([doc(job)]),
            st.lists(st.integers(), max_size=3),
            st.text(CLEAN, max_size=20),
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
            st.none(),
        ),
        label="value",
    )
    return Hostile(text(value), r"it is not a JSON object")


def _not_json(job: Job, data: st.DataObject) -> Hostile:
    good = job.model_dump_json()
    broken = data.draw(
        st.one_of(
            st.integers(0, len(good) - 1).map(lambda k: good[:k]),
            st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]).map(
                lambda c: good.replace(f'"timeout":{job.timeout}', f'"timeout":{c}')
            ),
            st.sampled_from([" x", "}", "{}", "\x00"]).map(lambda tail: good + tail),
            st.just(str(doc(job))),  # a Python dict, not JSON
            st.just(good.replace('"payload":"', '"payload":"\x01', 1)),
        ),
        label="text",
    )
    return Hostile(broken, r"is not JSON|too large for a number")


def _oversize(job: Job, data: st.DataObject) -> Hostile:
    extra = data.draw(st.integers(1, 4096), label="bytes over")
    what = data.draw(
        st.sampled_from(["payload", "params", "env count", "env bytes", "signatures"]),
        label="what",
    )
    big = doc(job)
    if what == "payload":  # counted in bytes: multibyte characters must not slip through
        char = data.draw(st.sampled_from(["x", "é", "€", "😀"]), label="char")
        need = MAX_PAYLOAD_BYTES - len(job.payload.encode()) + extra
        big["payload"] = job.payload + " #" + char * -(-need // len(char.encode()))
    elif what == "params":
        big["params"] = {"shell": "sh", "pad": "x" * (MAX_PARAMS_BYTES + extra)}
    elif what == "env count":
        big["env_vars"] = {f"V{i}": "" for i in range(MAX_ENV_VARS + 1 + extra % 64)}
    elif what == "env bytes":
        big["env_vars"] = {"BIG": "x" * (MAX_ENV_BYTES + extra)}
    if what == "signatures":
        big["signatures"] = big["signatures"] * (MAX_SIGNATURES + 1 + extra % 8)
    else:  # a valid signature by the trusted key: size alone must refuse it
        big = resign(big, trusted())
    return Hostile(text(big), r"over the limit of \d+|at most \d+ items")


def _bad_env_name(job: Job, data: st.DataObject) -> Hostile:
    name = data.draw(
        st.one_of(
            st.sampled_from(["1X", "A-B", "A=B", "", "A B", "É", "PATH=/tmp", "BASH_FUNC_x%%"]),
            st.text(CLEAN, max_size=12).filter(lambda n: not POSIX_NAME.fullmatch(n)),
        ),
        label="name",
    )
    bad = resign({**doc(job), "env_vars": {name: "1"}}, trusted())
    return Hostile(text(bad), r"is not a POSIX name")


#: values each field must refuse
BAD_VALUES: dict[str, list[Any]] = {
    "id": ["", "../x", "a" * 129, " x", 7, None],
    "runner_id": ["", "Shell", "sh ell", "a" * 64, "-x", 7, None],
    "payload": ["", None, 7, []],
    "timeout": [0, -1, MAX_TIMEOUT + 1, 10**30, "soon", None, [], 1.5],
    "env_vars": [[], "A=1", {"A": 1}, {"A": None}],
    "params": [[], "x", 7],
    "signatures": ["sig", [1], [{}], {"a": 1}],
    "created_at": ["yesterday", "", [], "2026-13-45T00:00:00Z"],
    "expires_at": ["never", 1e300, "1970-01-01T00:00:00Z"],
    "status": ["done", 7],
    "caller_id": ["", " ", "a" * 257],
    "max_attempts": [0, 101, "many"],
    "tags": [["bad tag"], "x"],
    "dependencies": [["../x"], "x"],
    "secrets": [{"1X": "x"}, {"TOKEN": "x" * 6000}, []],
}


def _bad_value(job: Job, data: st.DataObject) -> Hostile:
    field = data.draw(st.sampled_from(sorted(BAD_VALUES)), label="field")
    value = data.draw(st.sampled_from(BAD_VALUES[field]), label="value")
    return Hostile(text({**doc(job), field: value}), rf"\b{field}\b")


MALFORMED = [
    Mutation(f.__name__.lstrip("_"), f)
    for f in (
        _nul_byte,
        _lone_surrogate,
        _duplicate_key,
        _deep_nesting,
        _unknown_field,
        _not_an_object,
        _not_json,
        _oversize,
        _bad_env_name,
        _bad_value,
    )
]

#: task arguments that are not JSON text (kombu carries bytes and rebuilds them)
NOT_TEXT: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text("abcxyz", max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
).filter(lambda v: not isinstance(v, str))


# -- the properties ------------------------------------------------------------------


def test_positive_control_an_honest_job_sent_the_same_way_runs_and_leaves_its_canary(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    for message in (honest(), Job.model_validate(resign(doc(honest()), trusted()))):
        assert client.lifecycle.create(message)
        publish(message.model_dump_json(), message.id)
        assert [e.decision for e in decisions(client.store, message.id)] == ["accepted"]
        result = client.wait(message.id, timeout=30)
        assert result.status is JobStatus.COMPLETED, result.error
        assert canary(message.id).exists()


def run_property(
    client: Client, workers: dict[str, WorkerProcess], mutation: Mutation, examples: int
) -> None:
    """Send ``examples`` hostile messages made by ``mutation``; each is refused, and the
    worker still serves afterwards."""
    sent: list[str] = []

    @settings(PROPERTY, max_examples=examples)
    @given(data=st.data())
    def hostile(data: st.DataObject) -> None:
        job = honest()
        sent.append(job.id)
        send_and_check(client, job, mutation.make(job, data), data)

    hostile()
    assert_still_serving(client, workers, sent)


@pytest.mark.parametrize("mutation", TAMPERING, ids=repr)
def test_a_tampered_or_badly_signed_job_never_runs(
    client: Client, workers: dict[str, WorkerProcess], mutation: Mutation
) -> None:
    run_property(client, workers, mutation, EACH)


@pytest.mark.parametrize("mutation", MALFORMED, ids=repr)
def test_a_malformed_job_never_runs(
    client: Client, workers: dict[str, WorkerProcess], mutation: Mutation
) -> None:
    run_property(client, workers, mutation, EACH)


def test_a_task_argument_that_is_not_json_text_never_runs(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    sent: list[str] = []

    @PROPERTY
    @given(data=st.data())
    def not_text(data: st.DataObject) -> None:
        job = honest()
        sent.append(job.id)
        arg = data.draw(
            st.one_of(
                st.just(doc(job)),  # the job as an object instead of text
                st.just([job.model_dump_json()]),
                st.just(job.model_dump_json().encode()),  # bytes of valid job text
                NOT_TEXT,
            ),
            label="argument",
        )
        hostile = Hostile(arg, r"the message is not a Horus job")
        send_and_check(client, job, hostile, data)

    not_text()
    assert_still_serving(client, workers, sent)


# -- hijacking env names and the grant that may allow them ---------------------------


@pytest.fixture
def policy_restored() -> Iterator[Path]:
    """The session's policy file, put back as it was after the test."""
    path = SETTINGS.policy_path
    original = path.read_text()
    yield path
    write_atomically(path, original)


def write_atomically(path: Path, content: str) -> None:
    """Replace a file whole, so a worker never reads it half-written."""
    tmp = path.with_name(f".{path.name}.hostile.tmp")
    tmp.write_text(content)
    os.replace(tmp, path)


def test_a_hijacking_env_name_needs_a_grant_naming_it_exactly_not_a_glob(
    client: Client, workers: dict[str, WorkerProcess], policy_restored: Path
) -> None:
    granted = stranger()
    write_atomically(
        policy_restored,
        policy_restored.read_text()
        + f'\n[[grants]]\nwho = ["{keys.public_text(granted)}"]\nrunners = ["shell"]\n'
        'env = ["LD_*", "PYTHON*", "BASH_ENV"]\n'
        f'writable = ["{JOB_FILES}"]\n',
    )
    # Only a glob covers these: refused, though the grant's globs match them.
    for name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONSTARTUP"):
        job = honest(key=granted, env_vars={name: "/nonexistent"})
        with pytest.raises(NotAllowed, match=f"env var {name} can hijack"):
            Client(keys=[granted]).check(job)
        assert client.lifecycle.create(job)
        publish(job.model_dump_json(), job.id)
        assert_refused(client.store, job.id, rf"env var {name} can hijack", job)

    # BASH_ENV really runs code: bash sources the file before the script.
    def bash_env_job(key: SigningKey) -> Job:
        job_id = uuid.uuid4().hex
        script = CANARIES / f"{job_id}.sh"
        script.write_text(f"touch {canary(job_id)}\n")
        return honest(
            job_id,
            key=key,
            payload="true",
            params={"shell": "bash"},
            env_vars={"BASH_ENV": str(script)},
        )

    trusted_job = bash_env_job(trusted())  # the starter grant allows env "*": not enough
    assert client.lifecycle.create(trusted_job)
    publish(trusted_job.model_dump_json(), trusted_job.id)
    assert_refused(client.store, trusted_job.id, r"env var BASH_ENV can hijack", trusted_job)
    named = bash_env_job(granted)  # a grant naming BASH_ENV exactly
    assert client.lifecycle.create(named)
    publish(named.model_dump_json(), named.id)
    assert client.wait(named.id, timeout=30).status is JobStatus.COMPLETED
    assert canary(named.id).exists()


# -- messages that are not Celery tasks of ours --------------------------------------


class Reducer:
    """Unpickling this makes a directory: a pickle that runs code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.path,))


def pickled(path: Path) -> bytes:
    """A Celery body whose unpickling makes the directory ``path``."""
    return pickle.dumps(((Reducer(path),), {}, {}))


def yamled(path: Path) -> bytes:
    """A Celery body whose unsafe YAML loading makes the directory ``path``."""
    return f"- [!!python/object/apply:os.mkdir [{path}]]\n- {{}}\n- {{}}\n".encode()


def test_pickle_yaml_and_foreign_tasks_are_refused_before_any_code_runs(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    job = honest()
    assert client.lifecycle.create(job)
    # The traps work: loaded the unsafe way, each one makes its directory.
    pickle.loads(pickled(CANARIES / f"{job.id}-control-pickle"))
    yaml.unsafe_load(yamled(CANARIES / f"{job.id}-control-yaml"))
    assert (CANARIES / f"{job.id}-control-pickle").is_dir()
    assert (CANARIES / f"{job.id}-control-yaml").is_dir()
    traps = [CANARIES / f"{job.id}-{name}" for name in ("pickle", "pickle-as-json", "yaml")]
    messages = [
        (pickled(traps[0]), "application/x-python-serialize", "binary"),
        (pickled(traps[1]), "application/json", "utf-8"),
        (yamled(traps[2]), "application/x-yaml", "utf-8"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "utf-8"),
    ]
    with Connection(app.conf.broker_url) as conn:
        producer = conn.Producer()
        for body, content_type, encoding in messages:
            producer.publish(
                body,
                routing_key=queue_for("shell"),
                content_type=content_type,
                content_encoding=encoding,
                headers={"task": task_for("shell"), "id": job.id, "lang": "py"},
            )
    # A built-in Celery task that calls ours in process: it has no task id, so no job.
    map_task = {
        "task": task_for("shell"),
        "args": [],
        "kwargs": {},
        "options": {},
        "immutable": False,
    }
    app.send_task("celery.map", args=[map_task, [job.model_dump_json()]], queue=queue_for("shell"))
    after = client.run_job_and_await_result(Job.new("shell", "echo still-serving"), 30)
    assert after.output == "still-serving\n"  # the shell queue is FIFO: all were consumed
    assert [p.name for p in traps if p.exists()] == []
    assert not canary(job.id).exists()
    assert client.get_job_status(job.id) is JobStatus.PENDING
    # each message the worker could not read is audited as dropped, and nothing else
    entries = Audit(client.store).entries(job.id)
    assert entries
    assert {(e.decision, "cannot read" in e.reason) for e in entries} == {("refused", True)}


# -- messages that used to stop a worker or slip past the checks ---------------------


def test_a_worker_refuses_a_job_for_a_runner_it_does_not_serve(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    job_id = uuid.uuid4().hex
    job = honest(
        job_id, runner_id="python", payload="os:mkdir", params={"path": str(canary(job_id))}
    )
    assert client.lifecycle.create(job)
    publish(job.model_dump_json(), job.id)  # the shell queue: its worker serves shell only
    assert_refused(client.store, job.id, r"runner 'python'", job)


def test_a_task_with_other_arguments_is_refused_and_its_record_left_as_it_was(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    jobs = [honest() for _ in range(4)]
    for job in jobs:
        assert client.lifecycle.create(job)
    one, two, three, four = ((j.id, j.model_dump_json()) for j in jobs)
    publish(None, one[0], args=[one[1], "extra"])
    publish(None, two[0], args=[])
    publish(None, three[0], args=[], kwargs={"message": three[1], "extra": 1})
    publish(None, four[0], args=[], kwargs={"job": four[1]})
    after = client.run_job_and_await_result(Job.new("shell", "echo still-serving"), 30)
    assert after.output == "still-serving\n"  # the shell queue is FIFO: all were consumed
    assert [j.id for j in jobs if canary(j.id).exists()] == []
    for job in jobs:
        assert_refused(client.store, job.id, r"\S", job, timeout=1, carried=False)


def test_a_refusal_reason_is_one_printable_line_whatever_names_the_message_uses(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    job = honest()
    assert client.lifecycle.create(job)
    names = ["a\x0bb", "c\x0cd", "e\x1b[2Jf", "g\x85h", "i\u2028j"]
    publish(text({**doc(job), **dict.fromkeys(names, 1)}), job.id)
    reason = assert_refused(client.store, job.id, r"unknown field", job, carried=False).reason
    assert reason.splitlines() == [reason]
    assert reason.isprintable(), repr(reason)


def purge(queue: str) -> None:
    """Empty a queue, and forget its messages Redis holds as delivered but unacked."""
    redis = Store(SETTINGS).redis
    for key in redis.keys(f"{queue}*"):
        redis.delete(key)
    for tag, raw in redis.hgetall("unacked").items():
        if json.loads(raw)[-1] == queue:
            redis.hdel("unacked", tag)
            redis.zrem("unacked_index", tag)


@pytest.fixture
def own_worker(embedded_redis: EmbeddedRedis) -> Iterator[WorkerProcess]:
    """A worker of its own on the echo test runner's queue: a message that kills it kills
    no worker other tests rely on."""
    purge(queue_for("echo"))
    worker = WorkerProcess(["echo"], 1, plugin_env()).start()
    try:
        yield worker
    finally:
        worker.stop()
        purge(queue_for("echo"))


def serves(client: Client, worker: WorkerProcess) -> bool:
    """True if ``worker`` runs an honest echo job (False as soon as it has exited)."""
    proc = worker.proc
    assert proc is not None
    job_id = client.submit(Job.new("echo", "gnivres"))
    wait_until(
        lambda: proc.poll() is not None or client.get_job_result(job_id) is not None, timeout=20
    )
    result = client.get_job_result(job_id)
    return result is not None and result.output == "serving"


def assert_serves(client: Client, worker: WorkerProcess) -> None:
    """``worker`` is alive and runs jobs."""
    assert worker.proc is not None
    works = serves(client, worker)
    crash = [line for line in worker.log.read_text().splitlines() if "CRITICAL" in line]
    assert pid_alive(worker.proc.pid), f"the worker exited: {crash[-1:]}"
    assert works


def envelope(body: bytes, task_id: str, queue: str, changes: dict[str, Any] | None = None) -> bytes:
    """A message as kombu keeps it in a Redis list, with ``body`` as the task's body."""
    message: dict[str, Any] = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": "horus." + queue.removeprefix("horus."),
            "id": task_id,
            "root_id": task_id,
        },
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps({**message, **(changes or {})}).encode()


def test_positive_control_a_hand_made_envelope_is_a_task_the_worker_runs(
    client: Client, own_worker: WorkerProcess
) -> None:
    job = honest(runner_id="echo", payload="lortnoc")
    assert client.lifecycle.create(job)
    body = json.dumps([[job.model_dump_json()], {}, {}]).encode()
    client.store.redis.lpush(queue_for("echo"), envelope(body, job.id, queue_for("echo")))
    result = client.wait(job.id, timeout=30)
    assert (result.status, result.output) == (JobStatus.COMPLETED, "control")


def test_garbage_bytes_on_a_runners_queue_are_dropped_and_the_worker_keeps_serving(
    client: Client, own_worker: WorkerProcess
) -> None:
    queue = queue_for("echo")
    garbage = [
        b"\xff\xfe\x00 not even UTF-8",
        b"not json",
        b"null",
        b"42",
        b'"a string"',
        b"[]",
        b"[1, 2, 3]",
        envelope(b"", uuid.uuid4().hex, queue, {"body": "!!! not base64"}),
    ]
    for item in garbage:
        client.store.redis.lpush(queue, item)
    assert_serves(client, own_worker)
    assert client.store.redis.llen(queue) == 0


def test_a_message_with_a_malformed_task_body_is_dropped_not_fatal_to_every_worker(
    client: Client, own_worker: WorkerProcess
) -> None:
    queue = queue_for("echo")
    job = honest(runner_id="echo", payload="x")
    assert client.lifecycle.create(job)
    for body in (b'{"args": []}', b"[]", b'"x"', json.dumps([job.model_dump_json()]).encode()):
        client.store.redis.lpush(queue, envelope(body, job.id, queue))
    assert_serves(client, own_worker)
    assert client.store.redis.llen(queue) == 0

"""The CLI's own parsing: K=V pairs, payload sources, `horus schema`, early refusals."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

# importing the command modules registers their commands on `cli`
import horus.cli.jobs
import horus.cli.platform
from horus.cli import cli
from horus.cli.jobs import parse_pairs, read_payload
from horus.errors import InvalidJob

# -- parse_pairs --------------------------------------------------------------------------


def test_pairs_give_string_values() -> None:
    assert parse_pairs(("A=1", "B=two words"), "--env", allow_json=False) == {
        "A": "1",
        "B": "two words",
    }


def test_only_the_first_equals_sign_splits_a_pair() -> None:
    assert parse_pairs(("URL=a=b=c",), "--env", allow_json=False) == {"URL": "a=b=c"}


def test_an_empty_value_is_kept() -> None:
    assert parse_pairs(("EMPTY=",), "--env", allow_json=False) == {"EMPTY": ""}


def test_no_pairs_give_an_empty_dict() -> None:
    assert parse_pairs((), "--param", allow_json=True) == {}


def test_colon_equals_gives_a_json_value() -> None:
    pairs = ("n:=3", "flag:=true", "xs:=[1, 2]", 'obj:={"a": null}', "s=3")
    assert parse_pairs(pairs, "--param", allow_json=True) == {
        "n": 3,
        "flag": True,
        "xs": [1, 2],
        "obj": {"a": None},
        "s": "3",
    }


def test_colon_equals_inside_a_string_value_is_just_text() -> None:
    assert parse_pairs(("cmd=a:=b",), "--param", allow_json=True) == {"cmd": "a:=b"}


def test_colon_equals_is_plain_text_where_json_is_not_allowed() -> None:
    # --env has no JSON form: the key keeps its colon (and is then refused as an env name)
    assert parse_pairs(("N:=3",), "--env", allow_json=False) == {"N:": "3"}


def test_a_pair_without_equals_is_refused_naming_the_option() -> None:
    with pytest.raises(InvalidJob) as info:
        parse_pairs(("GREETING",), "--env", allow_json=False)
    message = str(info.value)
    assert "--env 'GREETING' has no '='" in message
    assert "write --env NAME=VALUE" in message
    assert "\n" not in message


def test_bad_json_after_colon_equals_is_refused_naming_the_option() -> None:
    with pytest.raises(InvalidJob) as info:
        parse_pairs(("n:=[1,",), "--param", allow_json=True)
    message = str(info.value)
    assert message.startswith("--param 'n:=[1,': the value after := is not JSON")
    assert "\n" not in message


def test_nothing_after_colon_equals_is_refused() -> None:
    with pytest.raises(InvalidJob, match="not JSON"):
        parse_pairs(("n:=",), "--param", allow_json=True)


# -- read_payload -------------------------------------------------------------------------


def test_a_plain_payload_is_the_payload_itself() -> None:
    assert read_payload("echo hello") == "echo hello"


def test_at_path_reads_the_payload_from_a_file(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("echo from a file\nécho\n", encoding="utf-8")
    assert read_payload(f"@{script}") == "echo from a file\nécho\n"


def test_a_missing_payload_file_is_refused_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sh"
    with pytest.raises(InvalidJob) as info:
        read_payload(f"@{missing}")
    message = str(info.value)
    assert message.startswith(f"cannot read payload file {missing}")
    assert "give a readable UTF-8 file" in message
    assert "\n" not in message


def test_a_payload_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "blob"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InvalidJob, match="UTF-8"):
        read_payload(f"@{binary}")


def test_a_directory_as_payload_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidJob, match="cannot read payload file"):
        read_payload(f"@{tmp_path}")


def test_dash_reads_the_payload_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("echo piped\n"))
    assert read_payload("-") == "echo piped\n"


# -- the command line ---------------------------------------------------------------------


def test_schema_job_prints_the_json_schema_of_a_job() -> None:
    result = CliRunner().invoke(cli, ["schema", "job"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert "runner_id" in schema["properties"]
    assert "payload" in schema["properties"]
    assert set(schema["required"]) == {"runner_id", "payload"}


def test_schema_result_prints_the_json_schema_of_a_result() -> None:
    result = CliRunner().invoke(cli, ["schema", "result"])
    assert result.exit_code == 0
    assert "exit_code" in json.loads(result.stdout)["properties"]


def test_schema_of_something_else_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["schema", "worker"])
    assert result.exit_code == 2


@pytest.fixture
def redis_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every Redis command sent while the test runs (none are sent: each one fails)."""
    calls: list[tuple[Any, ...]] = []

    def record(self: redis.Redis[Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise redis.ConnectionError("the test has no broker")

    monkeypatch.setattr(redis.Redis, "execute_command", record)
    return calls


def test_enqueue_with_a_bad_env_name_exits_2_with_one_line_and_no_broker(
    redis_calls: list[tuple[Any, ...]],
) -> None:
    result = CliRunner().invoke(cli, ["enqueue", "shell", "echo hi", "--env", "1BAD=x"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("horus: invalid job: env_vars")
    assert "'1BAD'" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert redis_calls == []  # validation refused the job before any broker was needed


def test_enqueue_with_a_pair_without_equals_exits_2_with_one_line(
    redis_calls: list[tuple[Any, ...]],
) -> None:
    result = CliRunner().invoke(cli, ["enqueue", "shell", "echo hi", "--param", "shell"])
    assert result.exit_code == 2
    assert result.stderr == "horus: --param 'shell' has no '='; write --param NAME=VALUE\n"
    assert redis_calls == []


def test_enqueue_with_a_missing_payload_file_exits_2_with_one_line(
    redis_calls: list[tuple[Any, ...]], tmp_path: Path
) -> None:
    result = CliRunner().invoke(cli, ["enqueue", "shell", f"@{tmp_path}/nope.sh"])
    assert result.exit_code == 2
    assert result.stderr.startswith("horus: cannot read payload file")
    assert result.stderr.count("\n") == 1
    assert redis_calls == []


def test_enqueue_with_a_timeout_over_a_day_exits_2_naming_the_limit(
    redis_calls: list[tuple[Any, ...]],
) -> None:
    result = CliRunner().invoke(cli, ["enqueue", "shell", "echo hi", "--timeout", "86401"])
    assert result.exit_code == 2
    assert "timeout" in result.stderr
    assert "86400" in result.stderr
    assert redis_calls == []


def test_enqueue_when_the_store_is_unreachable_exits_5_naming_horus_up(
    redis_calls: list[tuple[Any, ...]],
) -> None:
    result = CliRunner().invoke(cli, ["enqueue", "shell", "echo hi"])
    assert result.exit_code == 5
    assert result.stderr.startswith("horus: cannot reach the broker")
    assert "`horus up`" in result.stderr
    assert result.stderr.count("\n") == 1
    assert redis_calls  # this time it did try


def test_enqueue_with_a_list_as_shell_param_exits_2_with_one_line(
    redis_calls: list[tuple[Any, ...]],
) -> None:
    result = CliRunner().invoke(cli, ["enqueue", "shell", "echo hi", "--param", 'shell:=["sh"]'])
    assert result.exit_code == 2, result.exception
    assert result.stderr.startswith("horus: invalid job for runner 'shell'")


def test_the_jobs_module_registers_enqueue_on_the_cli() -> None:
    assert cli.commands["enqueue"] is horus.cli.jobs.enqueue

"""Strict JSON: what ``json.loads`` lets through is refused here, in one-line messages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given

from horus.jsontext import MAX_DEPTH, canonical, check_tree, loads
from tests.strategies import json_values


def loads_refusal(text: str | bytes, fragment: str, what: str = "job") -> str:
    """The message of loads refusing ``text``; it must contain ``fragment``."""
    with pytest.raises(ValueError, match=re.escape(fragment)) as info:
        loads(text, what)
    message = str(info.value)
    assert "\n" not in message
    return message


def tree_refusal(value: Any, fragment: str, limit: int = MAX_DEPTH) -> str:
    """The message of check_tree refusing ``value``; it must contain ``fragment``."""
    with pytest.raises(ValueError, match=re.escape(fragment)) as info:
        check_tree(value, "job", limit)
    message = str(info.value)
    assert "\n" not in message
    return message


def nested_lists(depth: int) -> Any:
    """Lists nested ``depth`` levels, counting the innermost value as a level."""
    value: Any = 0
    for _ in range(depth - 1):
        value = [value]
    return value


# -- loads --------------------------------------------------------------------------------


def test_loads_reads_ordinary_json_from_text_and_bytes() -> None:
    text = '{"a": [1, 2.5, "é", null, true], "b": {"c": "d"}}'
    expected = {"a": [1, 2.5, "é", None, True], "b": {"c": "d"}}
    assert loads(text) == expected
    assert loads(text.encode("utf-8")) == expected


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param('{"a": 1, "a": 2}', "'a'", id="top level"),
        pytest.param('{"x": {"timeout": 1, "timeout": 999}}', "'timeout'", id="nested"),
        pytest.param('[{"k": 1}, {"k": 2, "k": 3}]', "'k'", id="in a list"),
        pytest.param('{"\\u0061": 1, "a": 2}', "'a'", id="escaped spelling"),
    ],
)
def test_loads_refuses_duplicate_keys(text: str, key: str) -> None:
    loads_refusal(text, f"duplicate key {key}; give each key once")


def test_loads_accepts_the_same_key_in_different_objects() -> None:
    assert loads('[{"k": 1}, {"k": 2}]') == [{"k": 1}, {"k": 2}]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_loads_refuses_nan_and_infinity(constant: str) -> None:
    loads_refusal(f'{{"x": {constant}}}', f"{constant} is not JSON; use a number or null")


@pytest.mark.parametrize("number", ["1e999", "-1e999"])
def test_loads_refuses_numbers_that_would_be_infinity(number: str) -> None:
    loads_refusal(f'{{"x": {number}}}', "too large for a number")


@pytest.mark.parametrize(
    ("data", "at"),
    [
        pytest.param(b'{"a": "\xff"}', 7, id="0xff"),
        pytest.param(b'{"a": "\xc3"}', 7, id="truncated sequence"),
        pytest.param(b'{"a": "\xed\xa0\x80"}', 7, id="encoded surrogate"),
        pytest.param(b"\xc0\xaf", 0, id="overlong"),
    ],
)
def test_loads_refuses_bytes_that_are_not_utf8(data: bytes, at: int) -> None:
    message = loads_refusal(data, "is not valid UTF-8", what="policy")
    assert message == f"policy is not valid UTF-8 (byte {at}); send UTF-8"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 100_000, id="lists"),
        pytest.param('{"a":' * 100_000, id="objects"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="closed lists"),
    ],
)
def test_loads_refuses_extremely_deep_nesting(text: str) -> None:
    assert loads_refusal(text, "nests too deeply") == "job nests too deeply; flatten it"


@pytest.mark.parametrize("text", ["{not json", "", "[1,]", "{'a': 1}", '{"a": 1} x'])
def test_loads_refuses_text_that_is_not_json(text: str) -> None:
    assert loads_refusal(text, "is not JSON", what="request").startswith("request is not JSON (")


# -- check_tree ---------------------------------------------------------------------------


def test_check_tree_accepts_clean_values() -> None:
    check_tree({"a": [1, 2.5, None, True, "é 😀"], "b": {"c": ("d",)}})
    check_tree("plain")
    check_tree(None)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        pytest.param("a\x00b", "job", id="top-level string"),
        pytest.param({"payload": "echo\x00"}, "job.payload", id="value"),
        pytest.param({"env": {"A": "x\x00"}}, "job.env.A", id="nested value"),
        pytest.param({"xs": ["ok", "b\x00d"]}, "job.xs[1]", id="in a list"),
        pytest.param({"k\x00": 1}, "a key in job", id="key"),
        pytest.param({"p": {"k\x00": 1}}, "a key in job.p", id="nested key"),
    ],
)
def test_check_tree_refuses_nul_bytes_naming_where(value: Any, where: str) -> None:
    message = tree_refusal(value, "a NUL byte is not allowed; remove it")
    assert message.startswith(f"{where}: ")


@pytest.mark.parametrize(
    ("value", "where"),
    [
        pytest.param({"payload": "\ud800"}, "job.payload", id="value"),
        pytest.param({"xs": ["a\udfffb"]}, "job.xs[0]", id="in a list"),
        pytest.param({"\udc80": 1}, "a key in job", id="key"),
        pytest.param({"p": {"x\ud83d": 1}}, "a key in job.p", id="nested key"),
    ],
)
def test_check_tree_refuses_lone_surrogates_naming_where(value: Any, where: str) -> None:
    message = tree_refusal(value, "invalid UTF-8 (a lone surrogate); send valid UTF-8 text")
    assert message.startswith(f"{where}: ")


def test_lone_surrogates_that_loads_lets_through_are_caught_by_check_tree() -> None:
    value = loads('{"a": "\\ud800"}')  # valid JSON escape, not valid text
    tree_refusal(value, "lone surrogate")


def test_check_tree_accepts_nesting_up_to_the_limit() -> None:
    check_tree(nested_lists(MAX_DEPTH))
    check_tree(nested_lists(5), limit=5)


@pytest.mark.parametrize(
    ("value", "limit"),
    [
        pytest.param(nested_lists(MAX_DEPTH + 1), MAX_DEPTH, id="lists past the default"),
        pytest.param({"a": {"b": {"c": 1}}}, 3, id="objects"),
        pytest.param(nested_lists(6), 5, id="lists past a given limit"),
        pytest.param(loads("[" * 500 + "]" * 500), MAX_DEPTH, id="parsed"),
    ],
)
def test_check_tree_refuses_nesting_past_the_limit(value: Any, limit: int) -> None:
    tree_refusal(value, f"nests deeper than {limit} levels; flatten it", limit=limit)


def test_check_tree_names_where_the_nesting_goes_too_deep() -> None:
    message = tree_refusal({"params": {"a": {"b": 1}}}, "nests deeper", limit=3)
    assert message.startswith("job.params.a.b: ")


# -- canonical ----------------------------------------------------------------------------


def test_canonical_is_sorted_compact_utf8() -> None:
    value = {"b": [1, 2.5, None], "a": {"z": "é", "y": True}}
    assert canonical(value) == b'{"a":{"y":true,"z":"\xc3\xa9"},"b":[1,2.5,null]}'


def test_canonical_does_not_depend_on_key_order() -> None:
    one = {"x": 1, "y": {"b": 2, "a": 1}, "é": []}
    other = {"é": [], "y": {"a": 1, "b": 2}, "x": 1}
    assert list(one) != list(other)
    assert canonical(one) == canonical(other)


def test_canonical_refuses_nan() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        canonical({"x": float("nan")})


@given(json_values)
def test_canonical_text_parses_back_to_the_same_canonical_text(value: Any) -> None:
    again = loads(canonical(value))
    check_tree(again)
    assert canonical(again) == canonical(value)

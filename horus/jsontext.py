"""Strict JSON: what a hostile message could smuggle past ``json.loads`` is refused here.

``json.loads`` keeps the last of two equal keys, accepts ``NaN``, and turns ``"\\ud800"``
into a string that is not valid UTF-8. A job read with :func:`loads` has none of these, and
:func:`check_tree` refuses NUL bytes, lone surrogates and deep nesting in any value.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: the deepest nesting a whole job may have (its params may nest 32 levels)
MAX_DEPTH = 40


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key[:60]!r}; give each key once")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON; use a number or null")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is too large for a number; use a smaller one")
    return value


def loads(text: str | bytes, what: str = "job") -> Any:
    """Parse JSON text, refusing duplicate keys, NaN/Infinity, invalid UTF-8 and nesting
    too deep for the parser; :class:`ValueError` names the problem. Check the strings and
    the depth of what it returns with :func:`check_tree`."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{what} is not valid UTF-8 (byte {exc.start}); send UTF-8") from None
    try:
        value = json.loads(
            text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float
        )
    except RecursionError:
        raise ValueError(f"{what} nests too deeply; flatten it") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not JSON ({exc})") from None
    return value


def _check_str(value: str, where: str) -> None:
    if "\x00" in value:
        raise ValueError(f"{where}: a NUL byte is not allowed; remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{where}: invalid UTF-8 (a lone surrogate); send valid UTF-8 text"
        ) from None


def check_tree(value: Any, what: str = "job", limit: int = MAX_DEPTH) -> None:
    """Refuse keys that are not strings, NUL bytes and lone surrogates in any key or
    string, and nesting past ``limit``; the message names where."""
    stack: list[tuple[Any, int, str]] = [(value, 1, what)]
    while stack:
        item, depth, where = stack.pop()
        if depth > limit:
            raise ValueError(
                f"{where[:80] or 'value'}: nests deeper than {limit} levels; flatten it"
            )
        if isinstance(item, str):
            _check_str(item, where or "a value")
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise ValueError(f"{where or 'the object'}: key {key!r} is not a string")
                _check_str(key, f"a key in {where or 'the object'}")
                name = f"{where}.{str(key)[:40]}" if where else str(key)[:40]
                stack.append((inner, depth + 1, name))
        elif isinstance(item, list | tuple):
            stack.extend((inner, depth + 1, f"{where}[{i}]") for i, inner in enumerate(item))


def canonical(value: Any) -> bytes:
    """The one byte form of a JSON value: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")

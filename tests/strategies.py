"""Hypothesis strategies the tests share."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: characters a job may hold anywhere: no NUL, no lone surrogates
clean = st.characters(exclude_characters="\x00", codec="utf-8")

#: any JSON value a job may carry (no NaN or infinity, no forbidden characters)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(clean, max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(clean), inner, max_size=3),
    max_leaves=8,
)

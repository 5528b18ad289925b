"""The lifecycle's rules, each held by a direct test against the real Lua scripts on the
embedded Redis (and the sweeper and the guard where a rule lives there).

``python -m tests.mutations`` removes each guard in turn and fails unless one of these
tests fails."""

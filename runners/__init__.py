"""First-party Horus runners, installed as the ``horus_runners`` package.

Each registers under the ``horus.runners`` entry-point group exactly as a third-party runner
would (see ``pyproject.toml``).
"""

"""The child interpreter of :meth:`horus.runner.RunContext.call` (the python runner's, and any
runner's library call): reads the call from stdin, writes the JSON result. Run by path with
``python -I``, it imports nothing but the standard library.

Prints of the called function go to stderr; stdout carries only the result. It starts in
a few milliseconds: what only some calls need (asyncio for an async function, traceback for
an error) is imported only by those calls.

``--preload a,b --path P`` imports modules ``a`` and ``b`` (found on the search path ``P``,
``os.pathsep``-separated) before it reads the call, so that a child started ahead of its job
(a warm start) has them already; one that fails to import is left for the call to meet.
The call's ``env`` becomes the whole environment before anything of the call is imported.

Every python job pays this interpreter's start, so it imports as little as it can: not
``typing`` (8 ms here, annotations only), and not ``site`` (``-S``, 6 ms): the search path
is the worker's, which the request carries (``sys_path``), and the ``exit``/``quit`` and
``help`` builtins that ``site`` would add are set here.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy only: typing costs every job's start some 8 ms
    from typing import Any


def _builtins() -> None:
    """The builtins ``site`` adds, which code written for a normal interpreter may use."""
    import _sitebuiltins

    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    builtins.help = _sitebuiltins._Helper()


def call(target: str, params: dict[str, Any]) -> Any:
    """Import ``module:attr.path`` and call it with ``params``; await it if it is async."""
    module_name, _, attr_path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    result = obj(**params)
    if hasattr(result, "__await__") or hasattr(result, "gi_code"):  # perhaps awaitable
        import inspect

        if inspect.isawaitable(result):
            import asyncio

            result = asyncio.run(_wait(result))
    return result


async def _wait(awaitable: Any) -> Any:
    return await awaitable


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback from the job's own code on: Horus's frames are left out."""
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def preload(argv: list[str]) -> None:
    """Import the modules ``--preload`` names, on the ``--path`` search path."""
    options = dict(zip(argv[::2], argv[1::2], strict=False))
    names = [n for n in options.get("--preload", "").split(",") if n]
    if not names:
        return
    path = [p for p in options.get("--path", "").split(os.pathsep) if p]
    sys.path[:0] = [p for p in path if p not in sys.path]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # the call imports it again and reports it
            continue


def main() -> int:
    """Run the requested call; exit 0 on success, 1 on any error (traceback on stderr)."""
    _builtins()
    preload(sys.argv[1:])
    request = json.loads(sys.stdin.buffer.read())
    os.environ.clear()  # the job's environment, whatever this process started with
    os.environ.update(request["env"])
    sys.path[:0] = [p for p in request["sys_path"] if p not in sys.path]
    result_stream = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        result = call(request["target"], request["params"])
        text = json.dumps(result, allow_nan=False)
    except TypeError as exc:
        if "JSON serializable" in str(exc):
            print(
                f"the return value is not JSON: {exc}; return dicts, lists, str, numbers",
                file=sys.stderr,
            )
        else:
            _print_user_traceback(exc)
        return 1
    except BaseException as exc:
        _print_user_traceback(exc)
        return 1
    result_stream.write(text)
    result_stream.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

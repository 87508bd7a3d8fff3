"""How a jfjoch console program runs a click command: one-line errors, exit codes 0 / 1 / 2 (SPEC).

Both `jfjoch_process` and `jfjoch_scale` go through :func:`run_command`, so they report errors, usage
mistakes and interruptions (Ctrl-C, SIGTERM, SIGHUP) the same way. A traceback is printed only with -v.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

import click

from ..errors import JfjochError

__all__ = ["run_command", "terminate_as_interrupt"]


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGHUP) end the run like Ctrl-C: the temporary output is removed, exit code 1."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    saved = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            saved[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, h in saved.items():
            signal.signal(sig, h)


def run_command(command: click.Command, prog: str, argv: list[str] | None = None) -> int:
    """Run `command` with `argv` (default: sys.argv[1:]) as program `prog`; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
    try:
        with terminate_as_interrupt():
            command.main(args=args, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code or 0)
    except (click.exceptions.Abort, KeyboardInterrupt):
        print(f"{prog}: interrupted", file=sys.stderr)
        return 1
    except click.UsageError as e:
        print(f"{prog}: error: {e.format_message()}", file=sys.stderr)
        return 2
    except JfjochError as e:
        if verbose:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # never a traceback unless -v
        if verbose:
            raise
        print(f"{prog}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0

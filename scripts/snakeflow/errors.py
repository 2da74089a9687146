"""Errors a user can cause, reported as one clear line instead of a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """Something the user can fix (a URL, a CSV, a config value); the message says what."""


def first_line(exc: BaseException) -> str:
    """The first line of what ``exc`` says, or its type's name if it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Terminated(BaseException):
    """The job was told to stop: SIGTERM from ``scancel``, a time limit or Snakemake."""


def run_main(main: Callable[[], None]) -> None:
    """Run a step's ``main()``; turn a :class:`UserError` into one line and exit status 1.

    The line goes to the job's log (``sys.stderr`` is redirected there) and to the
    terminal, so the user sees what to fix without opening the log. A job that ends (done,
    a user error, SIGTERM) ends at once, without interpreter finalization: everything it
    wrote is closed by then (outputs are renamed into place, the record is closed), and
    tearing down scikit-learn, MLflow and matplotlib costs 0.5-1.3 s a job. An unexpected
    exception ends the usual way, with its traceback.
    """
    try:
        main()
    except Terminated as exc:
        print(f"snakeflow: {exc}", file=sys.stderr, flush=True)
        end_now(143)
    except UserError as exc:
        line = f"snakeflow error: {exc}"
        print(line, file=sys.stderr, flush=True)
        if sys.stderr is not sys.__stderr__ and sys.__stderr__ is not None:
            print(line, file=sys.__stderr__, flush=True)
        end_now(1)
    end_now(0)


def end_now(status: int) -> None:
    """Flush what is buffered and end the process with ``status``, skipping finalization."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed, or a broken pipe: nothing more to write
            pass
    os._exit(status)

"""Errors a user can cause, reported as one clear line instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """Something the user can fix (a URL, a CSV, a config value); the message says what."""


class Terminated(BaseException):
    """The job was told to stop: SIGTERM from ``scancel``, a time limit or Snakemake."""


def run_main(main: Callable[[], None]) -> None:
    """Run a step's ``main()``; turn a :class:`UserError` into one line and exit status 1.

    The line goes to the job's log (``sys.stderr`` is redirected there) and to the
    terminal, so the user sees what to fix without opening the log.
    """
    try:
        main()
    except Terminated as exc:
        print(f"snakeflow: {exc}", file=sys.stderr, flush=True)
        sys.exit(143)
    except UserError as exc:
        line = f"snakeflow error: {exc}"
        print(line, file=sys.stderr, flush=True)
        if sys.stderr is not sys.__stderr__ and sys.__stderr__ is not None:
            print(line, file=sys.__stderr__, flush=True)
        sys.exit(1)

"""The one thread that talks to the tracking store, in order, retrying while it is down.

Work items are small tuples put on a queue by :mod:`.events`; a finished job's item carries
its whole spool entry, so nothing is read back from disk while the invocation runs. A store
that does not answer (connection refused, 5xx, a locked database) is retried with backoff;
a request the store answers and refuses as invalid is never retried: it is reported as a
warning and the queue moves on. :meth:`Writer.drain` waits as long as entries are being
logged, and gives up only after ``timeout`` seconds without progress.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import spool
from .channel import MESSAGE_PREFIX


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


class Writer:
    def __init__(self, connect: Callable[[], Any], spool_dir: Path):
        self.connect = connect  # -> MlflowClient; called on the writer thread when needed
        self.spool = spool_dir
        self.queue: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.left = 0  # spool entries queued and not logged yet
        self.logged = 0
        self.warned = False
        self.jobs = None  # the JobWriter, made on the writer thread
        self.current: str | None = None  # this invocation's run: its entries are queued

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="mlflow-writer", daemon=True)
            self.thread.start()

    def put(self, *item: Any, entry: bool = False) -> None:
        if entry:
            self.left += 1
        self.start()
        self.queue.put(item)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        delay = 1.0
        while True:
            item = self.queue.get()
            if item is None:
                return
            while True:
                try:
                    self._do(item)
                    delay = 1.0
                    break
                except Exception as exc:
                    from .store import refused

                    if refused(exc):
                        print(
                            f"{MESSAGE_PREFIX}: warning: the store refused {item[0]!r} "
                            f"({first_line(exc)}); moving on",
                            file=sys.stderr,
                            flush=True,
                        )
                        self._done(item)
                        break
                    if not self.warned:
                        print(
                            f"{MESSAGE_PREFIX}: warning: MLflow tracking store not answering "
                            f"({first_line(exc)}); job records are kept in {self.spool} and "
                            "logged when it answers",
                            file=sys.stderr,
                            flush=True,
                        )
                        self.warned = True
                    if self.stop.wait(delay):
                        return
                    delay = min(delay * 2, 30.0)

    def _done(self, item: tuple) -> None:
        if item[0] in ("finish", "end"):
            spool.done(self.spool, item[1]["key"])
            self.left -= 1
            self.logged += 1

    def _do(self, item: tuple) -> None:
        from . import invocation
        from .jobs import JobWriter

        client = self.connect()
        if self.jobs is None:
            self.jobs = JobWriter(client)
        kind = item[0]
        if kind == "start":
            self.jobs.open(item[1])
        elif kind == "tag":
            self.jobs.tag(item[1], item[2])
        elif kind == "config":
            invocation.log_config(client, item[1], item[2])
        elif kind == "finish":
            self.jobs.log(item[1])
        elif kind == "end":
            invocation.end(client, item[1]["parent"], item[1]["status"])
        elif kind == "replay":
            self._replay(client)
            return
        elif kind == "reap":
            invocation.reap_orphans(client, item[1])
        self._done(item)

    def _replay(self, client) -> None:
        """Log what earlier invocations left in the spool: one read of the directory.
        Entries of this invocation are on the queue already."""
        from . import invocation

        for entry in spool.pending(self.spool):
            if self.current is not None and entry.get("parent") == self.current:
                continue
            if entry.get("kind") == "invocation_end":
                invocation.end(client, entry["parent"], entry["status"])
            else:
                self.jobs.log(entry)
            spool.done(self.spool, entry["key"])
            self.logged += 1

    # ------------------------------------------------------------------ the end

    def drain(self, timeout: float, uri: str | None) -> None:
        """Wait for the queue; say how much is left every few seconds; give up only after
        ``timeout`` seconds in which nothing was logged."""
        if self.thread is None:
            return
        self.queue.put(None)
        last, seen, said = time.monotonic(), self.logged, time.monotonic()
        while self.thread.is_alive():
            self.thread.join(0.2)
            now = time.monotonic()
            if self.logged != seen:
                last, seen = now, self.logged
            if now - last > timeout:
                break
            if now - said >= 5 and self.left > 0:
                print(
                    f"{MESSAGE_PREFIX}: {self.left} job record(s) left to log",
                    file=sys.stderr,
                    flush=True,
                )
                said = now
        if self.thread.is_alive():
            self.stop.set()
            print(
                f"{MESSAGE_PREFIX}: warning: MLflow tracking store {uri} did not answer "
                f"within {timeout:.0f} s; {max(self.left, 0)} job record(s) kept in "
                f"{self.spool} are logged by the next snakemake invocation in this directory",
                file=sys.stderr,
                flush=True,
            )
            self.thread.join(5)

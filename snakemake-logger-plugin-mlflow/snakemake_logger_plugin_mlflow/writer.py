"""The threads that talk to the tracking store, retrying while it is down.

They run in the writer process (:mod:`.child`). Work items are small tuples that
:mod:`.events` sends there; a finished job's item carries its whole spool entry, so nothing
is read back from disk while the invocation runs.

Items go to *lanes*: one thread and queue each. A SQLite store has one lane (one writer at
a time is what SQLite allows); an HTTP tracking server has :data:`HTTP_LANES`, so that one
job's round trips (and its artifact uploads) overlap another's. A job's items (its start,
tags and end) always go to the same lane, in order; an item of the whole invocation (its
config, the replay of an earlier invocation's entries, the reaping of orphans, its end)
runs on lane 0 after every lane has done what was put before it, so the invocation's run
ends after all of its jobs' runs.

A store that does not answer (connection refused, 5xx, a locked database) is retried with
backoff; a request the store answers and refuses as invalid is never retried: it is
reported as a warning and the queue moves on. :meth:`Writer.drain` waits as long as entries
are being logged, and gives up only after ``timeout`` seconds without progress.
"""

from __future__ import annotations

import queue
import sqlite3
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import spool
from .channel import MESSAGE_PREFIX
from .sqljobs import Busy, Ledger, SqlJobs

HTTP_LANES = 4  # writer threads for an HTTP tracking server
JOB_ITEMS = ("start", "tag", "finish")  # items of one job: (kind, entry or key, ...)
MAX_BATCH = 500  # job items written in one transaction, at most
# How long a SQLite lane waits for more job items before it writes a batch: a commit costs
# a few milliseconds of disk sync whatever it holds, so a run appears (or ends) up to this
# much later. Both are safe on disk meanwhile: a job's spool entry is written when it
# starts (if snakemake dies, the next invocation makes its run and marks it KILLED) and
# replaced by its end.
LINGER = 0.5


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


def lanes_for(uri: str) -> int:
    """How many writer threads the store at ``uri`` takes."""
    return HTTP_LANES if uri.startswith(("http://", "https://")) else 1


class _Barrier:
    """Set by every other lane once it has done what was put before an invocation item."""

    def __init__(self, count: int):
        self.left = count
        self.cond = threading.Condition()

    def reached(self) -> None:
        with self.cond:
            self.left -= 1
            self.cond.notify_all()

    def wait(self, stop: threading.Event) -> bool:
        with self.cond:
            while self.left > 0:
                if stop.is_set():
                    return False
                self.cond.wait(0.2)
        return True


class Writer:
    def __init__(
        self, connect: Callable[[], Any], spool_dir: Path, load: Callable[[], None] = lambda: None
    ):
        self.connect = connect  # -> MlflowClient (imports MLflow); called only when needed
        # imports MLflow, once: every module of this package that imports it is imported
        # after this (two threads importing MLflow at once break its protobuf registry)
        self.load = load
        self.spool = spool_dir
        self.lanes = 1
        self.queues: list[queue.Queue] = []
        self.threads: list[threading.Thread] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.left = 0  # spool entries queued and not logged yet
        self.logged = 0
        self.job_runs = 0  # job entries of this invocation logged
        self.busy = 0.0  # seconds the lanes spent on this invocation's job items
        self.cpu = 0.0  # of which the lanes' own CPU time (not waiting for the store or GIL)
        self.warned = False
        self.jobs = None  # the JobWriter (MLflow's client API), made when first needed
        self.ledger = Ledger()  # the runs the writers know (SqlJobs' and the JobWriter's)
        self.sql: SqlJobs | None = None  # a SQLite store written without MLflow
        self.current: str | None = None  # this invocation's run: its entries are queued

    def use_sql(self, db: str) -> None:
        """Write what :mod:`.sqljobs` can straight into the SQLite database ``db`` (a store
        of a revision it was shown to write as MLflow does)."""
        self.sql = SqlJobs(db, self.ledger)

    def use_lanes(self, count: int) -> None:
        """Write with ``count`` threads (before this invocation's first job item)."""
        self.lanes = max(self.lanes, count)

    def _lane(self, index: int) -> queue.Queue:
        while len(self.queues) <= index:
            q: queue.Queue = queue.Queue()
            thread = threading.Thread(
                target=self._run, args=(q,), name=f"mlflow-writer-{len(self.queues)}", daemon=True
            )
            self.queues.append(q)
            self.threads.append(thread)
            thread.start()
        return self.queues[index]

    def put(self, *item: Any, entry: bool = False) -> None:
        if entry:
            with self.lock:
                self.left += 1
        if item[0] in JOB_ITEMS:
            key = item[1] if isinstance(item[1], str) else item[1]["key"]
            self._lane(zlib.crc32(key.encode()) % self.lanes).put(item)
            return
        lane0 = self._lane(0)
        others = self.queues[1:]
        if others:
            barrier = _Barrier(len(others))
            for q in others:
                q.put(("reached", barrier))
            lane0.put(("wait", barrier))
        lane0.put(item)

    # ------------------------------------------------------------------ the threads

    def _run(self, q: queue.Queue) -> None:
        held = None  # an item taken off the queue while gathering a batch
        while True:
            item, held = (held, None) if held is not None else (q.get(), None)
            if item is None:
                return
            if item[0] == "reached":
                item[1].reached()
                continue
            if item[0] == "wait":
                if not item[1].wait(self.stop):
                    return
                continue
            if item[0] not in JOB_ITEMS:
                if not self._attempt(item, lambda item=item: self._do(item)):
                    return
                continue
            batch = [item]  # the job items queued now: one transaction where the store allows
            bulk = self.sql is not None or (self.jobs is not None and self.jobs.bulk is not None)
            deadline = time.monotonic() + (LINGER if bulk else 0.0)
            while len(batch) < MAX_BATCH:
                wait = deadline - time.monotonic()
                try:
                    held = q.get(timeout=wait) if wait > 0 else q.get_nowait()
                except queue.Empty:
                    break
                if held is None or held[0] not in JOB_ITEMS:
                    break
                batch.append(held)
                held = None
            if not self._write(batch):
                return

    def _write(self, batch: list[tuple]) -> bool:
        """Job items: in bulk what can be, then the rest one by one. False if stopped."""
        begun, cpu = time.perf_counter(), time.thread_time()
        left: list[tuple] = []
        rest = [batch]  # what SqlJobs left (written once, even if MLflow's part is retried)

        def bulk() -> None:
            if self.sql is not None and rest[0] is batch:
                rest[0] = self.sql.write_many(batch)
            left[:] = self._jobs()[1].write_many(rest[0]) if rest[0] else []

        if not self._attempt(batch[0], bulk, on_refused=lambda: left.extend(batch)):
            return False
        for item in batch:
            if not any(item is x for x in left):
                self._done(item)
        for item in left:
            if not self._attempt(item, lambda item=item: self._do(item)):
                return False
        with self.lock:
            self.busy += time.perf_counter() - begun
            self.cpu += time.thread_time() - cpu
        return True

    def _attempt(self, item: tuple, work: Callable[[], None], on_refused=None) -> bool:
        """Run ``work`` until it succeeds, retrying while the store does not answer; False
        if the writer was stopped meanwhile. A request the store refuses is not retried:
        ``on_refused`` runs, else a warning is printed and ``item`` counts as done."""
        delay = 1.0
        while True:
            try:
                work()
                return True
            except Exception as exc:
                if isinstance(exc, OSError):  # a locked SQLite database (sqljobs.Busy), a socket
                    retry = True
                elif isinstance(exc, sqlite3.Error):  # not one sqljobs knows: MLflow says
                    retry = False
                else:  # raised by MLflow's code (or a defect)
                    self.load()
                    from .store import STORE_ERRORS, refused

                    retry = isinstance(exc, STORE_ERRORS) and not refused(exc)
                if not retry:  # refused, or a defect: move on
                    if on_refused is not None:
                        on_refused()
                        return True
                    print(
                        f"{MESSAGE_PREFIX}: warning: the store refused {item[0]!r} "
                        f"({first_line(exc)}); moving on",
                        file=sys.stderr,
                        flush=True,
                    )
                    self._done(item)
                    return True
                with self.lock:
                    warn, self.warned = not self.warned, True
                if warn:
                    print(
                        f"{MESSAGE_PREFIX}: warning: MLflow tracking store not answering "
                        f"({first_line(exc)}); job records are kept in {self.spool} and "
                        "logged when it answers",
                        file=sys.stderr,
                        flush=True,
                    )
                if self.stop.wait(delay):
                    return False
                delay = min(delay * 2, 30.0)

    def _done(self, item: tuple) -> None:
        if item[0] in ("finish", "end"):
            spool.done(self.spool, item[1]["key"])
            with self.lock:
                self.left -= 1
                self.logged += 1
                self.job_runs += item[0] == "finish"

    def _jobs(self):
        self.load()
        from .jobs import JobWriter

        client = self.connect()
        with self.lock:
            if self.jobs is None:
                self.jobs = JobWriter(client, self.ledger)
        return client, self.jobs

    def _direct(self, item: tuple) -> bool:
        """An invocation item written by SqlJobs; False if MLflow must write it."""
        kind = item[0]
        try:
            if kind == "config":
                return self.sql.log_config(item[1], item[2])
            if kind == "end":
                return self.sql.end(item[1]["parent"], item[1]["status"], self._stats())
            if kind == "reap":
                self.sql.reap(item[1])
                return True
        except Busy:
            raise
        except sqlite3.Error:
            return False
        return False

    def _stats(self) -> dict[str, float]:
        return {
            "job_runs": self.job_runs,
            "writer_seconds": self.busy,
            "writer_cpu_seconds": self.cpu,
        }

    def _do(self, item: tuple) -> None:
        kind = item[0]
        if kind == "replay":
            self._replay()
            return
        if self.sql is not None and kind in ("config", "end", "reap") and self._direct(item):
            self._done(item)
            return
        self.load()
        from . import invocation

        client, jobs = self._jobs()
        if kind == "start":
            jobs.open(item[1])
        elif kind == "tag":
            jobs.tag(item[1], item[2])
        elif kind == "config":
            invocation.log_config(client, item[1], item[2])
        elif kind == "finish":
            jobs.log(item[1])
        elif kind == "end":
            invocation.end(client, item[1]["parent"], item[1]["status"], self._stats())
        elif kind == "reap":
            invocation.reap_orphans(client, item[1])
        self._done(item)

    def _replay(self) -> None:
        """Log what earlier invocations left in the spool (through MLflow's client API): one
        read of the directory. Entries of this invocation are on the queue already."""
        earlier = [
            entry
            for entry in spool.pending(self.spool)
            if self.current is None or entry.get("parent") != self.current
        ]
        if not earlier:
            return
        self.load()
        from . import invocation

        client, jobs = self._jobs()
        for entry in earlier:
            if entry.get("kind") == "invocation_end":
                invocation.end(client, entry["parent"], entry["status"])
            elif "status" not in entry:  # started, never ended: reaped after the replay
                jobs.reopen(entry)
            else:
                jobs.log(entry)
            spool.done(self.spool, entry["key"])
            with self.lock:
                self.logged += 1

    # ------------------------------------------------------------------ the end

    def drain(self, timeout: float, uri: str | None, quiet: bool = False) -> None:
        """Wait for the queues; say how much is left every few seconds (unless ``quiet``:
        Snakemake's ``--quiet`` or ``--quiet progress``); give up only after ``timeout``
        seconds in which nothing was logged."""
        if not self.threads:
            return
        for q in self.queues:
            q.put(None)
        last, seen, said = time.monotonic(), self.logged, time.monotonic()
        while any(t.is_alive() for t in self.threads):
            for thread in self.threads:
                thread.join(0.2 / len(self.threads))
            now = time.monotonic()
            if self.logged != seen:
                last, seen = now, self.logged
            if now - last > timeout:
                break
            if now - said >= 5 and self.left > 0 and not quiet:
                print(
                    f"{MESSAGE_PREFIX}: {self.left} job record(s) left to log",
                    file=sys.stderr,
                    flush=True,
                )
                said = now
        if any(t.is_alive() for t in self.threads):
            self.stop.set()
            print(
                f"{MESSAGE_PREFIX}: warning: MLflow tracking store {uri} did not answer "
                f"within {timeout:.0f} s; {max(self.left, 0)} job record(s) kept in "
                f"{self.spool} are logged by the next snakemake invocation in this directory",
                file=sys.stderr,
                flush=True,
            )
            for thread in self.threads:
                thread.join(5)

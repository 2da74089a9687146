"""The writer in a process of its own, so that tracking never takes Snakemake's CPU.

Snakemake's scheduler runs on one thread of the snakemake process, and on a workflow of
small jobs that thread is what limits the pace; a writer thread in the same process shares
its GIL, so every millisecond the writer spends translating, validating and committing is
taken from the scheduler. The snakemake process therefore only writes each job's entry to
the spool (before anything is sent) and passes small work items down a pipe to this child,
which runs the :class:`~.writer.Writer` (its lanes, its retries, its drain) on the other
core; unless the invocation's run was written straight into a SQLite store
(:mod:`.direct`), the child first checks the store and makes it (snakemake waits for its
reply). The snakemake process never imports MLflow; on a SQLite store that :mod:`.sqljobs`
writes, a workflow's usual runs need none, and the child imports it at the lowest CPU
priority, for the jobs that may need it (logged models), never waiting for it otherwise.

Failure behaviour is the thread's: the child ignores Ctrl-C (Snakemake handles it and then
closes the pipe, so the child drains); it dies with the snakemake process (``kill -9`` of
snakemake leaves what a thread would have left: the spool, replayed by the next
invocation); at the end of the invocation snakemake closes the pipe and waits while the
child drains, which gives up only after the drain timeout without progress.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from .channel import MESSAGE_PREFIX

# What the child runs: the plugin's own package first on its path, whatever the environment.
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from snakemake_logger_plugin_mlflow.child import main; main()"
)


class WriterProcess:
    """The :class:`~.writer.Writer`'s interface, in a child process.

    :meth:`spawn` starts the process, which begins importing MLflow at once (in the
    background if the store, the plugin's setting or else MLflow's variable, is one that
    :mod:`.sqljobs` is expected to write); :meth:`start`
    (which every call below makes) spawns it if need be and tells it where to work: the
    working directory, the environment, the store, the spool. Spawned as Snakemake starts
    (before it parses the Snakefile and changes to the workflow's directory), the child's
    import overlaps Snakemake's own start-up; a child never told where to work (a no-op)
    exits when the pipe closes.
    """

    def __init__(self, tracking_uri: str | None, experiment: str | None, spool_dir: Path):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.spool = spool_dir
        self.proc: subprocess.Popen | None = None
        self.working = False  # told where to work

    def spawn(self) -> None:
        """Start the child process if it is not running yet."""
        if self.proc is None:
            package = str(Path(__file__).resolve().parent.parent)
            self.proc = subprocess.Popen(
                # -P: no import from the working directory, whatever it holds
                [sys.executable, "-P", "-c", _BOOT, package, self.tracking_uri or ""],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,  # its replies (what it prints goes to /dev/null)
                close_fds=True,
            )

    def start(self) -> None:
        """Spawn the child if need be and tell it where to work (once)."""
        self.spawn()
        if not self.working:
            self.working = True
            where = (str(self.spool), os.getcwd(), dict(os.environ))
            setup = (self.tracking_uri, self.experiment, *where)
            self._send(("setup", *setup))

    def _send(self, message: tuple) -> None:
        pipe = self.proc.stdin
        try:
            pickle.dump(message, pipe, protocol=pickle.HIGHEST_PROTOCOL)
            pipe.flush()
        except (BrokenPipeError, OSError):  # the child died: the spool keeps the entries
            pass

    def open_parent(self, **request: Any) -> dict[str, Any]:
        """Connect to the store and create the invocation's run (the child imports MLflow,
        this process does not); ``{"uri", "experiment", "experiment_id", "parent"}``, or
        ``{"error": one line}`` if the store is unusable."""
        self.start()
        self._send(("open", request))
        try:
            return pickle.load(self.proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            code = self.proc.poll()
            return {"error": f"the writer process ended (status {code}) before opening the run"}

    def settings(self, **values: Any) -> None:
        """Pass ``values`` (``current``, ``lanes``) to the child's writer."""
        self.start()
        self._send(("set", values))

    def put(self, *item: Any, entry: bool = False) -> None:
        self.start()
        self._send(("put", item, entry))

    def drain(self, timeout: float, uri: str | None, quiet: bool = False) -> None:
        """Close the pipe and wait while the child logs what is queued."""
        if self.proc is None:
            return
        if self.working:
            self._send(("drain", timeout, uri, quiet))
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        code = self.proc.wait()
        if code not in (0, 3):
            print(
                f"{MESSAGE_PREFIX}: warning: the writer process ended with status {code}; "
                f"job records are kept in {self.spool} and logged by the next snakemake "
                "invocation in this directory",
                file=sys.stderr,
                flush=True,
            )


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (snakemake) dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before prctl
        os._exit(1)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Snakemake handles Ctrl-C, then closes
    _die_with_parent()
    from .writer import Writer  # no MLflow: that is imported once, when needed

    importing = threading.Lock()  # two threads importing MLflow at once break its protobuf

    background: list[int] = []  # the native id of a thread importing at low priority

    def load() -> None:
        """Import MLflow and the modules using it (once; others wait for it). A thread that
        needs it while the background import runs asks for that import's priority back
        (allowed where the user may raise priorities: else it waits at nice 19)."""
        if background and not importing.acquire(blocking=False):
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, background[0], 0)
        elif background:
            importing.release()
        with importing:
            from . import invocation, jobs, store  # noqa: F401

    def load_in_background() -> None:
        """load() at the lowest CPU priority: on a store that sqljobs writes, MLflow is
        needed only by some jobs (logged models) and never waited for otherwise, so the
        import takes no CPU from snakemake or the jobs (Linux: the thread's own nice)."""
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            background.append(threading.get_native_id())
        with contextlib.suppress(Exception):  # a job that needs MLflow says what is wrong
            load()

    from .direct import writes_jobs

    # MLflow is imported meanwhile, in a thread (this one reads the pipe, so that snakemake
    # never waits on a full pipe): at once if it will be needed, else in the background
    warm = load_in_background if writes_jobs(sys.argv[2] or None) else load
    threading.Thread(target=warm, name="mlflow-import", daemon=True).start()
    replies = os.fdopen(os.dup(1), "wb")  # stdout is for replies; prints go to /dev/null
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    pipe = sys.stdin.buffer
    try:
        _, tracking_uri, experiment, spool_dir, cwd, environ = pickle.load(pipe)
    except (EOFError, pickle.UnpicklingError, OSError):  # nothing to do (a no-op)
        os._exit(0)
    # snakemake's, now: it changes to the workflow's directory after spawning this, and a
    # Snakefile may set MLflow's variables (MLFLOW_EXPERIMENT_NAME, credentials) as it is parsed
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environ)
    session: dict[str, Any] = {}  # uri, experiment name; client and experiment id once made

    def connect():
        """The store's client, made once (by ``open_parent``, or by the writer's first item
        when an invocation without jobs replays the spool)."""
        load()
        from . import direct, store

        if "client" not in session:
            session["uri"] = direct.resolve_uri(tracking_uri)
            session["experiment"] = direct.experiment_name(experiment)
            connected = store.connect(session["uri"], session["experiment"])
            session["client"], session["experiment_id"] = connected
        return session["client"]

    def open_parent(request: dict[str, Any]) -> dict[str, Any]:
        load()
        from . import invocation, store

        try:
            parent = invocation.start(connect(), session["experiment_id"], **request)
        except store.StoreError as exc:
            return {"error": str(exc)}
        except store.STORE_ERRORS as exc:
            return {"error": str(store.error(exc, session["uri"]))}
        keys = ("uri", "experiment", "experiment_id")
        return {k: session[k] for k in keys} | {"parent": parent}

    writer = Writer(connect, Path(spool_dir), load=load)
    timeout, uri, quiet = 120.0, None, False
    while True:
        try:
            message = pickle.load(pipe)
        except (EOFError, pickle.UnpicklingError, OSError):
            break
        if message[0] == "open":
            pickle.dump(open_parent(message[1]), replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
        elif message[0] == "put":
            writer.put(*message[1], entry=message[2])
        elif message[0] == "set":
            values = message[1]
            if "current" in values:
                writer.current = values["current"]
            if "sql" in values:
                writer.use_sql(values["sql"])
            if "lanes" in values:
                writer.use_lanes(values["lanes"])
        elif message[0] == "drain":
            timeout, uri, quiet = message[1:4]
    writer.drain(timeout, uri, quiet)
    sys.stderr.flush()
    os._exit(3 if writer.left > 0 else 0)  # no interpreter finalization: nothing is left


if __name__ == "__main__":
    main()

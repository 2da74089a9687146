"""Atomic outputs and content digests."""

from __future__ import annotations

import glob
import hashlib
import os
import queue
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHUNK = 1 << 20


def partial_path(dst: Path) -> Path:
    """The temporary sibling of ``dst`` that a step writes before renaming it into place."""
    return dst.with_name(f".{dst.name}.{os.getpid()}.partial")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(dst: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; rename it to ``dst`` only if the block succeeds.

    The temporary lives in the same directory (so the rename is atomic) under a hidden name
    that no rule produces, so a killed or failed job never leaves a file that looks complete.
    Works for files and for directories (e.g. a saved MLflow model). No fsync: a killed job
    is covered by the rename; after a power loss, Snakemake's incomplete-job records and
    the filesystem's rename ordering (ext4's auto_da_alloc, XFS) decide.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(dst)
    for stale in dst.parent.glob(f".{glob.escape(dst.name)}.*.partial"):
        _remove(stale)  # left by a job that was killed; this job owns dst now
    try:
        yield tmp
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(tmp, dst)
    except BaseException:
        _remove(tmp)
        raise


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes. (The digests of outputs, directories included, are the
    logger plugin's: ``snakemake_logger_plugin_mlflow.jobs.sha256_path``.)"""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class BackgroundSha256:
    """A sha256 computed on a second thread while the caller receives and writes the data.

    hashlib releases the GIL for large buffers, so hashing a stream this way overlaps with
    reading it from the network and writing it to disk instead of adding to them (about
    0.5 s per GB on this project's 2-core reference machine). At most ``depth`` chunks wait
    in the queue, so memory stays bounded. Use as a context manager: leaving the block
    stops the thread, also on error.
    """

    def __init__(self, depth: int = 4):
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(depth)
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        """The digest of everything passed to ``update`` (waits for the thread)."""
        self.close()
        return self._hash.hexdigest()

    def __enter__(self) -> BackgroundSha256:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def size_bytes(path: str | os.PathLike[str]) -> int:
    """Size of a file, or the total size of a directory's files."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size

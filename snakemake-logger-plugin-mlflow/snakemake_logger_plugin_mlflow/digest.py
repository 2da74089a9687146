"""Digests and sizes of a job's outputs, taken when the job ends. Standard library only."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

CHUNK = 1 << 20


def hashable(path: str | os.PathLike[str]) -> bool:
    """A regular file or a directory: not a pipe(), a socket of a service() or missing."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def sha256_path(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, or of a directory's files (relative names and contents)."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(child.relative_to(path).as_posix().encode() + b"\0")
            digest.update(sha256_path(child).encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def size(path: str | os.PathLike[str]) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def describe(paths: list[str]) -> tuple[dict[str, str], dict[str, int]]:
    """The sha256 and the size in bytes of each path that can be read whole."""
    digests, sizes = {}, {}
    for path in paths:
        if hashable(path):
            try:
                digests[path], sizes[path] = sha256_path(path), size(path)
            except OSError:
                continue
    return digests, sizes

"""Job entries waiting to be logged: one JSON file per job, kept until its end is logged.

Standard library only. An entry is written (atomically) by the snakemake process when a job
starts, replaced by the job's whole entry when it ends, before anything is sent to the
tracking store, and removed once the store has the end. If the store is down, or snakemake
is killed, the entries stay and the next invocation in the same working directory logs them
(see :mod:`.writer`). Each write and removal is one file operation (two writes and one
unlink per job); the directory is read once, when an invocation replays it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

SPOOL_DIR = Path(".snakemake") / "mlflow" / "pending"
_MADE: set[Path] = set()  # spool directories made by this process (one mkdir each)


def _file(spool: Path, key: str) -> Path:
    return spool / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".json")


def put(spool: Path, entry: dict[str, Any]) -> Path:
    """Write ``entry`` (which has a ``key``) to the spool; replaces an older one of that key."""
    if spool not in _MADE:
        spool.mkdir(parents=True, exist_ok=True)
        _MADE.add(spool)
    path = _file(spool, entry["key"])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    text = json.dumps(entry, default=str)
    try:
        tmp.write_text(text)
    except FileNotFoundError:  # the directory was removed meanwhile
        spool.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
    os.replace(tmp, path)
    return path


def pending(spool: Path) -> list[dict[str, Any]]:
    """Every complete entry in the spool, oldest first (unreadable files are skipped)."""
    if not spool.is_dir():
        return []
    stamped = []
    with os.scandir(spool) as it:
        for item in it:
            if item.name.endswith(".json") and not item.name.startswith("."):
                try:
                    stamped.append((item.stat().st_mtime_ns, item.name, item.path))
                except OSError:
                    continue
    entries = []
    for _, _, path in sorted(stamped):
        try:
            entries.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError):
            continue
    return entries


def has_pending(spool: Path) -> bool:
    if not spool.is_dir():
        return False
    with os.scandir(spool) as it:
        return any(i.name.endswith(".json") and not i.name.startswith(".") for i in it)


def done(spool: Path, key: str) -> None:
    """Remove the entry of ``key``: the store has it."""
    _file(spool, key).unlink(missing_ok=True)


def read_record(path: str | os.PathLike[str]) -> list[Any]:
    """The lines of a job record (JSON lines); a line that is not JSON is kept as a string."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    lines: list[Any] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append(line)
    return lines

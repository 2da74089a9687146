"""Atomic outputs and digests (snakeflow.fileio)."""

import hashlib
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snakeflow.fileio import BackgroundSha256, atomic_path, sha256_file


@given(st.lists(st.binary(max_size=5000), max_size=30))
def test_background_sha256_equals_hashlib(chunks):
    with BackgroundSha256(depth=2) as digest:
        for chunk in chunks:
            digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_background_sha256_stops_its_thread_on_error():
    before = threading.active_count()
    with pytest.raises(RuntimeError), BackgroundSha256(depth=1) as digest:
        digest.update(b"x" * 100_000)
        raise RuntimeError("transfer broke")
    assert threading.active_count() == before


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    dst = tmp_path / "out.csv"
    with pytest.raises(ValueError), atomic_path(dst) as tmp:
        tmp.write_text("half")
        raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_a_directory(tmp_path):
    dst = tmp_path / "model"
    for text in ("old", "new"):
        with atomic_path(dst) as tmp:
            tmp.mkdir()
            (tmp / "MLmodel").write_text(text)
    assert (dst / "MLmodel").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert sha256_file(dst / "MLmodel") == hashlib.sha256(b"new").hexdigest()

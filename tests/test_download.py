"""download_csv against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import socket

import pytest

from conftest import titanic_rows, to_csv
from download import check_csv, download_csv
from snakeflow.errors import UserError

FAST = {"timeout": 5, "attempts": 3, "backoff": 0.01}


@pytest.fixture
def body():
    return to_csv(titanic_rows(50))


def _leftovers(dst):
    return sorted(p.name for p in dst.parent.iterdir()) if dst.parent.exists() else []


def test_downloads_and_hashes(http_server, tmp_path, body):
    url = http_server.publish("dl/ok.csv", body)
    dst = tmp_path / "raw" / "x.csv"
    stats = download_csv(url, dst, **FAST, sha256=hashlib.sha256(body).hexdigest())
    assert dst.read_bytes() == body
    assert stats.sha256 == hashlib.sha256(body).hexdigest()
    assert stats.bytes == len(body) and stats.attempts == 1 and stats.columns == 12
    assert _leftovers(dst) == ["x.csv"]


def test_local_path_and_file_url(tmp_path, body):
    src = tmp_path / "in.csv"
    src.write_bytes(body)
    for url in (str(src), src.as_uri()):
        dst = tmp_path / "out" / "x.csv"
        download_csv(url, dst)
        assert dst.read_bytes() == body


def test_retries_5xx_then_succeeds(http_server, tmp_path, body):
    http_server.publish("dl/flaky.csv", body)
    url = f"{http_server.url}/flaky/k1/2/dl/flaky.csv"
    stats = download_csv(url, tmp_path / "x.csv", **FAST)
    assert (tmp_path / "x.csv").read_bytes() == body
    assert sum(1 for r in http_server.requests if r.startswith("/flaky/k1/")) == 3
    assert stats.bytes == len(body)


def test_truncated_transfer_is_retried_never_kept(http_server, tmp_path, body):
    http_server.publish("dl/trunc.csv", body)
    url = f"{http_server.url}/truncate/k2/1/dl/trunc.csv"
    stats = download_csv(url, tmp_path / "x.csv", **FAST)
    assert (tmp_path / "x.csv").read_bytes() == body
    assert stats.attempts == 2


def test_always_truncated_fails_without_file(http_server, tmp_path, body):
    http_server.publish("dl/trunc2.csv", body)
    url = f"{http_server.url}/truncate/k3/99/dl/trunc2.csv"
    dst = tmp_path / "raw" / "x.csv"
    with pytest.raises(UserError, match="after 3 attempt"):
        download_csv(url, dst, **FAST)
    assert _leftovers(dst) == []


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/status/404", "HTTP 404"),
        ("/status/500", "HTTP 500"),
        ("/html", "HTML"),
        ("/files/dl/empty.csv", "is empty"),
        ("/files/dl/binary.csv", "binary"),
        ("/files/dl/latin1.csv", "not UTF-8"),
        ("/files/dl/page.csv", "HTML"),
    ],
)
def test_bad_responses_fail_cleanly(http_server, tmp_path, path, message):
    http_server.publish("dl/empty.csv", b"")
    http_server.publish("dl/binary.csv", b"a,b\n\x00\x01\x02")
    http_server.publish("dl/latin1.csv", "name\nJos\xe9\n".encode("latin-1"))
    http_server.publish("dl/page.csv", b"\n  <html><body>not csv</body></html>")
    dst = tmp_path / "raw" / "x.csv"
    with pytest.raises(UserError, match=message) as info:
        download_csv(http_server.url + path, dst, **FAST)
    assert "\n" not in str(info.value)
    assert _leftovers(dst) == []


def test_unreachable_host(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UserError, match=r"Connection refused|too many failed attempts"):
        download_csv(f"http://127.0.0.1:{port}/x.csv", tmp_path / "x.csv", **FAST)
    assert not (tmp_path / "x.csv").exists()


def test_timeout(http_server, tmp_path, body):
    http_server.publish("dl/slow.csv", body)
    with pytest.raises(UserError, match=r"timed out|too many failed attempts"):
        download_csv(
            f"{http_server.url}/slow/2/dl/slow.csv",
            tmp_path / "x.csv",
            timeout=0.3,
            attempts=1,
            backoff=0,
        )
    assert not (tmp_path / "x.csv").exists()


def test_sha256_pin_mismatch_leaves_no_file(http_server, tmp_path, body):
    url = http_server.publish("dl/pin.csv", body)
    with pytest.raises(UserError, match="data_sha256"):
        download_csv(url, tmp_path / "x.csv", **FAST, sha256="0" * 64)
    assert not (tmp_path / "x.csv").exists()


def test_max_bytes(http_server, tmp_path, body):
    url = http_server.publish("dl/big.csv", body)
    with pytest.raises(UserError, match="max_bytes"):
        download_csv(url, tmp_path / "x.csv", **FAST, max_bytes=100)
    assert _leftovers(tmp_path / "x.csv") == []


def test_unsupported_scheme(tmp_path):
    with pytest.raises(UserError, match="unsupported scheme 'ftp:'"):
        download_csv("ftp://example.org/x.csv", tmp_path / "x.csv")


def test_check_csv_counts_header_columns(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes('\ufeffa,"b,c",d\r\n1,2,3\r\n'.encode())
    assert check_csv(path, "a.csv") == 3

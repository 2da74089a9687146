"""download_csv against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import re
import socket
import time
import uuid

import pytest
import requests

from download import RETRY_AFTER_MAX, _retry_after, check_csv, download_csv
from snakeflow.errors import UserError
from support import ROOT, titanic_rows, to_csv

FAST = {"timeout": 5, "attempts": 3, "backoff": 0.01}


@pytest.fixture
def body():
    return to_csv(titanic_rows(50))


@pytest.fixture
def waits(monkeypatch):
    """The seconds of every ``time.sleep`` during the test, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded


def _leftovers(dst):
    return sorted(p.name for p in dst.parent.iterdir()) if dst.parent.exists() else []


def _requests(server, prefix):
    return sum(1 for r in server.requests if r.startswith(prefix))


def _backoffs(attempts, backoff=FAST["backoff"]):
    """The waits between ``attempts`` attempts: backoff, 2*backoff, 4*backoff, ..."""
    return pytest.approx([backoff * 2**i for i in range(attempts - 1)])


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


@pytest.mark.parametrize("attempts", [1, 3])
def test_dropped_connections_make_exactly_attempts_connections(
    dropping_server, tmp_path, waits, attempts
):
    server = dropping_server()  # accepts every connection and closes it at once
    dst = tmp_path / "raw" / "x.csv"
    with pytest.raises(UserError, match=rf"failed after {attempts} attempt\(s\)") as info:
        download_csv(f"{server.url}/x.csv", dst, **{**FAST, "attempts": attempts})
    assert server.accepted == attempts
    assert waits == _backoffs(attempts)
    assert "\n" not in str(info.value)
    assert _leftovers(dst) == []


def test_dropped_connections_then_third_attempt_succeeds(dropping_server, tmp_path, waits, body):
    server = dropping_server(drop=2, body=body)
    dst = tmp_path / "raw" / "x.csv"
    stats = download_csv(f"{server.url}/x.csv", dst, **FAST)
    assert dst.read_bytes() == body
    assert server.accepted == 3 and stats.attempts == 3
    assert waits == _backoffs(3)
    assert _leftovers(dst) == ["x.csv"]


def test_http_503_every_time_makes_exactly_attempts_requests(http_server, tmp_path, waits, body):
    http_server.publish("dl/busy.csv", body)
    key = uuid.uuid4().hex
    dst = tmp_path / "raw" / "x.csv"
    with pytest.raises(UserError, match=r"failed after 3 attempt\(s\): HTTP 503") as info:
        download_csv(f"{http_server.url}/flaky/{key}/99/dl/busy.csv", dst, **FAST)
    assert _requests(http_server, f"/flaky/{key}/") == 3
    assert waits == _backoffs(3)
    assert "\n" not in str(info.value)
    assert _leftovers(dst) == []


def test_retries_5xx_then_succeeds(http_server, tmp_path, waits, body):
    http_server.publish("dl/flaky.csv", body)
    key = uuid.uuid4().hex
    url = f"{http_server.url}/flaky/{key}/2/dl/flaky.csv"
    stats = download_csv(url, tmp_path / "x.csv", **FAST)
    assert (tmp_path / "x.csv").read_bytes() == body
    assert _requests(http_server, f"/flaky/{key}/") == 3
    assert stats.attempts == 3 and stats.bytes == len(body)
    assert waits == _backoffs(3)


@pytest.mark.parametrize(("header", "wait"), [("3", 3.0), ("3600", RETRY_AFTER_MAX)])
def test_retry_after_lengthens_a_wait_up_to_a_bound(
    http_server, tmp_path, waits, body, header, wait
):
    http_server.publish("dl/later.csv", body)
    key = uuid.uuid4().hex
    url = f"{http_server.url}/flaky/{key}/1/dl/later.csv?retry_after={header}"
    stats = download_csv(url, tmp_path / "x.csv", **FAST)
    assert (tmp_path / "x.csv").read_bytes() == body
    assert _requests(http_server, f"/flaky/{key}/") == 2 and stats.attempts == 2
    assert waits == pytest.approx([wait])


@pytest.mark.parametrize(
    ("status", "header", "seconds"),
    [
        (503, "7", 7.0),
        (429, "0", 0.0),
        (503, "Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
        (503, "Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_MAX),
        (503, "soon", 0.0),
        (503, None, 0.0),
        (500, "7", 0.0),  # only 429 and 503 may ask for a wait
    ],
)
def test_retry_after_header(status, header, seconds):
    response = requests.Response()
    response.status_code = status
    if header is not None:
        response.headers["Retry-After"] = header
    assert _retry_after(response) == seconds


def test_truncated_transfer_is_retried_never_kept(http_server, tmp_path, body):
    http_server.publish("dl/trunc.csv", body)
    url = f"{http_server.url}/truncate/k2/1/dl/trunc.csv"
    stats = download_csv(url, tmp_path / "x.csv", **FAST)
    assert (tmp_path / "x.csv").read_bytes() == body
    assert stats.attempts == 2


def test_always_truncated_fails_without_file(http_server, tmp_path, waits, body):
    http_server.publish("dl/trunc2.csv", body)
    key = uuid.uuid4().hex
    url = f"{http_server.url}/truncate/{key}/99/dl/trunc2.csv"
    dst = tmp_path / "raw" / "x.csv"
    with pytest.raises(UserError, match=r"failed after 3 attempt\(s\)"):
        download_csv(url, dst, **FAST)
    assert _requests(http_server, f"/truncate/{key}/") == 3
    assert waits == _backoffs(3)
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
    with pytest.raises(UserError, match=r"after 3 attempt\(s\): Connection refused"):
        download_csv(f"http://127.0.0.1:{port}/x.csv", tmp_path / "x.csv", **FAST)
    assert not (tmp_path / "x.csv").exists()


def test_timeout(http_server, tmp_path, body):
    http_server.publish("dl/slow.csv", body)
    with pytest.raises(UserError, match=r"after 1 attempt\(s\): timed out"):
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


def test_rule_download_leaves_retries_to_the_script():
    """Snakemake's ``retries:`` would rerun the script's whole retry loop: the counts multiply."""
    text = (ROOT / "Snakefile").read_text()
    rule = re.search(r"^rule download:\n(.*?)(?=^\S)", text, re.M | re.S)
    assert rule and "attempts=" in rule.group(1)
    assert not re.search(r"^\s*retries:", rule.group(1), re.M)
    for profile in (ROOT / "profiles").glob("*/config.yaml"):
        assert not re.search(r"^(retries|restart-times):", profile.read_text(), re.M), profile

"""download: fetch a dataset's url (http(s), file URL or local path) to data/raw/<dataset>.csv."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

import codecs
import csv
import email.utils
import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from snakeflow import record, urls
from snakeflow.errors import UserError, run_main
from snakeflow.fileio import CHUNK, BackgroundSha256, atomic_path

RETRY_STATUS = (429, 500, 502, 503, 504)
RETRY_AFTER_MAX = 60.0  # seconds; the longest wait a Retry-After header can ask for
SNIFF_BYTES = 64 * 1024


@dataclass
class DownloadStats:
    """What a download did: bytes written, their sha256, attempts and wall time."""

    bytes: int
    sha256: str
    attempts: int
    seconds: float
    columns: int

    def metrics(self) -> dict[str, float]:
        return {
            "bytes": self.bytes,
            "attempts": self.attempts,
            "download_seconds": self.seconds,
            "columns": self.columns,
            "mb_per_second": self.bytes / 1e6 / max(self.seconds, 1e-9),
        }


class _TooLarge(UserError):
    pass


def _session() -> requests.Session:
    """A session that never retries by itself: ``_fetch_http`` is the one retry loop.

    ``Retry(total=0, read=False)`` (requests' own default, spelled out): one connection per
    request, a connection or read error raised at once. Redirects are followed by requests,
    not counted as attempts.
    """
    adapter = HTTPAdapter(max_retries=Retry(total=0, read=False, raise_on_status=False))
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _copy_stream(chunks, out, digest, max_bytes: int, label: str) -> int:
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > max_bytes:
            raise _TooLarge(
                f"{label} is larger than download.max_bytes ({max_bytes} bytes); "
                "raise download.max_bytes if the file is expected to be this large"
            )
        digest.update(chunk)
        out.write(chunk)
    return written


class _Retryable(Exception):
    """An attempt failed in a way that another attempt may fix."""

    def __init__(self, reason: str, retry_after: float = 0.0):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def _retry_after(response: requests.Response) -> float:
    """Seconds a 429/503 answer asks the client to wait (``Retry-After``), 0 if it does not.

    Accepts delay-seconds and an HTTP date; at most RETRY_AFTER_MAX, so a server cannot park
    the job for hours (the attempt count stays the configured one either way).
    """
    value = (response.headers.get("Retry-After") or "").strip()
    if response.status_code not in (429, 503) or not value:
        return 0.0
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 0.0
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)


def _attempt(
    session: requests.Session, url: str, tmp: Path, *, timeout: float, max_bytes: int, label: str
) -> tuple[int, str]:
    """One GET of ``url`` streamed into ``tmp``. Returns (bytes, sha256).

    Raises _Retryable for connection errors, timeouts, HTTP 429/5xx and truncated bodies,
    UserError for everything another attempt would not change.
    """
    try:
        with (
            session.get(url, stream=True, timeout=(timeout, timeout)) as response,
            BackgroundSha256() as digest,
        ):
            if response.status_code >= 400:
                status = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
                if response.status_code in RETRY_STATUS:
                    raise _Retryable(status, _retry_after(response))
                raise UserError(f"download of {label} failed: {status}; check data_url")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise _TooLarge(
                    f"{label} announces {length} bytes, more than download.max_bytes ({max_bytes})"
                )
            if "html" in response.headers.get("Content-Type", "").lower():
                raise UserError(f"{label} returned an HTML page, not a CSV file; check data_url")
            with open(tmp, "wb") as out:
                chunks = response.iter_content(chunk_size=CHUNK)
                written = _copy_stream(chunks, out, digest, max_bytes, label)
            return written, digest.hexdigest()
    except (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
    ) as exc:
        raise _Retryable(_reason(exc)) from exc
    except requests.exceptions.RequestException as exc:
        raise UserError(f"download of {label} failed: {_reason(exc)}") from exc


def _fetch_http(
    url: str, tmp: Path, *, timeout: float, attempts: int, backoff: float, max_bytes: int
) -> tuple[int, str, int]:
    """Stream ``url`` into ``tmp``. Returns (bytes, sha256, attempts made).

    The one retry loop of a download: at most ``attempts`` GETs, one connection each.
    Connection errors, timeouts, HTTP 429/5xx and truncated bodies are retried after waits
    of backoff, 2*backoff, 4*backoff, ... seconds (longer when a 429/503 asks for it with
    Retry-After, see ``_retry_after``); any other failure ends the download at once.
    """
    label = urls.redact(url)
    attempts = max(1, attempts)
    with _session() as session:
        for attempt in range(1, attempts + 1):
            try:
                written, digest = _attempt(
                    session, url, tmp, timeout=timeout, max_bytes=max_bytes, label=label
                )
                return written, digest, attempt
            except _Retryable as exc:
                if attempt == attempts:
                    raise UserError(
                        f"download of {label} failed after {attempt} attempt(s): {exc.reason}"
                    ) from exc
                wait = max(backoff * 2 ** (attempt - 1), exc.retry_after)
                print(
                    f"attempt {attempt} of {attempts} failed ({exc.reason}); "
                    f"retrying in {wait:.2f} s",
                    file=sys.stderr,
                )
                time.sleep(wait)
    raise AssertionError("unreachable")


_REASONS = {  # text in a requests error -> the reason a message gives (never the URL)
    "Connection refused": "Connection refused",
    "Connection reset": "Connection reset by the server",
    "Remote end closed connection": "the server closed the connection without answering",
    "Name or service not known": "Name or service not known",
    "Temporary failure in name resolution": "Temporary failure in name resolution",
    "No route to host": "No route to host",
    "Network is unreachable": "Network is unreachable",
    "timed out": "timed out",
    "IncompleteRead": "IncompleteRead",
    "Connection broken": "Connection broken",
    "Max retries exceeded": "cannot connect",  # urllib3's wrapper of any other connect error
}


def _reason(exc: BaseException) -> str:
    """A short, secret-free reason for a requests error."""
    text = str(exc)
    for key, reason in _REASONS.items():
        if key in text:
            return reason
    return type(exc).__name__


def _fetch_file(path: str, tmp: Path, *, max_bytes: int) -> tuple[int, str, int]:
    src = Path(path)
    if not src.is_file():
        raise UserError(f"data_url: no such file: {path}")
    with open(src, "rb") as fh, open(tmp, "wb") as out, BackgroundSha256() as digest:
        chunks = iter(lambda: fh.read(CHUNK), b"")
        written = _copy_stream(chunks, out, digest, max_bytes, str(src))
        return written, digest.hexdigest(), 1


def check_csv(path: Path, label: str) -> int:
    """Check that ``path`` looks like a CSV file: not empty, UTF-8 text, not HTML, a header.

    Returns the number of header columns. Raises UserError naming ``label`` otherwise.
    """
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not head.strip():
        raise UserError(f"{label} is empty; check data_url")
    if b"\0" in head:
        raise UserError(f"{label} is binary (NUL bytes), not a CSV file; check data_url")
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise UserError(f"{label} is not UTF-8 text ({exc.reason}); check data_url") from exc
    start = text.lstrip().lower()
    if start.startswith(("<!doctype html", "<html", "<?xml", "<head", "<body")):
        raise UserError(f"{label} is an HTML/XML page, not a CSV file; check data_url")
    lines = text.splitlines(keepends=True)
    if len(head) == SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut in the middle
    try:
        rows = [row for row in csv.reader(io.StringIO("".join(lines))) if row]
    except csv.Error as exc:
        raise UserError(f"{label} is not a valid CSV file: {exc}") from exc
    if not rows:
        raise UserError(f"{label} has no header line; check data_url")
    header = rows[0]
    if any(not name.strip() for name in header) and len(header) > 1:
        raise UserError(f"{label}: the header has an empty column name")
    return len(header)


def download_csv(
    url: str,
    dst: Path,
    *,
    timeout: float = 60,
    attempts: int = 5,
    backoff: float = 1.0,
    max_bytes: int = 2**31,
    sha256: str | None = None,
) -> DownloadStats:
    """Download the CSV at ``url`` to ``dst`` atomically, streaming, and return its stats.

    ``url`` is an http(s) or file URL or a local path. Connection errors, 429/5xx answers
    and truncated transfers are retried with exponential backoff. The file only appears
    at ``dst`` once it is complete, its sha256 matches ``sha256`` (when given) and it looks
    like a CSV file; otherwise a UserError says why and nothing is left behind.
    """
    source = urls.parse_source(url)
    label = urls.redact(url)
    started = time.perf_counter()
    with atomic_path(dst) as tmp:
        if source.kind == "http":
            size, digest, tries = _fetch_http(
                url, tmp, timeout=timeout, attempts=attempts, backoff=backoff, max_bytes=max_bytes
            )
        else:
            size, digest, tries = _fetch_file(source.location, tmp, max_bytes=max_bytes)
        if sha256 and digest != sha256.lower():
            raise UserError(
                f"{label} has sha256 {digest}, but data_sha256 pins {sha256.lower()}; "
                "the data changed or data_sha256 is wrong"
            )
        columns = check_csv(tmp, label)
    seconds = time.perf_counter() - started
    print(
        f"downloaded {size} bytes from {label} in {seconds:.2f} s; sha256 {digest}", file=sys.stderr
    )
    return DownloadStats(
        bytes=size, sha256=digest, attempts=tries, seconds=seconds, columns=columns
    )


def main() -> None:
    params = snakemake.params
    # the URL is read from the config (resolved by the Snakefile), never passed as a param:
    # params are recorded, and a URL may hold credentials
    url = snakemake.config["datasets"][params.dataset]["url"]
    with record.step(snakemake) as run:
        run.params({"source": urls.redact(url)})
        stats = download_csv(
            url,
            Path(snakemake.output.csv),
            timeout=params.timeout,
            attempts=params.attempts,
            backoff=params.backoff,
            max_bytes=params.max_bytes,
            sha256=params.sha256_pin or None,
        )
        # the record file is on disk: it holds the URL redacted, like every log
        http = urls.parse_source(url).kind == "http"
        source = urls.redact(url) if http else urls.local_path(url)
        run.input(source, name=params.dataset, context="source", digest=stats.sha256)
        run.metrics(stats.metrics())


if __name__ == "__main__":
    run_main(main)

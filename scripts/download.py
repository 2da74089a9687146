"""download: fetch data_url (http, https, file URL or local path) to data/raw/<dataset>.csv."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

import codecs
import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from snakeflow import tracking, urls
from snakeflow.errors import UserError, run_main
from snakeflow.fileio import CHUNK, BackgroundSha256, atomic_path

RETRY_STATUS = (429, 500, 502, 503, 504)
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


def _session(attempts: int, backoff: float) -> requests.Session:
    """A session whose connection errors and 429/5xx answers are retried with backoff."""
    retry = Retry(
        total=attempts - 1,
        connect=attempts - 1,
        read=attempts - 1,
        status=attempts - 1,
        other=0,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUS,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
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


def _fetch_http(
    url: str, tmp: Path, *, timeout: float, attempts: int, backoff: float, max_bytes: int
) -> tuple[int, str, int]:
    """Stream ``url`` into ``tmp``; retry truncated transfers. Returns (bytes, sha256, attempts)."""
    label = urls.redact(url)
    session = _session(attempts, backoff)
    for attempt in range(1, attempts + 1):
        try:
            with (
                session.get(url, stream=True, timeout=(timeout, timeout)) as response,
                BackgroundSha256() as digest,
            ):
                if response.status_code >= 400:
                    raise UserError(
                        f"download of {label} failed: HTTP {response.status_code} "
                        f"{response.reason or ''}".rstrip()
                        + "; check data_url"
                    )
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > max_bytes:
                    raise _TooLarge(
                        f"{label} announces {length} bytes, more than download.max_bytes "
                        f"({max_bytes})"
                    )
                if "html" in response.headers.get("Content-Type", "").lower():
                    raise UserError(
                        f"{label} returned an HTML page, not a CSV file; check data_url"
                    )
                with open(tmp, "wb") as out:
                    chunks = response.iter_content(chunk_size=CHUNK)
                    written = _copy_stream(chunks, out, digest, max_bytes, label)
                return written, digest.hexdigest(), attempt
        except UserError:
            raise
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
        ) as exc:
            reason = _reason(exc)
            if attempt == attempts:
                raise UserError(
                    f"download of {label} failed after {attempts} attempt(s): {reason}"
                ) from exc
            wait = backoff * 2 ** (attempt - 1)
            print(f"attempt {attempt} failed ({reason}); retrying in {wait:.1f} s", file=sys.stderr)
            time.sleep(wait)
        except requests.exceptions.RequestException as exc:
            raise UserError(f"download of {label} failed: {_reason(exc)}") from exc
    raise AssertionError("unreachable")


def _reason(exc: BaseException) -> str:
    """A short, secret-free reason for a requests error."""
    text = str(exc)
    for key in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "Read timed out",
        "IncompleteRead",
        "Connection broken",
        "Max retries exceeded",
        "Temporary failure in name resolution",
    ):
        if key in text:
            return key if key != "Max retries exceeded" else "too many failed attempts"
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
    config = snakemake.config
    params = snakemake.params
    url = urls.data_url(config)
    with tracking.step(snakemake) as run:
        run.log_params({"source": urls.redact(url)})
        stats = download_csv(
            url,
            Path(snakemake.output.csv),
            timeout=params.timeout,
            attempts=params.attempts,
            backoff=params.backoff,
            max_bytes=params.max_bytes,
            sha256=params.sha256_pin or None,
        )
        source = url if urls.parse_source(url).kind == "http" else urls.local_path(url)
        run.log_input(source, name=config["dataset"], context="source", sha256=stats.sha256)
        run.log_metrics(stats.metrics())


if __name__ == "__main__":
    run_main(main)

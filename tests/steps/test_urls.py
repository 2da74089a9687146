"""Data sources and redaction."""

import pytest

from snakeflow import urls
from snakeflow.errors import UserError


@pytest.mark.parametrize(
    ("url", "kind", "location"),
    [
        ("https://example.org/a.csv", "http", "https://example.org/a.csv"),
        ("http://127.0.0.1:8000/x.csv?x=1", "http", "http://127.0.0.1:8000/x.csv?x=1"),
        ("file:///tmp/a%20b.csv", "file", "/tmp/a b.csv"),
        ("file://localhost/tmp/a.csv", "file", "/tmp/a.csv"),
        ("data/my.csv", "file", "data/my.csv"),
        ("/abs/path.csv", "file", "/abs/path.csv"),
    ],
)
def test_parse_source(url, kind, location):
    assert urls.parse_source(url) == urls.Source(kind, location)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/a.csv",
        "s3://bucket/a.csv",
        "javascript:alert(1)",
        "file://remote/a.csv",
        "http:///nohost.csv",
    ],
)
def test_unsupported_sources_are_refused(url):
    with pytest.raises(UserError, match="data_url"):
        urls.parse_source(url)


def test_redact_hides_credentials_and_signatures():
    url = (
        "https://bob:pa55@bucket.example.com/d.csv?X-Amz-Signature=abc123&X-Amz-Credential=AKIA9"
        "&token=T0K3N&sig=zzz&api_key=k1&version=3"
    )
    red = urls.redact(url)
    for secret in ("bob", "pa55", "abc123", "AKIA9", "T0K3N", "zzz", "k1"):
        assert secret not in red
    assert red.startswith("https://REDACTED@bucket.example.com/d.csv?")
    assert "version=3" in red
    assert urls.redact("data/raw.csv") == "data/raw.csv"


@pytest.mark.parametrize(
    "url",
    [
        "https://bob:pa55@bucket.example.com/d.csv?X-Amz-Signature=abc&version=3",
        "https://ghp_T0K3N@example.com/a.csv",
        "http://127.0.0.1:8000/a%20b.csv?token=&x=1/2#access_token=zz",
        "https://example.com/plain.csv",
        "file:///data/raw.csv",
        "data/raw.csv",
    ],
)
def test_the_jobs_and_the_logger_plugin_redact_a_url_alike(url):
    """Jobs run in rule environments without the plugin, so they have their own redactor;
    both must record a URL the same way."""
    from snakemake_logger_plugin_mlflow.values import redact

    assert urls.redact(url) == redact(url)


def test_url_digest_is_stable_and_distinct():
    assert urls.url_digest("a") == urls.url_digest("a") != urls.url_digest("b")
    assert len(urls.url_digest("a")) == 64

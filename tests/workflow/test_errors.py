"""User errors through real snakemake runs: one clear line, non-zero exit, nothing partial."""

from __future__ import annotations

import re

import pytest

from support import titanic_rows, to_csv


def _files(workflow):
    data = workflow.path / "data"
    return (
        sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())
        if data.exists()
        else []
    )


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("snakeflow error:")]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/status/404", r"HTTP 404 .*check data_url"),
        ("/status/500", r"HTTP 500"),
        ("/html", r"HTML page, not a CSV file"),
        ("/files/errors/empty.csv", r"is empty"),
    ],
)
def test_bad_download_fails_with_one_line(workflow, http_server, path, message):
    http_server.publish("errors/empty.csv", b"")
    url = http_server.url + path
    result = workflow.run(
        "--config", f"data_url={url}", "download={attempts: 2, backoff: 0.01}", check=False
    )
    assert result.returncode != 0
    lines = _error_lines(result.output)
    assert lines and all(line == lines[0] for line in lines)  # once per attempt of the job
    assert re.search(message, lines[0])
    assert "Traceback" not in result.output
    assert _files(workflow) == []
    runs = workflow.job_runs("download")
    assert runs and all(r.info.status == "FAILED" for r in runs)
    assert re.search(message, runs[0].data.tags["snakemake.error"])
    (parent,) = workflow.runs("tags.`snakemake.kind` = 'invocation'")
    assert parent.info.status == "FAILED"


def test_missing_target_column(workflow, http_server):
    url = http_server.publish("errors/t.csv", to_csv(titanic_rows(20)))
    result = workflow.run("--config", f"data_url={url}", "target=Label", check=False)
    assert result.returncode != 0
    (line,) = set(_error_lines(result.output))
    assert "target column 'Label' is not in data/raw/titanic.csv" in line
    assert _files(workflow) == ["raw/titanic.csv"]  # download is fine and kept


def test_clean_leaving_no_rows(workflow, http_server):
    url = http_server.publish("errors/nulls.csv", b"a,b\n1,\n,2\n")
    result = workflow.run("--config", f"data_url={url}", "target=a", check=False)
    assert result.returncode != 0
    assert "clean left no rows" in _error_lines(result.output)[0]
    assert not (workflow.path / "data/clean/titanic.csv").exists()


def test_unsupported_scheme_is_refused_by_the_schema(workflow):
    result = workflow.run("--config", "data_url=ftp://example.org/x.csv", check=False)
    assert result.returncode != 0
    assert "data_url" in result.output
    assert workflow.runs() == []


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (["tarrget=Survived"], "tarrget"),
        (["download={timeout: soon}"], "soon"),
        (["clean={dropna: some}"], "some"),
        (["dataset=../../x"], "dataset"),
        (["dataset=a;rm -rf b"], "dataset"),
        (["data_sha256=abc"], "abc"),
    ],
)
def test_bad_config_fails_at_parse_time(workflow, config, needle):
    result = workflow.run("-n", "--config", *config, check=False)
    assert result.returncode != 0
    assert "Error validating config file" in result.output
    assert needle in result.output
    assert workflow.runs() == []

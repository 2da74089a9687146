"""Snakemake features, one small Snakefile each: every executed job with an output or a log
has exactly one run (per attempt) with the right status, nothing is left RUNNING, the plugin
prints no traceback or warning, and the workflow's outputs and exit code are its own."""

from __future__ import annotations

import pytest
from smk import sha256


def assert_clean(result, plain, jobs: int, parent: str = "FINISHED"):
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert "mlflow logger: warning" not in output, output[-3000:]
    runs = plain.jobs()
    assert len(runs) == jobs, [r.info.run_name for r in runs]
    assert all(r.info.status != "RUNNING" for r in plain.runs())
    (run,) = plain.parents()
    assert run.info.status == parent
    return {r.info.run_name: r for r in runs}


PARAMSPACE = """
    rule all:
        input:
            expand("out/alpha~{a}/beta~{b}+c=1,d@e.txt", a=[1, 2], b=["x y", "ü"]),

    rule make:
        output:
            "out/alpha~{a}/beta~{b}+c=1,d@e.txt",
        log:
            "logs/{a}/{b}.log",
        shell:
            "echo '{wildcards.a}' > '{output}'; echo ok > '{log}'"
"""


def test_paths_mlflow_rejects_as_tag_keys_are_fitted_and_kept_in_the_value(plain):
    wf = plain(PARAMSPACE)
    result = wf.snakemake()
    assert result.returncode == 0, result.stderr[-3000:]
    runs = assert_clean(result, wf, 4)
    run = runs["make 1 x y"]
    (key,) = [k for k in run.data.tags if k.startswith("sha256.")]
    original = "out/alpha~1/beta~x y+c=1,d@e.txt"
    assert run.data.tags[key] == f"{sha256(wf.path / original)}  {original}"
    assert original in run.data.tags["snakemake.renamed_keys"]


def test_config_keys_mlflow_rejects_do_not_stop_the_workflow(plain):
    wf = plain(
        """
        configfile: "cfg.yaml"

        rule one:
            output:
                "one.txt",
            shell:
                "touch {output}"
        """
    )
    (wf.path / "cfg.yaml").write_text('"it\'s": 1\nnested:\n  "a,b": [1, 2]\n')
    result = wf.snakemake()
    assert result.returncode == 0, result.stderr[-3000:]
    assert_clean(result, wf, 1)
    (parent,) = wf.parents()
    assert parent.data.params["it_s"] == "1" and parent.data.params["nested.a_b"] == "[1, 2]"


CHAIN = """
    rule all:
        input:
            "c.txt",

    rule a:
        output:
            temp("a.txt"),
        log:
            "logs/a.log",
        shell:
            "echo a > {output}"

    rule b:
        input:
            "a.txt",
        output:
            "b.txt",
        log:
            "logs/b.log",
        shell:
            "cat {input} > {output}"

    rule c:
        input:
            "b.txt",
        output:
            "c.txt",
        log:
            "logs/c.log",
        shell:
            "cat {input} > {output}"
"""


def test_temp_outputs_are_hashed_before_snakemake_deletes_them(plain):
    wf = plain(CHAIN)
    result = wf.snakemake()
    assert result.returncode == 0
    runs = assert_clean(result, wf, 3)
    assert not (wf.path / "a.txt").exists()
    digest = sha256(wf.path / "b.txt")  # b is a copy of a
    assert runs["a"].data.tags["sha256.a.txt"] == digest


def test_until_ends_its_parent_finished_and_an_empty_dag_makes_no_parent(plain):
    wf = plain(CHAIN)
    result = wf.snakemake("--until", "b")
    assert result.returncode == 0
    assert_clean(result, wf, 2)
    assert not (wf.path / "c.txt").exists()
    before = len(wf.runs())
    assert wf.snakemake("--until", "b").returncode == 0  # nothing to do
    assert len(wf.runs()) == before


def test_retries_make_one_run_per_attempt(plain):
    wf = plain(
        """
        rule flaky:
            output:
                "done.txt",
            log:
                "logs/flaky.log",
            retries: 2
            shell:
                "if [ -e tried ]; then touch {output}; else touch tried; exit 1; fi"
        """
    )
    result = wf.snakemake()
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(wf.jobs(), key=lambda r: r.data.tags["snakemake.attempt"])
    assert [r.info.status for r in runs] == ["FAILED", "FINISHED"]
    assert [r.data.tags["snakemake.attempt"] for r in runs] == ["1", "2"]
    (parent,) = wf.parents()
    assert parent.info.status == "FINISHED"


@pytest.mark.parametrize("extra", [[], ["--keep-going"]])
def test_a_failure_ends_the_parent_failed(plain, extra):
    wf = plain(
        """
        rule all:
            input:
                "ok.txt",
                "bad.txt",

        rule ok:
            output:
                "ok.txt",
            shell:
                "sleep 1; touch {output}"

        rule bad:
            output:
                "bad.txt",
            shell:
                "exit 3"
        """
    )
    result = wf.snakemake(*extra)
    assert result.returncode != 0
    runs = {r.data.tags["snakemake.rule"]: r for r in wf.jobs()}
    assert runs["bad"].info.status == "FAILED"
    (parent,) = wf.parents()
    assert parent.info.status == "FAILED"
    assert all(r.info.status != "RUNNING" for r in wf.runs())


def test_pipes_directories_and_shadow_rules(plain):
    wf = plain(
        """
        rule all:
            input:
                "count.txt",
                "tree",

        rule produce:
            output:
                pipe("stream.txt"),
            shell:
                "seq 1 100 > {output}"

        rule consume:
            input:
                "stream.txt",
            output:
                "count.txt",
            log:
                "logs/consume.log",
            shadow:
                "minimal"
            shell:
                "wc -l < {input} > {output}"

        rule tree:
            output:
                directory("tree"),
            log:
                "logs/tree.log",
            shell:
                "mkdir -p {output}/sub && echo x > {output}/sub/f.txt"
        """
    )
    result = wf.snakemake()
    assert result.returncode == 0, result.stderr[-3000:]
    runs = assert_clean(result, wf, 3)
    assert "sha256.stream.txt" not in runs["produce"].data.tags  # a pipe is not read twice
    assert len(runs["tree"].data.tags["sha256.tree"]) == 64
    assert (wf.path / "count.txt").read_text().strip() == "100"

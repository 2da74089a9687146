"""More of what real workflows use, one small Snakefile each: checkpoints, groups, services,
modules, ``run:`` blocks and scripts, benchmarks, reruns, quiet modes, a second logger and
a submitting executor. The same promises as test_features.py (see ``assert_clean``), and
the workflow's outputs and exit code are what they are without the plugin."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time

import pytest
from smk import SNAKEMAKE
from test_features import CHAIN, assert_clean


def same_without_plugin(plain, snakefile: str, *args: str, files: dict | None = None):
    """Run ``snakefile`` with and without the logger in two directories; return the tracked
    one and its result, after checking both exit alike and make the same files."""
    results = []
    for logger in (True, False):
        wf = plain(snakefile)
        for name, text in (files or {}).items():
            (wf.path / name).parent.mkdir(parents=True, exist_ok=True)
            (wf.path / name).write_text(textwrap.dedent(text))
        results.append((wf, wf.snakemake(*args, logger=logger)))
    (tracked, with_it), (untracked, without) = results
    assert with_it.returncode == without.returncode, with_it.stderr[-3000:]
    assert made(tracked.path) == made(untracked.path)
    return tracked, with_it


def made(root) -> dict[str, bytes]:
    """The workflow's own files (not Snakemake's or the store's)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        ours = rel.parts[0] in (".snakemake", "mlruns") or rel.name.startswith("mlflow.db")
        if path.is_file() and not ours:
            out[str(rel)] = b"" if rel.parts[0] == "bench" else path.read_bytes()
    return out


def test_checkpoint_jobs_added_after_the_dag_is_re_evaluated_get_runs(plain):
    wf, result = same_without_plugin(
        plain,
        """
        rule all:
            input:
                "total.txt",

        checkpoint scatter:
            output:
                directory("parts"),
            log:
                "logs/scatter.log",
            shell:
                "mkdir -p {output}; for i in 1 2 3; do echo $i > {output}/$i.txt; done"

        rule double:
            input:
                "parts/{i}.txt",
            output:
                "doubled/{i}.txt",
            log:
                "logs/double/{i}.log",
            shell:
                "echo $(( $(cat {input}) * 2 )) > {output}"

        def doubled(wildcards):
            parts = checkpoints.scatter.get().output[0]
            i = glob_wildcards(os.path.join(parts, "{i}.txt")).i
            return expand("doubled/{i}.txt", i=i)

        rule gather:
            input:
                doubled,
            output:
                "total.txt",
            log:
                "logs/gather.log",
            shell:
                "awk '{{s += $1}} END {{print s}}' {input} > {output}"
        """,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = assert_clean(result, wf, 5)
    assert {r.data.tags["snakemake.rule"] for r in runs.values()} == {"scatter", "double", "gather"}
    assert (wf.path / "total.txt").read_text().strip() == "12"


def test_group_jobs_have_one_run_per_rule_job(plain):
    wf, result = same_without_plugin(
        plain,
        """
        rule all:
            input:
                expand("b/{i}.txt", i=[1, 2]),

        rule a:
            output:
                "a/{i}.txt",
            log:
                "logs/a/{i}.log",
            group:
                "pair"
            shell:
                "echo {wildcards.i} > {output}"

        rule b:
            input:
                "a/{i}.txt",
            output:
                "b/{i}.txt",
            log:
                "logs/b/{i}.log",
            group:
                "pair"
            shell:
                "cat {input} > {output}"
        """,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = assert_clean(result, wf, 4)
    assert all(r.info.status == "FINISHED" for r in runs.values())


def test_a_service_and_its_consumers(plain):
    wf, result = same_without_plugin(
        plain,
        """
        rule all:
            input:
                "used.txt",

        rule serve:
            output:
                service("data.fifo"),
            log:
                "logs/serve.log",
            shell:
                "mkfifo {output}; while true; do echo hello > {output}; done"

        rule use:
            input:
                "data.fifo",
            output:
                "used.txt",
            log:
                "logs/use.log",
            shell:
                "head -n 1 {input} > {output}"
        """,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = assert_clean(result, wf, 2)
    assert runs["use"].info.status == "FINISHED"
    assert (wf.path / "used.txt").read_text() == "hello\n"


def test_rules_of_a_module_run_blocks_and_scripts(plain):
    module = """
        rule shout:
            output:
                "{name}.upper.txt",
            log:
                "logs/{name}.shout.log",
            shell:
                "echo {wildcards.name} | tr a-z A-Z > {output}"
    """
    script = (
        '#!/bin/bash\necho "$(cat "${snakemake_input[0]}")!" > "${snakemake_output[0]}"\n'
        'echo done > "${snakemake_log[0]}"\n'
    )
    wf, result = same_without_plugin(
        plain,
        """
        rule all:
            input:
                "hi.py.txt",
                "hi.sh.txt",

        module shouting:
            snakefile:
                "module/Snakefile"

        use rule shout from shouting as loud_shout

        rule python:
            input:
                "hi.upper.txt",
            output:
                "hi.py.txt",
            log:
                "logs/python.log",
            run:
                text = open(input[0]).read().strip()
                with open(output[0], "w") as out:
                    out.write(text.lower() + "\\n")

        rule bash:
            input:
                "hi.upper.txt",
            output:
                "hi.sh.txt",
            log:
                "logs/bash.log",
            script:
                "exclaim.sh"
        """,
        files={"module/Snakefile": module, "exclaim.sh": script},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = assert_clean(result, wf, 3)
    assert {r.data.tags["snakemake.rule"] for r in runs.values()} == {
        "loud_shout",
        "python",
        "bash",
    }
    assert (wf.path / "hi.sh.txt").read_text() == "HI!\n"
    assert runs["bash"].data.tags["sha256.hi.sh.txt"]


def test_a_benchmark_with_repeats_is_one_run_with_its_benchmark_file(plain):
    wf, result = same_without_plugin(
        plain,
        """
        rule timed:
            output:
                "t.txt",
            log:
                "logs/t.log",
            benchmark:
                repeat("bench/t.tsv", 3)
            shell:
                "echo t > {output}"
        """,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = assert_clean(result, wf, 1).values()
    client = wf.client()
    assert [f.path for f in client.list_artifacts(run.info.run_id, "benchmarks")] == [
        "benchmarks/t.tsv"
    ]
    assert len((wf.path / "bench/t.tsv").read_text().splitlines()) == 4  # header + 3 repeats


def test_forcerun_and_omit_from_make_runs_only_for_the_jobs_they_run(plain):
    wf = plain(CHAIN)
    assert wf.snakemake("--omit-from", "c").returncode == 0
    assert_clean(wf.snakemake("--omit-from", "c"), wf, 2)  # a no-op: nothing more
    assert not (wf.path / "c.txt").exists()
    result = wf.snakemake()
    assert result.returncode == 0
    forced = wf.snakemake("--forcerun", "c")
    assert forced.returncode == 0, forced.stderr[-3000:]
    parents = sorted(wf.parents(), key=lambda r: r.info.start_time)
    assert [p.info.status for p in parents] == ["FINISHED"] * 3
    by_parent = {
        p.info.run_id: sorted(
            r.data.tags["snakemake.rule"]
            for r in wf.jobs()
            if r.data.tags["mlflow.parentRunId"] == p.info.run_id
        )
        for p in parents
    }
    assert list(by_parent.values()) == [["a", "b"], ["c"], ["c"]]


@pytest.mark.parametrize("quiet", [["--quiet"], ["--quiet", "progress"], ["--quiet", "rules"]])
def test_quiet_modes_log_every_job(plain, quiet):
    wf = plain(CHAIN)
    result = wf.snakemake(*quiet)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = assert_clean(result, wf, 3)
    assert all(r.info.status == "FINISHED" for r in runs.values())
    if quiet == ["--quiet"]:
        assert "mlflow logger" not in result.stdout + result.stderr


def test_beside_another_logger(plain):
    wf = plain(CHAIN)
    result = wf.snakemake("--logger", "mlflow", "rich", logger=False)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = assert_clean(result, wf, 3)
    assert all(r.info.status == "FINISHED" for r in runs.values())


def test_rerun_incomplete_after_snakemake_was_killed(plain):
    wf = plain(
        """
        rule slow:
            output:
                "slow.txt",
            log:
                "logs/slow.log",
            shell:
                # only the first attempt is slow: the rerun need not wait
                "if [ ! -e started ]; then touch started; sleep 30; fi; echo done > {output}"
        """
    )
    proc = subprocess.Popen(
        [SNAKEMAKE, "--logger", "mlflow", "--cores", "1"],
        cwd=wf.path,
        env=wf.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while not (wf.path / "started").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job: their own group
    proc.wait()
    (wf.path / "slow.txt").write_text("half")  # what a killed job may leave
    (wf.path / "logs/slow.log").touch()
    assert wf.snakemake("--unlock").returncode == 0  # as Snakemake asks after a kill
    result = wf.snakemake("--rerun-incomplete")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (wf.path / "slow.txt").read_text() == "done\n"
    runs = sorted(wf.jobs(), key=lambda r: r.info.start_time)
    assert [r.info.status for r in runs] == ["KILLED", "FINISHED"]
    parents = sorted(wf.parents(), key=lambda r: r.info.start_time)
    assert [p.info.status for p in parents] == ["KILLED", "FINISHED"]
    assert "snakemake.killed" in parents[0].data.tags


def test_a_submitting_executor(plain, tmp_path):
    submit = tmp_path / "submit.sh"
    submit.write_text('#!/bin/bash\nbash "$1" > /dev/null 2>&1 &\necho "$!"\n')
    submit.chmod(0o755)
    wf = plain(CHAIN)
    result = wf.snakemake(
        "--executor",
        "cluster-generic",
        "--cluster-generic-submit-cmd",
        str(submit),
        "--jobs",
        "2",
        "--latency-wait",
        "5",
        "--seconds-between-status-checks",
        "1",  # Snakemake's default of 10 s would be most of this test's time
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = assert_clean(result, wf, 3)
    assert all(r.info.status == "FINISHED" for r in runs.values())
    assert all(r.data.tags.get("cluster.job_id", "").isdigit() for r in runs.values())

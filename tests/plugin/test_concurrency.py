"""Many processes against one fresh SQLite store at once: every run recorded, store intact."""

from __future__ import annotations

import subprocess

from support import SNAKEMAKE, Workflow, copy_workflow, titanic_rows, to_csv

N = 6


def test_concurrent_invocations_on_a_fresh_store(tmp_path, http_server):
    url = http_server.publish("conc/titanic.csv", to_csv(titanic_rows(40)))
    db = tmp_path / "shared" / "mlflow.db"
    db.parent.mkdir()
    workflows = [Workflow(copy_workflow(tmp_path / f"wf{i}")) for i in range(N)]
    procs = []
    for wf in workflows:
        wf.db = db
        wf.env["MLFLOW_TRACKING_URI"] = f"sqlite:///{db}"
        procs.append(
            subprocess.Popen(
                [SNAKEMAKE, "--cores", "1", "--until", "clean", "--config", f"data_url={url}"],
                cwd=wf.path,
                env=wf.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    failed = [out[-3000:] for p, out in zip(procs, outputs) if p.returncode != 0]
    assert not failed, failed[0]
    runs = workflows[0].runs()
    parents = [r for r in runs if r.data.tags["snakemake.kind"] == "invocation"]
    jobs = [r for r in runs if r.data.tags["snakemake.kind"] == "job"]
    assert len(parents) == N and len(jobs) == 2 * N
    assert all(r.info.status == "FINISHED" for r in runs)
    assert {j.data.tags["mlflow.parentRunId"] for j in jobs} == {p.info.run_id for p in parents}
    assert len(workflows[0].client().search_experiments()) == 2  # Default + snakeflow

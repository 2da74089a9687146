"""The oldest Snakemake the README claims: the plugin's core promises hold there too.

Older releases never log "Elapsed time:" at the end of a run (``Workflow.log_workflow_runtime``
came with 9.26.0), which the parent run's FINISHED status is taken from; before 9.11.7
Snakemake does not take snakemake-interface-logger-plugins 2.x at all.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_features import CHAIN

OLDEST = "9.26.0"  # the README's compatibility note says the same


@pytest.fixture(scope="module")
def oldest(tmp_path_factory):
    """Snakemake OLDEST installed on its own (from PyPI) in front of this environment's
    packages: the plugin and every other dependency are this environment's."""
    target = tmp_path_factory.mktemp("snakemake-oldest")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]
    done = subprocess.run(
        [*pip, str(target), f"snakemake=={OLDEST}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def test_the_oldest_snakemake_claimed(plain, oldest):
    wf = plain(CHAIN)
    wf.env["PYTHONPATH"] = str(oldest)
    version = subprocess.run(
        [sys.executable, "-m", "snakemake", "--version"], env=wf.env, capture_output=True, text=True
    )
    assert version.stdout.strip() == OLDEST
    for args in ([], ["--forcerun", "c", "--quiet"]):
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "--logger", "mlflow", "--cores", "2", *args],
            cwd=wf.path,
            env=wf.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        output = result.stdout + result.stderr
        assert "Traceback" not in output and "mlflow logger: warning" not in output, output
    runs = wf.jobs()
    assert sorted(r.data.tags["snakemake.rule"] for r in runs) == ["a", "b", "c", "c"]
    assert all(r.info.status == "FINISHED" for r in wf.runs())
    assert len(wf.parents()) == 2

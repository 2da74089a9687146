"""The linters CI relies on, and the Snakefile's parse-time cost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, copy_workflow

BIN = Path(sys.executable).parent


def run(*cmd: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ruff():
    for args in (("check", "."), ("format", "--check", ".")):
        proc = run(str(BIN / "ruff"), *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt():
    proc = run(str(BIN / "snakefmt"), "--check", "Snakefile")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    proc = run(str(BIN / "snakemake"), "--lint", cwd=wf)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def test_parsing_imports_no_heavy_modules(tmp_path):
    """A dry run parses the Snakefile; mlflow, pandas and sklearn must not be imported."""
    wf = copy_workflow(tmp_path / "wf")
    code = (
        "import sys, runpy\n"
        "sys.argv = ['snakemake', '-n', '--cores', '1']\n"
        "try:\n"
        "    runpy.run_module('snakemake', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('mlflow', 'pandas', 'sklearn', 'pyarrow') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = run(sys.executable, "-c", code, cwd=wf)
    assert "HEAVY []" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]

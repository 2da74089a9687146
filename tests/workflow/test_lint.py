"""The linters CI relies on, and the Snakefile's parse-time cost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import ROOT, copy_workflow

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


HEAVY = ("mlflow", "pandas", "sklearn", "pyarrow", "matplotlib", "skops", "requests")


def heavy_modules_after_dry_run(workdir: Path) -> list[str]:
    """Heavy modules loaded by ``snakemake -n`` in ``workdir`` (parse + DAG, no jobs)."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['snakemake', '-n', '--cores', '1']\n"
        "code = 0\n"
        "try:\n"
        "    runpy.run_module('snakemake', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code or 0\n"
        "print('EXIT', code)\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    proc = run(sys.executable, "-c", code, cwd=workdir)
    line = [x for x in proc.stdout.splitlines() if x.startswith("HEAVY ")]
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "EXIT 0" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    return eval(line[0][len("HEAVY ") :])


def test_parsing_imports_nothing_heavier_than_snakemake_itself(tmp_path):
    """The Snakefile adds no heavy import to what Snakemake (and its plugins) load anyway."""
    trivial = tmp_path / "trivial"
    trivial.mkdir()
    (trivial / "Snakefile").write_text(
        'rule all:\n    input:\n        "b"\n\n\nrule b:\n    output:\n        "b"\n'
        '    shell:\n        "touch {output}"\n'
    )
    baseline = heavy_modules_after_dry_run(trivial)
    ours = heavy_modules_after_dry_run(copy_workflow(tmp_path / "wf"))
    assert ours == baseline
    assert "mlflow" not in ours and "sklearn" not in ours

"""Static checks of the per-rule conda envs (conda itself is not needed, nor reachable here).

Every rule has ``conda: envs/<rule>.yaml``; every third-party module its script imports,
directly or through the shared ``snakeflow`` package, is provided by that env; and every
pinned version agrees with the pip pins in requirements.txt.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
# import name -> conda-forge package that provides it
PROVIDERS = {
    "mlflow": "mlflow-skinny",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "requests": "requests",
    "urllib3": "urllib3",
    "numpy": "numpy",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "matplotlib": "matplotlib-base",
    "scipy": "scipy",
    "skops": "skops",
}
# what mlflow-skinny needs for snakeflow's default SQLite store and dataset logging
MLFLOW_EXTRAS = {"sqlalchemy", "alembic", "numpy"}


def rules() -> dict[str, dict[str, str]]:
    """rule name -> its conda env and script, read from the Snakefile (snakefmt layout)."""
    text = (ROOT / "Snakefile").read_text()
    found = {}
    for match in re.finditer(r"^rule (\w+):\n((?:    .*\n|\n)+)", text, re.M):
        body = match.group(2)
        conda = re.search(r'conda:\n\s+"([^"]+)"', body)
        script = re.search(r'script:\n\s+"([^"]+)"', body)
        found[match.group(1)] = {
            "conda": conda.group(1) if conda else None,
            "script": script.group(1) if script else None,
            "log": "log:" in body,
        }
    return found


def env_packages(path: Path) -> dict[str, str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    pins = {}
    for dep in deps:
        assert isinstance(dep, str), f"{path.name}: pip sections are not allowed ({dep})"
        name, _, version = dep.partition("=")
        assert version and re.fullmatch(r"[\w.]+", version), f"{path.name}: {dep} is not pinned"
        pins[name.lower()] = version
    return pins


def pip_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt: {line} is not pinned with =="
            pins[name.lower()] = version
    return pins


def third_party_imports(script: Path, seen: set[Path] | None = None) -> set[str]:
    """Top-level third-party modules imported by ``script`` and the snakeflow modules it uses."""
    seen = seen if seen is not None else set()
    if script in seen:
        return set()
    seen.add(script)
    found: set[str] = set()
    tree = ast.parse(script.read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside the snakeflow package
                base = script.parent
                mod = node.module or ""
                targets = [mod] if mod else [a.name for a in node.names]
                for t in targets:
                    path = base / (t.replace(".", "/") + ".py")
                    if path.exists():
                        found |= third_party_imports(path, seen)
                continue
            names = [node.module or ""]
        for name in names:
            top = name.split(".")[0]
            if top == "snakeflow":
                sub = name.split(".")[1:] or [a.name for a in getattr(node, "names", [])]
                for part in sub:
                    path = SCRIPTS / "snakeflow" / f"{part}.py"
                    if path.exists():
                        found |= third_party_imports(path, seen)
                found |= third_party_imports(SCRIPTS / "snakeflow" / "__init__.py", seen)
            elif top and top not in sys.stdlib_module_names and top != "snakemake":
                found.add(top)
    return found


RULES = rules()
SCRIPTED = {name: r for name, r in RULES.items() if r["script"]}


def test_rules_found():
    assert {"download", "clean"} <= set(SCRIPTED)


@pytest.mark.parametrize("rule", sorted(SCRIPTED))
def test_rule_has_own_env_and_log(rule):
    info = SCRIPTED[rule]
    assert info["conda"] == f"envs/{rule}.yaml"
    assert info["script"] == f"scripts/{rule}.py"
    assert info["log"]


@pytest.mark.parametrize("rule", sorted(SCRIPTED))
def test_env_provides_every_import(rule):
    env = env_packages(ROOT / SCRIPTED[rule]["conda"])
    imports = third_party_imports(ROOT / SCRIPTED[rule]["script"])
    unknown = imports - set(PROVIDERS)
    assert not unknown, f"add these modules to PROVIDERS: {unknown}"
    missing = {PROVIDERS[m] for m in imports} - set(env)
    if "mlflow" in imports:
        missing |= MLFLOW_EXTRAS - set(env)
    assert not missing, f"envs/{rule}.yaml lacks {sorted(missing)}"
    assert env.get("python") == "3.11"


@pytest.mark.parametrize("env", sorted(p.name for p in (ROOT / "envs").glob("*.yaml")))
def test_env_pins_agree_with_pip(env):
    pins = pip_pins()
    for name, version in env_packages(ROOT / "envs" / env).items():
        if name == "python":
            continue
        pip_name = "matplotlib" if name == "matplotlib-base" else name
        assert pip_name in pins, f"{env}: {name} is not pinned in requirements.txt"
        assert pins[pip_name] == version, f"{env}: {name}={version}, pip has {pins[pip_name]}"
    assert yaml.safe_load((ROOT / "envs" / env).read_text())["channels"][0] == "conda-forge"


def test_every_env_is_used():
    used = {r["conda"] for r in RULES.values() if r["conda"]}
    assert used == {f"envs/{p.name}" for p in (ROOT / "envs").glob("*.yaml")}


def test_detects_a_missing_import(tmp_path):
    script = tmp_path / "x.py"
    script.write_text("import sklearn.linear_model\nfrom snakeflow import tracking\n")
    assert {"sklearn", "mlflow"} <= third_party_imports(script)

"""Static checks of the per-rule conda envs (conda itself is not needed, nor reachable here).

Every rule has ``conda: envs/<rule>.yaml``; every third-party module its script imports,
directly or through the shared ``snakeflow`` package, is provided by that env, and the env
carries no tracking client its script does not use. The envs pin ``major.minor`` (what
conda-forge reliably carries); requirements.txt pins the exact patch for pip, and every such
pip version must fall inside its env's spec.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
ENVS = sorted(p.name for p in (ROOT / "envs").glob("*.yaml"))
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
# conda-forge package -> the PyPI name it is pinned under in requirements.txt
CONDA_TO_PIP = {"matplotlib-base": "matplotlib"}
# The rules that open the Model Registry. Its default store is sqlite:///mlflow.db, which
# mlflow-skinny reaches through sqlalchemy + alembic; every other rule's env must not carry them.
REGISTRY_RULES = {"register", "predict"}
STORE_DRIVERS = {"sqlalchemy", "alembic"}
# (env file, package) -> why that env pins one patch release (`=a.b.c` or `==...`) rather than
# `major.minor`. Add an entry only with a reason: conda-forge may never carry a given patch.
EXACT_PINS_ALLOWED: dict[tuple[str, str], str] = {}


def rules() -> dict[str, dict[str, str]]:
    """rule name -> its conda env and script, read from the Snakefile (snakefmt layout)."""
    text = (ROOT / "Snakefile").read_text()
    found = {}
    for match in re.finditer(r"^(?:rule|checkpoint) (\w+):\n((?:    .*\n|\n)+)", text, re.M):
        body = match.group(2)
        conda = re.search(r'conda:\n\s+"([^"]+)"', body)
        script = re.search(r'script:\n\s+"([^"]+)"', body)
        found[match.group(1)] = {
            "conda": conda.group(1) if conda else None,
            "script": script.group(1) if script else None,
            "log": "log:" in body,
        }
    return found


def conda_spec(spec: str) -> SpecifierSet:
    """The PEP 440 equivalent of a conda version spec (the part after the package name).

    ``=X.Y`` is conda's fuzzy match, X.Y.* (so ``=3.1`` admits 3.1.1 but not 3.10.0);
    ``==X.Y.Z`` is exact; ``>=A,<B`` (and ``>``, ``<=``, ``!=``, ``~=``) are ranges. OR (``|``),
    build strings (``=X.Y=build``) and bare versions are refused rather than guessed at.
    """
    spec = spec.replace(" ", "")
    if re.fullmatch(r"=[0-9][\w.]*(\.\*)?", spec):
        version = spec[1:].removesuffix(".*")
        return SpecifierSet(f"=={version}.*")
    if not spec or "|" in spec or re.search(r"[\w*]=", spec):  # OR, or a build string
        raise ValueError(f"unsupported conda version spec {spec!r} (use =X.Y, ==X.Y.Z or >=A,<B)")
    try:
        return SpecifierSet(spec)
    except InvalidSpecifier as err:
        raise ValueError(f"unsupported conda version spec {spec!r}") from err


def pins_one_patch(specs: SpecifierSet) -> bool:
    """True if the spec admits a single patch release: `=a.b.c` (a.b.c.*) or an exact `==`."""
    for s in specs:
        if s.operator == "===":
            return True
        if s.operator == "==":
            if not s.version.endswith(".*"):
                return True
            if len(s.version.removesuffix(".*").split(".")) >= 3:
                return True
    return False


def env_packages(path: Path) -> dict[str, str]:
    """conda package name -> its version spec (``=3.1``, ``==2.0.58``, ``>=2.0,<2.1``)."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    pins = {}
    for dep in deps:
        assert isinstance(dep, str), f"{path.name}: pip sections are not allowed ({dep})"
        match = re.fullmatch(r"([A-Za-z0-9][\w.-]*)\s*(.*)", dep.strip())
        assert match and match.group(2), f"{path.name}: {dep} is not pinned"
        name, spec = match.groups()
        try:
            conda_spec(spec)
        except ValueError as err:
            pytest.fail(f"{path.name}: {dep}: {err}")
        pins[name.lower()] = spec.replace(" ", "")
    return pins


def is_path_or_option(line: str, base: Path | None = None) -> bool:
    """A requirements line that names no PyPI release: an option or a local path / URL."""
    return (
        line.startswith(("-", ".", "/", "~"))
        or "://" in line
        or re.match(r"[\w.-]+(\[[^\]]*\])?\s*@", line) is not None  # name @ path-or-url
        or re.match(r"[^=<>!~;\[\s]*[/\\]", line) is not None  # plugin/, dir\pkg
        or line.endswith((".whl", ".tar.gz", ".zip"))
        or (base is not None and (base / line).is_dir())  # a bare directory name: pip installs it
    )


def parse_requirements(text: str, base: Path | None = None) -> dict[str, str | None]:
    """PyPI name -> its exact pip version (None if it is named without an exact ``==`` pin).

    Options (``-e``, ``-r``, ``--index-url``, ...) and local paths or URLs are skipped.
    """
    pins: dict[str, str | None] = {}
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = re.sub(r"(^|\s)#.*", "", line).strip()
        line = re.split(r"\s--?\w", line)[0].strip()  # per-line options such as --hash=...
        if not line or is_path_or_option(line, base):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as err:
            raise AssertionError(f"requirements.txt: cannot parse {line!r}: {err}") from err
        specs = list(req.specifier)
        exact = len(specs) == 1 and specs[0].operator in ("==", "===")
        exact = exact and "*" not in specs[0].version
        pins[canonicalize_name(req.name)] = specs[0].version if exact else None
    return pins


def pip_pins() -> dict[str, str | None]:
    return parse_requirements((ROOT / "requirements.txt").read_text(), ROOT)


def pin_problems(env_name: str, env: dict[str, str], pins: dict[str, str | None]) -> list[str]:
    """What is wrong with an env's version specs, measured against the exact pip pins."""
    problems = []
    for name, spec in env.items():
        specs = conda_spec(spec)
        if pins_one_patch(specs) and (env_name, name) not in EXACT_PINS_ALLOWED:
            problems.append(
                f"{name}{spec} pins one patch release, which conda-forge may not carry: "
                "pin major.minor (=X.Y) or list it in EXACT_PINS_ALLOWED with a reason"
            )
        if name == "python":
            continue
        pip_name = canonicalize_name(CONDA_TO_PIP.get(name, name))
        if pip_name not in pins:
            problems.append(f"{name} is not in requirements.txt")
        elif pins[pip_name] is None:
            problems.append(f"{name} is not pinned exactly (==) in requirements.txt")
        elif not specs.contains(Version(pins[pip_name]), prereleases=True):
            problems.append(f"{name}{spec} does not admit pip's {pip_name}=={pins[pip_name]}")
    return problems


def env_problems(imports: set[str], env: dict[str, str]) -> list[str]:
    """What an env lacks for ``imports``, or carries as a tracking client nothing imports."""
    unknown = imports - set(PROVIDERS)
    if unknown:
        return [f"add these modules to PROVIDERS: {sorted(unknown)}"]
    problems = []
    missing = {PROVIDERS[m] for m in imports} - set(env)
    if missing:
        problems.append(f"lacks {sorted(missing)}")
    if "mlflow" not in imports:
        unused = ({"mlflow-skinny"} | STORE_DRIVERS) & set(env)
        if unused:
            problems.append(f"carries {sorted(unused)}, but its script does not import mlflow")
    return problems


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
    assert set(SCRIPTED) >= REGISTRY_RULES


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
    problems = env_problems(imports, env)
    assert not problems, f"envs/{rule}.yaml: " + "; ".join(problems)


@pytest.mark.parametrize("rule", sorted(SCRIPTED))
def test_sql_store_only_for_registry_rules(rule):
    env = set(env_packages(ROOT / SCRIPTED[rule]["conda"]))
    if rule in REGISTRY_RULES:
        missing = ({"mlflow-skinny"} | STORE_DRIVERS) - env
        assert not missing, f"envs/{rule}.yaml opens the Model Registry but lacks {sorted(missing)}"
    else:
        extra = STORE_DRIVERS & env
        assert not extra, f"envs/{rule}.yaml opens no tracking store but carries {sorted(extra)}"


@pytest.mark.parametrize("env", ENVS)
def test_env_specs_admit_the_pip_pins(env):
    data = yaml.safe_load((ROOT / "envs" / env).read_text())
    packages = env_packages(ROOT / "envs" / env)
    problems = pin_problems(env, packages, pip_pins())
    assert not problems, f"envs/{env}: " + "; ".join(problems)
    assert packages.get("python") == "=3.11"
    assert data["channels"] == ["conda-forge", "nodefaults"]


def test_exact_pin_exceptions_are_current():
    for (env, name), reason in EXACT_PINS_ALLOWED.items():
        assert reason.strip(), f"EXACT_PINS_ALLOWED[{env}, {name}] needs a reason"
        spec = env_packages(ROOT / "envs" / env).get(name)
        assert spec and pins_one_patch(conda_spec(spec)), f"stale EXACT_PINS_ALLOWED: {env} {name}"


def test_requirements_pin_every_release_exactly():
    unpinned = [name for name, version in pip_pins().items() if version is None]
    assert not unpinned, f"requirements.txt: pin these with ==: {unpinned}"


def test_every_env_is_used():
    used = {r["conda"] for r in RULES.values() if r["conda"]}
    assert used == {f"envs/{name}" for name in ENVS}


@pytest.mark.parametrize(
    ("spec", "version", "admitted"),
    [
        ("=3.1", "3.1.1", True),
        ("=3.1", "3.1.0", True),
        ("=3.1", "3.10.0", False),
        ("=3.1", "3.2.0", False),
        ("=2.0", "2.0.58", True),
        ("=2.0", "2.1.0", False),
        ("=2.0.*", "2.0.58", True),
        ("=25.0", "25.0.1", True),
        ("==2.0.58", "2.0.58", True),
        ("==2.0.58", "2.0.59", False),
        (">=2.0,<2.1", "2.0.58", True),
        (">=2.0,<2.1", "2.1.0", False),
        (">=2.0, <2.1", "1.9.9", False),
        ("~=2.0.5", "2.0.58", True),
        ("~=2.0.5", "2.1.0", False),
    ],
)
def test_conda_spec_semantics(spec, version, admitted):
    assert conda_spec(spec).contains(Version(version), prereleases=True) is admitted


@pytest.mark.parametrize(
    "spec", ["2.0.58", "2.0.*", "=2.0|=2.1", "=2.0=py311_0", "==2.0.58=py311_0"]
)
def test_unsupported_conda_specs_are_refused(spec):
    with pytest.raises(ValueError):
        conda_spec(spec)


def test_pin_check_flags_a_mismatch_an_exact_patch_and_a_missing_pin():
    pins = {"pandas": "3.1.1", "sqlalchemy": "2.0.58", "matplotlib": "3.11.2", "scipy": None}
    assert pin_problems("x.yaml", {"python": "=3.11", "pandas": "=3.1"}, pins) == []
    assert pin_problems("x.yaml", {"matplotlib-base": "=3.11"}, pins) == []
    (wrong,) = pin_problems("x.yaml", {"pandas": "=3.2"}, pins)
    assert "does not admit pip's pandas==3.1.1" in wrong
    (patch,) = pin_problems("x.yaml", {"sqlalchemy": "=2.0.58"}, pins)
    assert "pins one patch release" in patch
    assert len(pin_problems("x.yaml", {"sqlalchemy": "==2.0.58"}, pins)) == 1
    assert "not in requirements.txt" in pin_problems("x.yaml", {"polars": "=1.0"}, pins)[0]
    assert "not pinned exactly" in pin_problems("x.yaml", {"scipy": "=1.17"}, pins)[0]


def test_pin_check_honours_an_allowed_exact_pin(monkeypatch):
    monkeypatch.setitem(EXACT_PINS_ALLOWED, ("x.yaml", "sqlalchemy"), "a reason")
    assert pin_problems("x.yaml", {"sqlalchemy": "=2.0.58"}, {"sqlalchemy": "2.0.58"}) == []
    assert pin_problems("y.yaml", {"sqlalchemy": "=2.0.58"}, {"sqlalchemy": "2.0.58"}) != []


def test_requirements_parser_skips_paths_and_options(tmp_path):
    (tmp_path / "localpkg").mkdir()
    text = (
        "# comment\n"
        "-r other.txt\n"
        "--index-url https://example.org/simple\n"
        "-e ./snakemake-logger-plugin-mlflow\n"
        "./plugin\n"
        "plugin/\n"
        "/abs/path/pkg-1.0-py3-none-any.whl\n"
        "git+https://example.org/x.git#egg=x\n"
        "snakemake-logger-plugin-mlflow @ file:///src/plugin\n"
        "plugin[extra] @ ./plugin\n"
        "mlflow[auth]==3.17.2  # extras\n"
        "SQLAlchemy==2.0.58 ; python_version >= '3.11'\n"
        "pyarrow==25.0.1 \\\n    --hash=sha256:0123\n"
        "snakemake>=9\n"
        "localpkg\n"
    )
    assert parse_requirements(text, tmp_path) == {
        "mlflow": "3.17.2",
        "sqlalchemy": "2.0.58",
        "pyarrow": "25.0.1",
        "snakemake": None,
    }


def test_detects_a_missing_import(tmp_path):
    script = tmp_path / "x.py"
    script.write_text("import sklearn.linear_model\nfrom snakeflow import registry\n")
    assert {"sklearn", "mlflow"} <= third_party_imports(script)


def test_detects_a_missing_package_and_an_unused_tracking_client():
    env = {"python": "=3.11", "pandas": "=3.1", "mlflow-skinny": "=3.17", "sqlalchemy": "=2.0"}
    assert env_problems({"pandas", "mlflow"}, env) == []
    (missing,) = env_problems({"pandas", "mlflow", "sklearn"}, env)
    assert "lacks ['scikit-learn']" in missing
    (unused,) = env_problems({"pandas"}, env)
    assert "['mlflow-skinny', 'sqlalchemy']" in unused
    assert "PROVIDERS" in env_problems({"torch"}, env)[0]


@pytest.mark.parametrize("rule", ["download", "clean", "split"])
def test_data_steps_import_no_tracking_client(rule):
    """download, clean and split never load MLflow, SQLAlchemy or alembic, not even through
    scripts/snakeflow: they only write their job record."""
    assert not {"mlflow", "sqlalchemy", "alembic"} & third_party_imports(SCRIPTS / f"{rule}.py")


def test_split_loads_no_scikit_learn():
    """split chooses its rows with numpy (snakeflow.sampling): scikit-learn's import is 0.8 s
    a job. Loaded as the job loads it, in a fresh interpreter."""
    probe = (
        "import importlib.util, sys; sys.path.insert(0, 'scripts');"
        "spec = importlib.util.spec_from_file_location('split', 'scripts/split.py');"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec));"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'pandas', 'mlflow'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"

"""How long a step's third-party imports take in a fresh process.

    python step_imports.py list STEP SCRIPTS_DIR      # the modules, one per line
    python step_imports.py time MODULES_FILE          # seconds to import them

``list`` imports the step's script as a module (``SCRIPTS_DIR/<step>.py``; its ``main()``
does not run), then what the step imports only on first use (``LAZY``), and prints the
third-party modules that this loaded, in the order they were loaded. ``time``, in another
fresh process, imports exactly those modules and prints the seconds it took: the libraries'
import time, without the standard-library and snakeflow modules around them (those are part
of the job's overhead). STEP ``preamble`` is the Snakemake preamble of every job script
(unpickling the ``snakemake`` object).
"""

import contextlib
import importlib
import sys
import time

# What the steps import on first use, not when their script is imported: clean's numpy,
# pyarrow and (through pyarrow) pandas, inside its functions; train's estimators (imported
# by name from the config); the sklearn modules of a pipeline that evaluate and predict
# load; what scikit-learn and pandas load for a DataFrame and MLflow for saving a model;
# matplotlib's Agg backend and PIL's image plugins; MLflow's SQL stores (SQLAlchemy,
# alembic, OpenTelemetry) in register, which reaches the tracking store. step_work.py reports
# what a step's work still imported (``imported_by_work`` in bench/results.json): it
# belongs here.
SKLEARN_MODELS = ["sklearn.linear_model", "sklearn.ensemble"]
DATAFRAMES = [
    "pyarrow.pandas_compat",
    "pyarrow.vendored.version",
    "narwhals._interchange.dataframe",
    "narwhals._namespace",
    "narwhals._pandas_like.namespace",
    "narwhals.stable.v2._namespace",
]
SQL_STORES = [
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_workspace_store",
    "mlflow.tracing.processor.otel",
    "mlflow.tracing.export.utils",
    "mlflow.utils.search_logged_model_utils",
    "sqlalchemy.dialects.sqlite",
    "alembic.command",
    "alembic.config",
]
PLOTS = [
    "matplotlib.backends.backend_agg",
    "PIL.features",
    "PIL.BmpImagePlugin",
    "PIL.GifImagePlugin",
    "PIL.JpegImagePlugin",
    "PIL.PpmImagePlugin",
]
LAZY = {
    "preamble": ["snakemake.iocontainers"],
    "download": [],
    # pandas too: pyarrow converts clean's kept-rows mask to numpy through its pandas shim
    "clean": ["numpy", "pyarrow", "pyarrow.csv", "pyarrow.compute", "pandas"],
    "split": [],
    "train": [
        *SKLEARN_MODELS,
        *DATAFRAMES,
        "mlflow.pyfunc",
        "pandas.core.methods.to_dict",
        "importlib_metadata._adapters",
    ],
    "evaluate": [*SKLEARN_MODELS, *DATAFRAMES, *PLOTS],
    "register": SQL_STORES,
    # this invocation's champion, from its directory: no MLflow, no store
    "predict": [*SKLEARN_MODELS, *DATAFRAMES, "pandas.io.formats.csvs"],
}
OWN = {"snakeflow", *LAZY}  # the steps' own modules


def third_party(module: str) -> bool:
    top = module.split(".")[0]
    ours = top in OWN or top in sys.stdlib_module_names or top.startswith("__")
    return not ours and top != "org"  # org.python.core: pickle's probe for Jython


def import_step(step: str, scripts: str) -> None:
    """Import what ``step`` imports: its script, then its first-use imports."""
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    if step != "preamble":
        importlib.import_module(step)
    for name in LAZY[step]:
        importlib.import_module(name)


def import_all(names: list[str]) -> float:
    """Import ``names`` in order; the seconds it took. A module that cannot be imported by
    its name (an alias a library put in sys.modules) was loaded by its parent anyway."""
    started = time.perf_counter()
    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    return time.perf_counter() - started


def main(argv: list[str]) -> None:
    if argv[0] == "list":
        before = set(sys.modules)
        import_step(argv[1], argv[2])
        print("\n".join(m for m in sys.modules if m not in before and third_party(m)))
    else:
        with open(argv[1]) as fh:
            print(import_all(fh.read().split()))


if __name__ == "__main__":
    main(sys.argv[1:])

"""The order the tests start in, so that the xdist workers finish together.

pytest-xdist's ``worksteal`` scheduler (``addopts`` in pyproject.toml) gives worker ``i`` the
``i``-th contiguous share of the collected tests, each worker runs its share from the front,
and a worker left idle steals the back half of the longest queue. So the slowest tests go to
the fronts of the shares, longest first, each to the share with the least work so far; the
many short tests fill the backs, where stealing evens out the end. A module whose tests share
a costly module-scoped fixture is listed whole: its tests stay together, with one setup.

Tests that mostly wait on a batch scheduler (``WAITING``: the Slurm and Grid Engine
scenarios, a few minutes each of polling job states with the CPU nearly idle) share the
front of one share of their own when there are more than two workers, so that they wait
while the other workers keep the cores busy: pyproject.toml runs ``-n 3`` on this 2-core
machine. Measured on fresh clones (``bash .ci/run``): 701 s with the two scenarios on a
share of their own (648 s of pytest), against 1,146-1,305 s at ``-n 2`` in the last round
(a day this machine ran about 1.7x slower), where each scenario held one of the two
workers while it waited; the suite without the scenarios took 496 s of pytest at ``-n 2``
on the day of the 701 s.

Only the order changes: every test still runs, on whichever worker.
"""

from __future__ import annotations

# Seconds each takes, as measured in .ci/run on the 2-core CI machine, slowest first (a
# cluster test: mostly waiting). Rough figures are enough: only their order and sizes matter.
# A test not listed counts as short. A key starts the node ids it covers.
SLOW = {
    "tests/workflow/test_readme.py": 300,  # one `make run` in a fresh clone, then its three tests
    "tests/cluster/test_sge.py": 265,
    "tests/cluster/test_slurm.py": 220,
    "tests/workflow/test_pipeline.py::test_titanic_grid_end_to_end": 160,
    "tests/plugin/test_faults.py::test_kill_9_inside_every_write_then_rerun_completes": 100,
    "tests/workflow/test_datasets.py": 90,  # one module-scoped run of two datasets, then its tests
    "tests/plugin/test_contention.py::test_grid_of_models_loses_nothing[server]": 67,
    "tests/workflow/test_pipeline.py::test_multiclass_string_labels_and_gate": 43,
    "tests/plugin/test_faults.py::test_store_down_during_the_run": 41,
    "tests/plugin/test_contention.py::test_grid_of_models_loses_nothing[sqlite]": 40,
    "tests/plugin/test_faults.py::test_kill_9_while_the_store_is_down": 34,
    "tests/plugin/test_concurrency.py": 31,
    "tests/plugin/test_faults.py::test_tracking_server_restart_is_retried": 27,
    "snakemake-logger-plugin-mlflow/tests/test_writer_process.py": 30,
    "tests/plugin/test_secrets.py::test_basic_auth_tracking_server": 24,
    "tests/workflow/test_pipeline.py::test_grid_points_are_search_jobs_and_the_best_is_refit": 19,
    "snakemake-logger-plugin-mlflow/tests/test_dag_features.py::test_forcerun": 18,
    "snakemake-logger-plugin-mlflow/tests/test_workflows.py": 20,  # a module-scoped run
    "snakemake-logger-plugin-mlflow/tests/test_oldest_snakemake.py": 15,
    "snakemake-logger-plugin-mlflow/tests/test_server.py": 12,  # starts an mlflow server
    "snakemake-logger-plugin-mlflow/tests/test_dag_features.py::test_a_submitting_executor": 12,
    "snakemake-logger-plugin-mlflow/tests/test_dag_features.py::test_a_service": 11,
    "tests/plugin/test_secrets.py::test_url_from_environment_is_used_but_never_recorded": 9,
}


# tests that wait on a scheduler rather than use the CPU: one share holds them all
WAITING = ("tests/cluster/test_slurm.py", "tests/cluster/test_sge.py")


def _cost(nodeid: str) -> tuple[str, float] | None:
    for key, seconds in SLOW.items():
        if nodeid.startswith(key):
            return key, seconds
    return None


def order(items: list, workers: int) -> list:
    """``items`` reordered for ``workers`` xdist workers under ``--dist worksteal``."""
    units: dict[str, list] = {}  # listed key -> its tests, in collection order
    rest = []
    for item in items:
        found = _cost(item.nodeid)
        if found:
            units.setdefault(found[0], []).append(item)
        else:
            rest.append(item)
    # the share sizes worksteal hands out at the start: n // workers, then what is left, ...
    sizes, left = [], len(items)
    for i in range(workers):
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    shares: list[list] = [[] for _ in range(workers)]
    work = [0.0] * workers
    waiting = workers - 1 if workers > 2 else None  # the share of the WAITING tests
    for key in sorted(units, key=lambda k: (k not in WAITING, -SLOW[k])):
        if waiting is not None and key in WAITING:
            shares[waiting] += units[key]
            work[waiting] += SLOW[key]
            continue
        cpu = [i for i in range(workers) if i != waiting]
        fits = [i for i in cpu if len(shares[i]) + len(units[key]) <= sizes[i]]
        i = min(fits or cpu, key=lambda i: work[i])
        shares[i] += units[key]
        work[i] += SLOW[key]
    for i in range(workers):  # the short tests, in their own order, fill the backs
        while len(shares[i]) < sizes[i] and rest:
            shares[i].append(rest.pop(0))
    return [item for share in shares for item in share] + rest

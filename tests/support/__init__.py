"""Test helpers: generated data, loopback servers, and the workflow runner.

Fixtures that use them live in ``tests/conftest.py``.
"""

from .data import (
    GRID,
    REGRESSORS,
    expected_clean,
    flower_rows,
    house_rows,
    sha256,
    titanic_rows,
    to_csv,
)
from .servers import ADMIN_PASSWORD, DroppingServer, Server, TrackingServer, free_port
from .workflow import BIN, ROOT, SNAKEMAKE, WORKFLOW_FILES, Result, Workflow, copy_workflow

__all__ = [
    "ADMIN_PASSWORD",
    "BIN",
    "GRID",
    "REGRESSORS",
    "ROOT",
    "SNAKEMAKE",
    "WORKFLOW_FILES",
    "DroppingServer",
    "Result",
    "Server",
    "TrackingServer",
    "Workflow",
    "copy_workflow",
    "expected_clean",
    "flower_rows",
    "free_port",
    "house_rows",
    "sha256",
    "titanic_rows",
    "to_csv",
]

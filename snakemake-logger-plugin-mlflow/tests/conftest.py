"""Fixtures of the plugin's own tests (helpers in ``smk.py``)."""

from __future__ import annotations

import pytest
from smk import Plain


@pytest.fixture
def plain(tmp_path):
    """Make a Plain workflow from a Snakefile's text."""
    count = iter(range(1000))

    def make(snakefile: str) -> Plain:
        return Plain(tmp_path / f"wf{next(count)}", snakefile)

    return make

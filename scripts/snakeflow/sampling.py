"""The test rows of a seeded, optionally stratified train/test split, with numpy alone.

:func:`holdout_rows` picks exactly the rows scikit-learn's ``train_test_split(range(n),
test_size=..., random_state=seed, stratify=...)`` puts in its test set (the same draws of the
same ``numpy.random.RandomState``, in the same order; ``tests/steps/test_ml_units.py`` checks it
against scikit-learn), so the split job need not import scikit-learn (0.8 s a job).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _sizes(n: int, test_size: float) -> tuple[int, int]:
    """(train rows, test rows), rounded as scikit-learn does; ValueError if one is empty."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size={test_size} should be a float in the (0, 1) range")
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_train <= 0 or n_test <= 0:
        raise ValueError(
            f"With n_samples={n}, test_size={test_size}, the resulting train set will be empty"
        )
    return n_train, n_test


def _approximate_mode(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """How many of ``draws`` rows each class gets, in proportion to ``counts``: the floors,
    then one more for the largest remainders, ties broken by ``rng``."""
    continuous = counts / counts.sum() * draws
    floored = np.floor(continuous)
    need = int(draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            now = min(len(tied), need)
            floored[rng.choice(tied, size=now, replace=False)] += 1
            need -= now
            if need == 0:
                break
    return floored.astype(int)


def holdout_rows(
    n: int, *, test_size: float, seed: int, stratify: Sequence | None = None
) -> np.ndarray:
    """The indices (0 .. ``n`` - 1) of the test rows: ``ceil(test_size * n)`` of them.

    With ``stratify`` (one label per row) every label keeps its share in both parts;
    ValueError if a label has a single row, or there are more labels than train or test rows.
    """
    n_train, n_test = _sizes(n, test_size)
    rng = np.random.RandomState(seed)
    if stratify is None:
        return rng.permutation(n)[:n_test]
    classes, inverse, counts = np.unique(
        np.asarray(stratify), return_inverse=True, return_counts=True
    )
    if counts.min() < 2:
        raise ValueError(
            "the least populated classes have only 1 member, which is too few: "
            f"{classes[counts < 2].tolist()}"
        )
    for part, rows in (("train", n_train), ("test", n_test)):
        if rows < len(classes):
            raise ValueError(
                f"the {part} split's {rows} rows should be at least the {len(classes)} classes"
            )
    by_class = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    train_counts = _approximate_mode(counts, n_train, rng)
    test_counts = _approximate_mode(counts - train_counts, n_test, rng)
    test = [
        members.take(rng.permutation(len(members)))[start : start + size]
        for members, start, size in zip(by_class, train_counts, test_counts, strict=True)
    ]
    return np.concatenate(test)

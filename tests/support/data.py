"""Generated datasets: Titanic-shaped rows, a multiclass flower set, and what clean keeps."""

from __future__ import annotations

import csv
import hashlib
import io
import random
from pathlib import Path


def titanic_rows(n: int = 120, seed: int = 0, noise: float = 0.2) -> list[list[str]]:
    """Titanic-shaped rows (header first): ids, quoted names with commas and quotes, nulls.

    The label follows the sex, flipped with probability ``noise``."""
    rng = random.Random(seed)
    header = [
        "PassengerId",
        "Survived",
        "Pclass",
        "Name",
        "Sex",
        "Age",
        "SibSp",
        "Parch",
        "Ticket",
        "Fare",
        "Cabin",
        "Embarked",
    ]
    rows = [header]
    for i in range(1, n + 1):
        pclass = rng.choice([1, 2, 3])
        sex = rng.choice(["male", "female"])
        age = "" if rng.random() < 0.2 else str(rng.choice([22, 38, 26, 35, 54, 2, 27, 14]))
        if age and rng.random() < 0.2:
            age = f"{rng.randint(1, 70)}.5"
        fare = f"{rng.uniform(5, 120):.4f}"
        survived = int(
            (sex == "female") ^ (rng.random() < noise) or (pclass == 1 and rng.random() < 0.3)
        )
        name = rng.choice(
            [
                "Braund, Mr. Owen Harris",
                "Cumings, Mrs. John Bradley (Florence)",
                'Nasser, Mrs. Nicholas ("Adele Achem")',
                "Heikkinen, Miss. Laina",
            ]
        )
        cabin = rng.choice(["C85", "C123", "E46", "B96 B98"]) if rng.random() < 0.6 else ""
        embarked = rng.choice(["S", "C", "Q"]) if rng.random() < 0.97 else ""
        rows.append(
            [
                str(i),
                str(survived),
                str(pclass),
                name,
                sex,
                age,
                str(rng.randint(0, 3)),
                str(rng.randint(0, 2)),
                f"A/5 {rng.randint(1000, 99999)}",
                fare,
                cabin,
                embarked,
            ]
        )
    return rows


# four quick models, for the pipeline tests
GRID = {
    "logreg": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 1.0}},
    "forest": {
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 20},
    },
    "boost": {
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 20},
    },
    "tree": {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}},
}


def to_csv(rows: list[list[str]], lineterminator: str = "\n") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=lineterminator).writerows(rows)
    return buf.getvalue().encode()


def expected_clean(rows: list[list[str]]) -> list[list[str]]:
    """Rows the default clean keeps: those without an empty field."""
    return [rows[0]] + [r for r in rows[1:] if all(v != "" for v in r)]


def flower_rows(n: int = 150, seed: int = 1) -> list[list[str]]:
    """A multiclass dataset unlike Titanic: string labels, an id, free text, missing values."""
    rng = random.Random(seed)
    header = ["flower_id", "petal_length", "petal_width", "stem_cm", "colour", "notes", "species"]
    centres = {"setosa": (1.5, 0.3, 20), "versicolor": (4.3, 1.3, 35), "virginica": (5.6, 2.0, 50)}
    colours = {"setosa": "white", "versicolor": "blue", "virginica": "purple"}
    rows = [header]
    for i in range(n):
        species = list(centres)[i % 3]
        length, width, stem = centres[species]
        colour = colours[species] if rng.random() < 0.7 else rng.choice(list(colours.values()))
        rows.append(
            [
                str(1000 + i),
                "" if rng.random() < 0.1 else f"{rng.gauss(length, 0.4):.1f}",
                f"{rng.gauss(width, 0.2):.1f}",
                str(int(rng.gauss(stem, 6))),
                "" if rng.random() < 0.1 else colour,
                f"picked on day {i} near plot {rng.randint(1, 10**6)}",
                species,
            ]
        )
    return rows


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def house_rows(n: int = 200, seed: int = 2) -> list[list[str]]:
    """A regression dataset: a price (a float with cents) from area, rooms, age and district,
    with noise, an id column and missing values."""
    rng = random.Random(seed)
    header = ["house_id", "area_m2", "rooms", "age_years", "district", "price"]
    premium = {"north": 40_000.0, "centre": 90_000.0, "south": 0.0}
    rows = [header]
    for i in range(n):
        area = rng.uniform(35, 220)
        rooms = max(1, int(area // 30) + rng.choice([-1, 0, 1]))
        age = rng.randint(0, 90)
        district = rng.choice(list(premium))
        price = 2_500 * area + 8_000 * rooms - 600 * age + premium[district]
        price += rng.gauss(0, 15_000)
        rows.append(
            [
                str(5000 + i),
                f"{area:.1f}",
                str(rooms),
                "" if rng.random() < 0.05 else str(age),
                district,
                f"{price:.2f}",
            ]
        )
    return rows


# quick regressors, for the pipeline tests (the regression twin of GRID)
REGRESSORS = {
    "ridge": {"estimator": "sklearn.linear_model.Ridge", "task": "regression"},
    "forest_reg": {
        "estimator": "sklearn.ensemble.RandomForestRegressor",
        "task": "regression",
        "params": {"n_estimators": 20},
        "grid": {"max_depth": [4, None]},
    },
}

"""Regenerate the sample datasets: `python sample_data/generate.py` (deterministic, seed 2026).

Every file here is synthetic, drawn from the models written below, so it is free of any
licence and its true parameters are known.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def _write(name: str, header: list[str], rows) -> None:
    with open(HERE / name, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def houses(rng, n=200):
    """Regression with a categorical column: price (k$) ~ area, rooms, age, district."""
    area = rng.uniform(40, 220, n).round(1)
    rooms = rng.integers(1, 7, n)
    age = rng.integers(0, 80, n)
    district = rng.choice(["centre", "north", "south"], n, p=[0.3, 0.4, 0.3])
    bonus = np.select([district == "centre", district == "north"], [60.0, 15.0], 0.0)
    price = 50 + 2.1 * area + 8.0 * rooms - 0.9 * age + bonus + rng.normal(0, 25, n)
    _write("houses.csv", ["id", "area", "rooms", "age", "district", "price"],
           zip(range(1, n + 1), area, rooms, age, district, price.round(2)))


def admissions(rng, n=400):
    """Binary classification: admitted (0/1) ~ gre, gpa, rank (logistic model)."""
    gre = rng.normal(580, 110, n).clip(220, 800).round(-1)
    gpa = rng.normal(3.4, 0.38, n).clip(2.0, 4.0).round(2)
    rank = rng.integers(1, 5, n)
    eta = -4.5 + 0.003 * gre + 0.9 * gpa - 0.55 * rank
    admitted = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    _write("admissions.csv", ["gre", "gpa", "rank", "admitted"], zip(gre, gpa, rank, admitted))


def flowers(rng, n_per=60):
    """Multi-class classification: three species from four measurements."""
    centres = {"setosa": [5.0, 3.4, 1.5, 0.25], "versicolor": [5.9, 2.8, 4.3, 1.3],
               "virginica": [6.6, 3.0, 5.5, 2.0]}
    rows = []
    for species, mu in centres.items():
        X = rng.normal(mu, [0.9, 0.7, 1.4, 0.7], size=(n_per, 4)).clip(0.1).round(1)
        rows += [(*x, species) for x in X]
    order = rng.permutation(len(rows))
    _write("flowers.csv", ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"],
           [rows[i] for i in order])


def clusters(rng, n=600):
    """Clustering: three 2-D Gaussian blobs with different shapes (no label column to fit)."""
    means = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 6.0]])
    covs = [np.array([[1.0, 0.6], [0.6, 1.0]]), np.array([[1.5, -0.4], [-0.4, 0.5]]),
            np.eye(2) * 0.4]
    comp = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    X = np.array([rng.multivariate_normal(means[c], covs[c]) for c in comp]).round(3)
    _write("clusters.csv", ["x1", "x2"], X)


def claims(rng, n=500):
    """Counts: insurance claims ~ Poisson(exposure * exp(age, vehicle)), with log exposure."""
    age = rng.integers(18, 80, n)
    vehicle = rng.choice(["car", "van", "bike"], n, p=[0.6, 0.25, 0.15])
    exposure = rng.uniform(0.2, 3.0, n).round(2)
    eta = -1.2 - 0.015 * (age - 40) + np.select([vehicle == "van", vehicle == "bike"], [0.3, 0.7], 0)
    count = rng.poisson(exposure * np.exp(eta))
    _write("claims.csv", ["age", "vehicle", "exposure", "log_exposure", "claims"],
           zip(age, vehicle, exposure, np.log(exposure).round(6), count))


def main() -> None:
    rng = np.random.default_rng(2026)
    houses(rng)
    admissions(rng)
    flowers(rng)
    clusters(rng)
    claims(rng)


if __name__ == "__main__":
    main()

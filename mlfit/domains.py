"""The values a model's target or an extra column may take (counts, 0/1, positive,
non-negative weights), checked in one place.

The data validator checks them on the rows as read, so that a bad value is named by its file,
row and line even in a chunked fit; solvers check the same predicate on the arrays they get.
"""

from __future__ import annotations

import numpy as np

#: name -> (what the values must be, advice when they are not)
TARGET_DOMAINS = {
    "binary": ("be 0 or 1", " Use logreg for text or multi-class labels."),
    "counts": ("hold counts (0, 1, 2, ...)", ""),
    "positive": ("be positive", ""),
    "nonnegative": ("be non-negative", ""),
    "proportions": ("be proportions in [0, 1]", ""),
}


def outside(domain: str, y: np.ndarray) -> np.ndarray:
    """Boolean mask of the values of y outside the domain."""
    if domain == "binary":
        return (y != 0) & (y != 1)
    if domain == "counts":
        return (y < 0) | (y != np.floor(y))
    if domain == "positive":
        return ~(y > 0)
    if domain == "nonnegative":
        return ~(y >= 0)
    if domain == "proportions":
        return ~((y >= 0) & (y <= 1))
    raise ValueError(f"unknown target domain {domain!r}")


def domain_message(domain: str, target: str, needed_by: str, where: str, value: float) -> str:
    """One line: 'Target 'y' must hold counts ... for the poisson family (row 3 has -1).'"""
    what, advice = TARGET_DOMAINS[domain]
    return f"Target '{target}' must {what} for {needed_by} ({where} has {value:g}).{advice}"


def column_domain_message(named: str, domain: str, needed_by: str, where: str, value) -> str:
    """One line for an extra column: "Column 'w' (the weights) must be non-negative (row 3
    (line 4) of f.csv has -1): they are prior weights."""
    what, advice = TARGET_DOMAINS[domain]
    return f"{named} must {what} ({where} has {value:g}): they are {needed_by}.{advice}"

"""Click subcommands, one module each, and the option groups they share.

A flag is its Config field name with dashes, and its default comes from Config, so no default
is written twice.  Shared option groups are decorators, defined once: what a command reads in
options_data, how it fits and what it writes in options_fit; both re-exported here.
"""

from __future__ import annotations

from mlfit.commands.options_data import (
    CATEGORICAL,
    DIALECT,
    DelimiterType,
    data_options,
    data_options_with,
    dialect,
    dialect_options,
    selection,
)
from mlfit.commands.options_fit import (
    FiniteFloat,
    chunk_rows_option,
    classifier_options,
    config_from,
    config_option,
    covariance,
    descent_options,
    design_options,
    engine_options,
    l2_option,
    max_iter_option,
    output_options,
    robust_options,
    strict_option,
    weights_option,
)

__all__ = [
    "CATEGORICAL",
    "DIALECT",
    "DelimiterType",
    "FiniteFloat",
    "chunk_rows_option",
    "classifier_options",
    "config_from",
    "config_option",
    "covariance",
    "data_options",
    "data_options_with",
    "descent_options",
    "design_options",
    "dialect",
    "dialect_options",
    "engine_options",
    "l2_option",
    "max_iter_option",
    "output_options",
    "robust_options",
    "selection",
    "strict_option",
    "weights_option",
]

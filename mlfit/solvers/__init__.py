"""The model registry: what each model is, readable without importing numpy.

Adding a model means a solver module mlfit/solvers/<name>.py, a command module
mlfit/commands/<name>.py (dashes in the name become underscores) and one `ModelSpec` here.
The CLI, the runner, `predict`, the report and the model file read only the spec and the
solver's contract (README, "Adding a model"), never the model's name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

#: What a model's target is: numbers (regression), class labels, none (density models),
#: optional (labels given with --target are not fitted, only compared with the model's output),
#: or auto (numbers or labels: the model decides between regression and classification).
TARGET_KINDS = ("numeric", "label", "none", "optional", "auto")
#: The figures `--plot` can draw; a model lists the ones that make sense for it.
PLOT_KINDS = (
    "diagnostics",
    "loss",
    "accuracy",
    "roc",
    "calibration",
    "bic",
    "clusters",
    "fit",
)
#: Kinds drawn from a fit's convergence record (no plot_data needed), and the key each needs.
FROM_CONVERGENCE = {"loss": "history", "accuracy": "validation_accuracy"}


@dataclass(frozen=True)
class PredictOption:
    """An option of `mlfit predict` that some models take; passed to the solver's predict."""

    name: str  # keyword of the solver's predict, and the flag with dashes: --name
    help: str
    is_flag: bool = False  # a flag; otherwise it takes a probability in [0, 1]


PROBA = PredictOption(
    "proba",
    "Classifiers and mixtures: add a column p_<class> (p_<component>) with each one's probability.",
    is_flag=True,
)
SCORE = PredictOption("score", "Density models: add a column log_density.", is_flag=True)
OUTLIERS = PredictOption(
    "outliers",
    "Density models: add a column outlier, true where the row's log-density is below this "
    "quantile of the training rows' (e.g. 0.01).",
)
THRESHOLD = PredictOption(
    "threshold",
    "Binary classifiers: predict the second class when its probability is at least this "
    "(default: the model's).",
)


@dataclass(frozen=True)
class ExtraRole:
    """What an extra (non-feature) column is for, so that the validator, the runner and
    predict treat every role the same way whichever model declares it."""

    help: str  # what it is, for messages: "prior weights"
    domain: str | None = None  # a key of mlfit.domains.TARGET_DOMAINS its values must be in
    labels: bool = False  # holds labels (numbers or text, kept as read), not numbers
    at_predict: bool = True  # predict reads it too (an offset); else the fit alone (weights)
    bounds_target: bool = False  # each row's target is at most its value (successes <= trials)


#: Every role a model may declare in ModelSpec.extra_columns; the flag is --ROLE.
EXTRA_ROLES = {
    "offset": ExtraRole("the offset"),
    "weights": ExtraRole("prior weights", domain="nonnegative", at_predict=False),
    "cluster": ExtraRole("cluster-robust standard errors", labels=True, at_predict=False),
    "trials": ExtraRole(
        "the numbers of trials", domain="counts", at_predict=False, bounds_target=True
    ),
}


@dataclass(frozen=True)
class ModelSpec:
    """What the CLI needs to know about a model before importing it."""

    name: str  # the subcommand and the model file's "method"
    summary: str  # one line for `mlfit --help`
    target: str  # one of TARGET_KINDS
    extra_columns: tuple[str, ...] = ()  # roles (keys of EXTRA_ROLES) of non-feature columns
    predict_options: tuple[PredictOption, ...] = ()
    sum_over_rows: bool = False  # the fit is a sum over rows: fit_chunks gives the same answer
    trains_from_chunks: bool = False  # fit_chunks trains from the stream (a different shuffle)
    plots: tuple[str, ...] = ()  # kinds from PLOT_KINDS
    text_features: bool = True  # text columns are one-hot encoded; False: numbers only
    # each text column is one categorical variable: the design keeps all its levels, the fit
    # sees its columns (ModelData.one_hot), and predict allows levels never seen in training
    categorical: bool = False


SOLVERS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "normal-eq",
            "Exact least squares by QR, with standard errors, t tests and R².",
            target="numeric",
            extra_columns=("weights", "cluster"),
            sum_over_rows=True,
            plots=("diagnostics",),
        ),
        ModelSpec(
            "linreg",
            "Linear regression by gradient descent: batch, minibatch or SGD.",
            target="numeric",
            plots=("loss",),
        ),
        ModelSpec(
            "newton",
            "GLMs by Newton's method: Gaussian, logistic, Poisson.",
            target="numeric",
            extra_columns=("offset", "weights", "cluster", "trials"),
            sum_over_rows=True,
            plots=("diagnostics", "loss"),
        ),
        ModelSpec(
            "logreg",
            "Logistic regression; softmax for more than two classes.",
            target="label",
            extra_columns=("weights", "cluster"),
            predict_options=(PROBA, THRESHOLD),
            plots=("roc", "calibration", "loss"),
        ),
        ModelSpec(
            "gmm",
            "Gaussian mixtures by EM; components and covariance chosen by BIC.",
            target="optional",
            predict_options=(PROBA, SCORE, OUTLIERS),
            sum_over_rows=True,
            plots=("bic", "clusters", "loss"),
            text_features=False,  # 0/1 columns give singular Gaussian components
        ),
        ModelSpec(
            "mlp",
            "Multilayer perceptrons by backpropagation: regression or classification.",
            target="auto",
            predict_options=(PROBA,),
            plots=("loss", "accuracy"),
            trains_from_chunks=True,
        ),
        ModelSpec(
            "naive-bayes",
            "Naive Bayes: Gaussian for numbers, smoothed categorical for text.",
            target="label",
            predict_options=(PROBA, THRESHOLD),
            sum_over_rows=True,
            plots=("roc", "calibration"),
            categorical=True,
        ),
        ModelSpec(
            "kernel",
            "Kernel ridge regression: linear, polynomial or Gaussian kernels; Nystrom for big n.",
            target="numeric",
            plots=("fit", "loss"),
        ),
        ModelSpec(
            "gda",
            "Gaussian discriminant analysis: linear, or quadratic per-class covariances.",
            target="label",
            predict_options=(PROBA, THRESHOLD),
            sum_over_rows=True,
            plots=("roc", "calibration"),
            text_features=False,  # one-hot 0/1 columns make class covariances singular
        ),
    )
}


def predict_options() -> dict[str, PredictOption]:
    """Every option some model's predict takes, by name (`mlfit predict` offers them all)."""
    return {o.name: o for spec in SOLVERS.values() for o in spec.predict_options}


def reads_chunks(spec: ModelSpec) -> bool:
    """Whether the model can be fitted from a chunk stream (--chunk-rows, big files)."""
    return spec.sum_over_rows or spec.trains_from_chunks


def runs_distributed(spec: ModelSpec) -> bool:
    """Whether the model fits on a Dask cluster (--engine dask): its statistics are sums over
    rows, and its solver writes every pass over the chunks as mlfit.engine.fold/map_reduce."""
    return spec.sum_over_rows


def module_name(name: str) -> str:
    return name.replace("-", "_")


def solver(name: str) -> ModuleType:
    """The solver module for a model name (as used on the command line and in model files)."""
    return importlib.import_module(f"mlfit.solvers.{module_name(name)}")

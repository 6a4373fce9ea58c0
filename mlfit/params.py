"""Parameters in the model file: arrays stored exactly and compactly, and read back checked.

Small arrays are plain JSON lists (Python writes floats with round-trip precision, so a list
is exact and stays readable); larger ones are base64 of little-endian float64 with dtype and
shape, about a third the size of the decimal text and just as exact.  Reading checks every
type and shape and raises ParamsError, which model_io reports as a damaged file (exit 4).
"""

from __future__ import annotations

import base64
import binascii
import math

import numpy as np

#: Arrays with at most this many values are written as JSON lists.
INLINE_MAX = 256


class ParamsError(ValueError):
    """A model file's parameters are not what the model needs (damaged or hand-edited)."""


def encode_array(a) -> list | dict:
    """A float array as a JSON list (small) or {"dtype", "shape", "base64"} (large)."""
    a = np.asarray(a, dtype=float)
    if a.size <= INLINE_MAX:
        return a.tolist()
    data = np.ascontiguousarray(a, dtype="<f8").tobytes()
    return {"dtype": "<f8", "shape": list(a.shape), "base64": base64.b64encode(data).decode()}


def decode_array(
    d: dict, key: str, shape: tuple[int | None, ...], finite: bool = True
) -> np.ndarray:
    """d[key] as a float64 array of the given shape (None: any length on that axis)."""
    value = _get(d, key)
    if isinstance(value, dict):
        a = _from_base64(value, key)
    else:
        try:
            a = np.array(value, dtype=float)
        except (TypeError, ValueError):
            raise ParamsError(f"'{key}' must hold numbers") from None
        if a.dtype != float or (isinstance(value, list) and _has_non_numbers(value)):
            raise ParamsError(f"'{key}' must hold numbers")
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = " x ".join("n" if s is None else str(s) for s in shape) or "a number"
        raise ParamsError(f"'{key}' has shape {list(a.shape)}, expected {want}")
    if finite and not np.all(np.isfinite(a)):
        raise ParamsError(f"'{key}' has a missing or infinite value")
    return a


def _has_non_numbers(value) -> bool:
    if isinstance(value, list):
        return any(_has_non_numbers(v) for v in value)
    return isinstance(value, bool) or not isinstance(value, (int, float))


def _from_base64(value: dict, key: str) -> np.ndarray:
    if value.get("dtype") != "<f8" or not isinstance(value.get("base64"), str):
        raise ParamsError(f"'{key}' is not an encoded float64 array")
    shape = value.get("shape")
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
        raise ParamsError(f"'{key}' has a bad shape")
    try:
        raw = base64.b64decode(value["base64"], validate=True)
    except (binascii.Error, ValueError):
        raise ParamsError(f"'{key}' is not valid base64") from None
    if len(raw) != 8 * math.prod(shape):
        raise ParamsError(f"'{key}' holds {len(raw) // 8} values for shape {shape}")
    return np.frombuffer(raw, dtype="<f8").astype(float).reshape(shape)


def _get(d: dict, key: str):
    if not isinstance(d, dict) or key not in d:
        raise ParamsError(f"it has no '{key}'")
    return d[key]


def read_float(d: dict, key: str, optional: bool = False) -> float | None:
    """A finite number (or None when optional)."""
    value = _get(d, key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParamsError(f"'{key}' must be a finite number")
    return float(value)


def read_bool(d: dict, key: str) -> bool:
    value = _get(d, key)
    if not isinstance(value, bool):
        raise ParamsError(f"'{key}' must be true or false")
    return value


def read_choice(d: dict, key: str, choices) -> str:
    value = _get(d, key)
    if value not in choices:
        raise ParamsError(f"'{key}' is {value!r}; expected one of {', '.join(choices)}")
    return value


def read_index_list(d: dict, key: str, below: int) -> list[int]:
    """A list of distinct column indices 0 <= i < below."""
    value = _get(d, key)
    if (
        not isinstance(value, list)
        or not all(type(i) is int and 0 <= i < below for i in value)
        or len(set(value)) != len(value)
    ):
        raise ParamsError(f"'{key}' must be a list of column indices below {below}")
    return value


def read_labels(d: dict, key: str) -> list:
    """Class labels: distinct strings or numbers, at least two."""
    value = _get(d, key)
    if (
        not isinstance(value, list)
        or len(value) < 2
        or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value)
        or len({str(v) for v in value}) != len(value)
    ):
        raise ParamsError(f"'{key}' must list at least two distinct class labels")
    return value

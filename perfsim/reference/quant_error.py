"""Quantisation error of a format on a layer, in numpy: round a tensor to the format and compare.

Every format is used with one per-tensor power-of-two scale that brings the tensor's RMS nearest to 1 (a shift,
exact in every format; posits are most precise near 1, and FP4 e2m1's largest value 6 then sits at 6σ of a
Gaussian tensor). A layer's error is that of its output: A (activations, ReLU of a unit Gaussian) times B
(weights, Gaussian, He-scaled) with both operands rounded to the format and the products accumulated exactly
(float64, as a wide accumulator does), against the float64 product of the unrounded operands. Errors are
relative RMS errors, dimensionless.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from perfsim.dtypes import resolve_dtype
from perfsim.errors import PerfsimError
from perfsim.reference.formats import FLOAT_FORMATS, posit_decode, posit_encode

SAMPLE_ROWS = 64
"""Rows of A a layer's error is measured on (the error of a row does not depend on how many there are)."""


def quantize(x: ArrayLike, dtype: str) -> np.ndarray:
    """`x` rounded to `dtype` (posits and the minifloats bit-exactly; fp32 by a float32 cast; fp64 unchanged).

    Raise PerfsimError for a format without a numpy reference here (integers need a scale scheme of their own).
    """
    x = np.asarray(x, dtype=np.float64)
    d = resolve_dtype(dtype)
    if d.family == "posit":
        return posit_decode(posit_encode(x, d.storage_bits, d.es), d.storage_bits, d.es)
    if d.name in FLOAT_FORMATS:
        return FLOAT_FORMATS[d.name].quantize(x)
    if d.name in ("fp32", "fp64"):
        return x.astype(np.float32).astype(np.float64) if d.name == "fp32" else x
    raise PerfsimError(f"no quantisation reference for {d.name} (floats and posits have one)")


def scaled_quantize(x: ArrayLike, dtype: str) -> np.ndarray:
    """`x` rounded to `dtype` under the per-tensor power-of-two scale that brings its RMS nearest to 1."""
    x = np.asarray(x, dtype=np.float64)
    rms = float(np.sqrt(np.mean(x**2)))
    scale = 2.0 ** round(np.log2(rms)) if rms > 0 else 1.0
    return quantize(x / scale, dtype) * scale


def relative_error(got: ArrayLike, want: ArrayLike) -> float:
    """‖got − want‖ / ‖want‖ (RMS over RMS)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def gemm_output_error(m: int, k: int, n: int, dtype: str, seed: int = 0) -> float:
    """Relative RMS error of an M×K×N layer's output with both operands in `dtype` (module doc; at most
    SAMPLE_ROWS rows of A)."""
    rng = np.random.default_rng(seed)
    a = np.maximum(rng.standard_normal((min(m, SAMPLE_ROWS), k)), 0.0)
    b = rng.standard_normal((k, n)) * np.sqrt(2.0 / k)
    return relative_error(scaled_quantize(a, dtype) @ scaled_quantize(b, dtype), a @ b)

"""T-MAC table-lookup GEMM (arXiv 2407.00088) in numpy, and its checks against the dequantised GEMM.

Weights of `bits` bits are stored unsigned, u = w + offset (offset 2^(bits−1), or 1 for
ternary), and split into one-bit planes. For each row of X and each group of g
activations, a table of the 2^g subset sums is built once (one add per entry); every
(plane, group, column) looks its g weight bits up as an index:
    Y[i, n] = Σ_b 2^b Σ_j T[i, j, idx_b(j, n)] − offset · Σ_k X[i, k]
Integer activations with exact tables reproduce X @ W bit for bit.
"""

from __future__ import annotations

import numpy as np

from perfsim.ops import LutGemm
from perfsim.reference.counter import Counter
from perfsim.reference.registry import Outcome, check

WEIGHT_RANGES = {"ternary": (-1, 1, 1), "int2": (-2, 1, 2), "int4": (-8, 7, 8)}  # (low, high, offset)


def build_tables(x: np.ndarray, g: int, counter: Counter) -> np.ndarray:
    """T[i, j, idx] = Σ_t bit_t(idx) · x[i, j·g + t], built incrementally: one add per entry."""
    m, k = x.shape
    groups = x.reshape(m, k // g, g)
    tables = np.zeros((m, k // g, 2**g), dtype=x.dtype)
    for idx in range(1, 2**g):
        top = idx.bit_length() - 1
        tables[:, :, idx] = tables[:, :, idx ^ (1 << top)] + groups[:, :, top]
    counter.table_adds += m * (k // g) * 2**g  # T[0] = 0 included, as the op counts 2^g per table
    return tables


def lut_gemm(x: np.ndarray, w: np.ndarray, op: LutGemm, counter: Counter, table_bits: int | None = None) -> np.ndarray:
    """Y = X @ W by table lookups; `table_bits=8` quantises each table to int8 with its own scale."""
    offset = WEIGHT_RANGES[op.weight_dtype][2]
    bits, g = op.weight_bits, op.group_size
    m, k = x.shape
    n = w.shape[1]
    counter.read(x, 2)
    counter.read(w, op.weight_bits / 8)
    tables = build_tables(x, g, counter)
    if table_bits is not None:
        limit = 2 ** (table_bits - 1) - 1
        scale = np.abs(tables).max(axis=-1, keepdims=True) / limit
        scale[scale == 0] = 1.0
        tables = np.round(tables / scale) * scale
    unsigned = (w + offset).astype(np.int64)
    weights = (1 << np.arange(g))[:, None]
    y = np.zeros((m, n), dtype=tables.dtype)
    for b in range(bits):
        plane = ((unsigned >> b) & 1).reshape(k // g, g, n)
        index = (plane * weights).sum(axis=1)  # [k/g, n] table index per group and column
        looked = np.take_along_axis(tables, np.broadcast_to(index[None], (m, k // g, n)), axis=2)
        y += (1 << b) * looked.sum(axis=1)
    counter.lookups += m * n * (k // g) * bits
    y = y - offset * x.sum(axis=1, keepdims=True)
    counter.write(y, 2)
    return y


def _operands(weight_dtype: str, m: int = 3, k: int = 64, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    low, high, _ = WEIGHT_RANGES[weight_dtype]
    rng = np.random.default_rng(7)
    return rng.integers(-128, 128, size=(m, k)), rng.integers(low, high + 1, size=(k, n))


def _counts(op: LutGemm, counter: Counter) -> bool:
    return bool(counter.lookups == op.lookups and counter.table_adds == op.table_build_adds
                and np.isclose(counter.bytes, op.bytes))


def _exact_check(weight_dtype: str) -> Outcome:
    x, w = _operands(weight_dtype)
    op = LutGemm(m=3, n=10, k=64, weight_dtype=weight_dtype, group_size=4, table_dtype="int32")
    counter = Counter()
    y = lut_gemm(x, w, op, counter)
    error = float(np.abs(y - x @ w).max())
    return Outcome(error, 0.0, _counts(op, counter),
                   f"integer activations, exact tables: bit-exact vs X @ W; {op.lookups} lookups counted")


@check("lut-gemm-ternary", op="lut_gemm", variant="ternary")
def _check_ternary() -> Outcome:
    return _exact_check("ternary")


@check("lut-gemm-int2", op="lut_gemm", variant="int2")
def _check_int2() -> Outcome:
    return _exact_check("int2")


@check("lut-gemm-int4", op="lut_gemm", variant="int4")
def _check_int4() -> Outcome:
    return _exact_check("int4")


@check("lut-gemm-int8-table", op="lut_gemm", variant="int8_table")
def _check_int8_table() -> Outcome:
    """int8 tables: each lookup is off by at most half its table's scale s = max|T| / 127, so
    |error[i, n]| ≤ Σ_b 2^b · Σ_j s_ij / 2 = (2^bits − 1) · Σ_j s_ij / 2."""
    x, w = _operands("int4")
    op = LutGemm(m=3, n=10, k=64, weight_dtype="int4", group_size=4, table_dtype="int8")
    counter = Counter()
    y = lut_gemm(x.astype(float), w, op, counter, table_bits=8)
    tables = build_tables(x.astype(float), 4, Counter())
    scales = np.abs(tables).max(axis=-1) / 127
    bound = (2**op.weight_bits - 1) * scales.sum(axis=1) / 2  # per row i
    excess = float(((np.abs(y - x @ w)) - bound[:, None]).max())
    lossy = float(np.abs(y - x @ w).max()) > 0  # int8 tables are not exact
    return Outcome(max(excess, 0.0), 0.0, _counts(op, counter) and lossy,
                   f"error within the derived bound (worst row bound {bound.max():.1f}); not bit-exact")

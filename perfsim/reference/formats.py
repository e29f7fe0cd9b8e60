"""Reduced-precision number formats in numpy: quantise (encode + decode) references and the checks behind them.

Floats (bf16, fp16, fp8 e4m3/e5m2, fp4 e2m1) round to nearest, ties to even, with subnormals; int4 and MXFP4
share a scale per block; posits are encoded and decoded bit-exactly. Values are unitless (they carry the units of
whatever is quantised); an absolute error is in those units, a relative error is dimensionless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from perfsim.dtypes import resolve_dtype
from perfsim.reference.registry import Outcome, check

# ---------------------------------------------------------------------------------------------- IEEE-style floats


def quantize_float(x: ArrayLike, exponent_bits: int, mantissa_bits: int, max_value: float | None = None,
                   saturate: bool = False) -> np.ndarray:
    """Round `x` to the nearest value of an IEEE-style minifloat, ties to even, subnormals kept (float64 out).

    `max_value` is the largest finite value (default IEEE: the top exponent is reserved, so it is
    (2 - 2**-m) * 2**bias). A result beyond it overflows to ±inf, or with `saturate` clamps to ±max_value
    (±inf inputs too, as OCP's "satfinite" conversion does). NaN stays NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    bias = 2 ** (exponent_bits - 1) - 1
    if max_value is None:
        max_value = (2 - 2.0**-mantissa_bits) * 2.0**bias
    _, k = np.frexp(x)  # |x| = f * 2**k with f in [0.5, 1): x's binade is 2**(k - 1)
    ulp = np.ldexp(1.0, np.maximum(k - 1, 1 - bias) - mantissa_bits)
    q = np.rint(x / ulp) * ulp  # x / ulp is exact (ulp is a power of two); rint rounds ties to even
    return np.where(np.abs(q) > max_value, np.copysign(max_value if saturate else np.inf, x), q)


@dataclass(frozen=True)
class FloatFormat:
    """A minifloat: field widths, largest finite value and the overflow rule (saturate, or overflow to inf)."""

    name: str
    exponent_bits: int
    mantissa_bits: int
    max_value: float
    saturate: bool

    def quantize(self, x: ArrayLike) -> np.ndarray:
        return quantize_float(x, self.exponent_bits, self.mantissa_bits, self.max_value, self.saturate)

    def values(self) -> np.ndarray:
        """Every finite nonnegative value, in code order (ascending: index i is the value of code i)."""
        bias = 2 ** (self.exponent_bits - 1) - 1
        code = np.arange(2 ** (self.exponent_bits + self.mantissa_bits))
        exp, mant = code >> self.mantissa_bits, code & (2**self.mantissa_bits - 1)
        normal = np.ldexp((2**self.mantissa_bits + mant).astype(float), exp - bias - self.mantissa_bits)
        v = np.where(exp == 0, np.ldexp(mant.astype(float), 1 - bias - self.mantissa_bits), normal)
        return v[v <= self.max_value]


def _float_format(name: str, max_value: float | None = None, saturate: bool = False) -> FloatFormat:
    d = resolve_dtype(name)
    ieee_max = (2 - 2.0**-d.mantissa_bits) * 2.0 ** (2 ** (d.exponent_bits - 1) - 1)
    return FloatFormat(name, d.exponent_bits, d.mantissa_bits, max_value or ieee_max, saturate)


FLOAT_FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        _float_format("bf16"),  # IEEE-like, overflow to inf, max (2 - 2**-7) * 2**127
        _float_format("fp16"),  # IEEE binary16, overflow to inf, max 65504
        _float_format("fp8_e4m3", 448.0, saturate=True),  # OCP FP8: no inf, S.1111.111 is NaN; satfinite conversion
        _float_format("fp8_e5m2"),  # OCP FP8 e5m2: IEEE-like with inf, max 57344
        _float_format("fp4_e2m1", 6.0, saturate=True),  # OCP MX fp4: every code finite (±0…6), saturate at 6
    )
}

# ------------------------------------------------------------------------------------------- block-scaled formats


def int4_codes(x: ArrayLike, scale: ArrayLike) -> np.ndarray:
    """int4 codes of `x` at `scale` (x's units per code step): clip(round-half-even(x / scale), -8, 7)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) / scale), -8, 7).astype(np.int8)


def quantize_int4(x: ArrayLike, group_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int4 per group of `group_size` consecutive elements: scale = max|x| / 7 (1 for an all-zero group).

    Returns codes (groups, group_size) and scales (groups, 1); x.size must be a multiple of group_size.
    Codes span [-7, 7] here, -8 only appears with a caller's smaller scale (`int4_codes`).
    """
    g = np.asarray(x, dtype=np.float64).reshape(-1, group_size)
    amax = np.abs(g).max(axis=1, keepdims=True)
    scale = np.where(amax > 0, amax / 7, 1.0)
    return int4_codes(g, scale), scale


MX_BLOCK = 32
FP4 = FLOAT_FORMATS["fp4_e2m1"]


def quantize_mxfp4(x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """OCP MXFP4: blocks of 32 fp4 e2m1 elements sharing an E8M0 scale X = 2**(floor(log2 max|x|) - 2).

    2 is e2m1's largest exponent; X's exponent is clamped to [-127, 127] (an all-zero block gets 2**-127).
    Elements are x / X rounded to nearest-even e2m1, saturating at ±6: max|x| / X lies in [4, 8), so a block's
    largest elements may saturate (error below 2 X). Returns element values (blocks, 32) and scales (blocks, 1).
    """
    b = np.asarray(x, dtype=np.float64).reshape(-1, MX_BLOCK)
    amax = np.abs(b).max(axis=1, keepdims=True)
    _, k = np.frexp(amax)  # amax in [2**(k-1), 2**k)
    scale = np.ldexp(1.0, np.where(amax > 0, np.clip(k - 3, -127, 127), -127))
    return FP4.quantize(b / scale), scale


# ------------------------------------------------------------------------------------------------------ posits


def posit_decode(bits: ArrayLike, n: int, es: int) -> np.ndarray:
    """The value of each posit<n, es> pattern (its low n bits, unsigned); NaR (1 << (n-1)) decodes to NaN."""
    p = np.asarray(bits, dtype=np.int64) & ((1 << n) - 1)
    neg = (p >> (n - 1)) == 1
    body = np.where(neg, (1 << n) - p, p) & ((1 << (n - 1)) - 1)  # two's-complement magnitude, sign bit dropped
    r0 = (body >> (n - 2)) & 1
    run, same = np.zeros_like(body), np.ones(body.shape, dtype=bool)
    for i in range(n - 2, -1, -1):  # length of the regime's run of identical bits
        same &= ((body >> i) & 1) == r0
        run += same
    regime = np.where(r0 == 1, run - 1, -run)
    rest_bits = np.maximum(n - 2 - run, 0)  # bits after the regime's terminating bit
    rest = body & ((1 << rest_bits) - 1)
    frac_bits = np.maximum(rest_bits - es, 0)
    exp = (rest >> frac_bits) << np.maximum(es - rest_bits, 0)  # exponent bits cut off the end are zeros
    frac = rest & ((1 << frac_bits) - 1)
    value = np.ldexp(1.0 + frac / 2.0**frac_bits, (regime * 2**es + exp).astype(np.int32))
    value = np.where(body == 0, 0.0, np.where(neg, -value, value))
    return np.where(p == 1 << (n - 1), np.nan, value)


def posit_encode(x: ArrayLike, n: int, es: int) -> np.ndarray:
    """The posit<n, es> pattern (unsigned int64) of `x`: its bit string rounded to nearest, ties to the even pattern.

    No overflow or underflow: |x| beyond maxpos gives maxpos, nonzero |x| below minpos gives minpos, never 0.
    NaN and ±inf give NaR.
    """
    x = np.asarray(x, dtype=np.float64)
    top = (n - 2) * 2**es  # maxpos = 2**top, minpos = 2**-top
    m, k = np.frexp(np.clip(np.abs(np.nan_to_num(x)), 2.0**-top, 2.0**top))
    scale = k.astype(np.int64) - 1
    frac = 2 * m - 1  # the fraction, in [0, 1)
    r, e = scale >> es, scale & ((1 << es) - 1)
    regime = np.where(r >= 0, ((1 << np.maximum(r + 1, 0)) - 1) << 1, 1)  # r+1 ones then 0, or -r zeros then 1
    prefix = (regime << es) | e
    shift = np.where(r >= 0, r + 2, 1 - r) + es - (n - 1)  # prefix bits beyond the n-1 body bits
    fit = np.ldexp(frac, np.maximum(-shift, 0).astype(np.int32))  # fraction bits that fit, as an exact float
    rem = fit - np.floor(fit)  # what is cut off, in units of the body's last bit (shift <= 0)
    cut = np.maximum(shift, 0)
    body = np.where(shift > 0, prefix >> cut, (prefix << np.maximum(-shift, 0)) | np.floor(fit).astype(np.int64))
    low, half = prefix & ((1 << cut) - 1), 1 << np.maximum(cut - 1, 0)  # cut-off prefix bits (shift > 0)
    above = np.where(shift > 0, (low > half) | ((low == half) & (frac > 0)), rem > 0.5)
    tie = np.where(shift > 0, (low == half) & (frac == 0), rem == 0.5)
    pattern = body + (above | (tie & (body % 2 == 1)))
    pattern = np.where(x < 0, (1 << n) - pattern, np.where(x == 0, 0, pattern))
    return np.where(np.isfinite(x), pattern, 1 << (n - 1))


# ------------------------------------------------------------------------------------------------------ checks


def _mismatch(got: ArrayLike, want: ArrayLike) -> float:
    """The largest |got - want|, with NaN matching NaN and inf matching inf; a wrong inf or NaN counts as inf."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(got - want))
    return float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))


def _verdict(parts: dict[str, tuple[float, float]]) -> Outcome:
    """One Outcome from named (error, bound) parts: the worst excess of an error over its bound, against 0."""
    excess = max(e - b if e == e else np.inf for e, b in parts.values())
    detail = "; ".join(f"{name} {e:.3g} (bound {b:.3g})" for name, (e, b) in parts.items())
    return Outcome(max(excess, 0.0), 0.0, None, detail)


def _random_inputs(rng: np.random.Generator) -> np.ndarray:
    """Float64 inputs over every float32 bit pattern (NaN, inf, subnormals) and magnitudes 2**-30 … 2**17."""
    with np.errstate(invalid="ignore"):  # signalling NaN patterns
        bits = rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32).view(np.float32).astype(float)
    wide = rng.standard_normal(100_000) * np.exp2(rng.integers(-30, 18, 100_000))
    return np.concatenate([bits, wide, [0.0, -0.0, np.inf, -np.inf, np.nan, 1 + 2.0**-11 + 2.0**-40]])


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """bf16 by bit manipulation: float32 rounded to nearest-even on its upper 16 bits (NaN passes through)."""
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32).astype(np.float64)
    return np.where(np.isnan(x), np.nan, r)


def _fp16_numpy(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return x.astype(np.float16).astype(np.float64)


FLOAT_REFERENCES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray], bool]] = {
    "fp16": ("numpy float16", _fp16_numpy, False),  # any float64 input
    "bf16": ("float32 bit rounding", _bf16_bits, True),  # float32 inputs only
}


def float_format_check(fmt: FloatFormat) -> Outcome:
    """(a) every finite value round-trips; (b) midpoints of neighbours go to the even code, a hair off them to the
    nearer; (c) max, max + ulp/2 (the tie), 2 max and inf give max or inf by the format's rule; NaN stays NaN;
    (d) random normal-range inputs have relative error <= 2**-(m+1), the unit roundoff; plus, for fp16 and bf16,
    exact agreement with an independent reference. Each error is checked against its bound.
    """
    q, v = fmt.quantize, fmt.values()
    both = np.concatenate([-v, v])
    mid = (v[:-1] + v[1:]) / 2  # exact in float64
    even = np.where(np.arange(mid.size) % 2 == 0, v[:-1], v[1:])  # code i's parity is index i's
    ties = max(_mismatch(q(mid), even), _mismatch(q(-mid), -even),
               _mismatch(q(np.nextafter(mid, np.inf)), v[1:]), _mismatch(q(np.nextafter(mid, 0)), v[:-1]))
    top, half = v[-1], (v[-1] - v[-2]) / 2
    beyond = np.array([top, np.nextafter(top + half, 0), top + half, 2 * top, np.inf])
    over = top if fmt.saturate else np.inf
    want = np.array([top, top, over, over, over])
    overflow = max(_mismatch(q(beyond), want), _mismatch(q(-beyond), -want), _mismatch(q(np.nan), np.nan))
    rng = np.random.default_rng(0)
    bias = 2 ** (fmt.exponent_bits - 1) - 1
    x = np.exp2(rng.uniform(1 - bias, np.log2(top), 100_000)) * rng.choice([-1.0, 1.0], 100_000)
    parts = {"round-trip": (_mismatch(q(both), both), 0.0), "ties": (ties, 0.0), "overflow": (overflow, 0.0),
             "max-rel-error": (float(np.max(np.abs(q(x) - x) / np.abs(x))), 2.0 ** -(fmt.mantissa_bits + 1))}
    if fmt.name in FLOAT_REFERENCES:
        label, ref, f32_only = FLOAT_REFERENCES[fmt.name]
        xs = np.concatenate([_random_inputs(rng), both, mid, -mid])
        xs = xs.astype(np.float32).astype(np.float64) if f32_only else xs
        parts[f"vs {label}"] = (_mismatch(q(xs), ref(xs)), 0.0)
    return _verdict(parts)


def int4_check() -> Outcome:
    """Codes -8…7 at a fixed scale round-trip; per-group (32) blocks of codes * scale round-trip exactly; x.5
    midpoints go to the even code; beyond ±7.5 steps clamps to 7 / -8; random normal groups have
    |x - code * scale| <= scale / 2 (plus 2**-40 scale of float64 slack for x / scale and code * scale).
    """
    rng = np.random.default_rng(1)
    c = np.arange(-8, 8)
    fixed = _mismatch(int4_codes(c * 0.375, 0.375), c)
    codes = rng.integers(-7, 8, (64, 32))
    codes[:, 0] = rng.choice([-7, 7], 64)
    x = codes * np.ldexp(1 + rng.integers(0, 8, (64, 1)) / 8, rng.integers(-20, 20, (64, 1)))
    qc, qs = quantize_int4(x)
    grouped = max(_mismatch(qc, codes), _mismatch(qc * qs, x))
    ties = _mismatch(int4_codes((c[:-1] + 0.5) * 0.375, 0.375), c[:-1] + (c[:-1] % 2))
    clamp = _mismatch(int4_codes(np.array([8.0, 1e9, -9.0, -1e9]), 1.0), [7, 7, -8, -8])
    r = rng.standard_normal((1000, 32))
    rc, rs = quantize_int4(r)
    error = float(np.max(np.abs(r - rc * rs) / rs))
    return _verdict({"round-trip": (fixed, 0.0), "group round-trip": (grouped, 0.0), "ties": (ties, 0.0),
                     "clamp": (clamp, 0.0), "error/scale": (error, 0.5 + 2.0**-40)})


def mxfp4_check() -> Outcome:
    """Blocks of fp4 values * 2**k with max 4 or 6 round-trip exactly; the scale is a power of two with
    max|x| / X in [4, 8); each element's error is <= half the e2m1 ulp of its binade times X (0.25 X below 2,
    0.5 X below 4, X up to 6) and |x| - 6 X when saturated (< 2 X); hand-worked ties, saturation and a zero block.
    """
    rng = np.random.default_rng(2)
    vals = FP4.values()
    elems = rng.choice(np.concatenate([-vals, vals]), (64, MX_BLOCK))
    elems[:, 0] = rng.choice([-6.0, -4.0, 4.0, 6.0], 64)
    x = elems * np.ldexp(1.0, rng.integers(-40, 40, (64, 1)))
    qe, qs = quantize_mxfp4(x)
    r = rng.standard_normal((500, MX_BLOCK)) * np.exp2(rng.integers(-30, 30, (500, 1)))
    re, rs = quantize_mxfp4(r)
    amax = np.abs(r).max(axis=1, keepdims=True) / rs
    scale_rule = float(np.count_nonzero((np.frexp(rs)[0] != 0.5) | (amax < 4) | (amax >= 8)))
    v = np.abs(r) / rs
    bound = np.select([v < 2, v < 4, v <= 6], [0.25, 0.5, 1.0], v - 6)
    block = np.zeros(MX_BLOCK)
    block[:7] = [7.9, 7.0, 5.0, 2.5, 0.75, 0.25, -6.5]  # X = 2**0: 7.9 -> 6 saturates, ties 7 -> 8 -> 6, 5 -> 4 …
    hand = [6.0, 6.0, 4.0, 2.0, 1.0, 0.0, -6.0]
    he, hs = quantize_mxfp4(block * 32)
    zero_e, zero_s = quantize_mxfp4(np.zeros(MX_BLOCK))
    worked = max(_mismatch(he[0, :7] * hs[0, 0], np.multiply(hand, 32)), _mismatch(zero_e * zero_s, 0.0))
    return _verdict({"round-trip": (_mismatch(qe * qs, x), 0.0), "scale rule": (scale_rule, 0.0),
                     "error excess/X": (float(np.max(np.abs(v - np.abs(re)) - bound)), 0.0),
                     "hand-worked": (worked, 0.0)})


def posit_check(n: int, es: int, maxpos: float) -> Outcome:
    """All 2**n patterns: decode(encode(decode(p))) == decode(p) and encode(decode(p)) == p; decoded values strictly
    increase in two's-complement order; maxpos, minpos, 1, -maxpos, 0 and NaR decode as stated; bit-string
    midpoints (posit<n+1, es> pattern 2p+1) encode to the even pattern of p, p+1, and a hair off them to the
    nearer; beyond maxpos gives maxpos, below minpos gives minpos (never 0), NaN/inf give NaR.
    """
    half = nar = 1 << (n - 1)  # also the NaR pattern
    p = np.arange(1 << n)
    v = posit_decode(p, n, es)
    enc = posit_encode(v, n, es)
    values = _mismatch(posit_decode(enc, n, es), v)
    patterns = float(np.count_nonzero(enc != p))
    order = posit_decode(np.arange(1 - half, half) & ((1 << n) - 1), n, es)
    monotone = float(np.count_nonzero(np.diff(order) <= 0))
    known = _mismatch(posit_decode([half - 1, 1, half >> 1, half + 1, 0, nar], n, es),
                      [maxpos, 1 / maxpos, 1.0, -maxpos, 0.0, np.nan])
    lo = np.arange(1, half - 1)
    mid = posit_decode(2 * lo + 1, n + 1, es)
    even = np.where(lo % 2 == 0, lo, lo + 1)
    ties = float(np.count_nonzero(posit_encode(mid, n, es) != even)
                 + np.count_nonzero(posit_encode(-mid, n, es) != (1 << n) - even)
                 + np.count_nonzero(posit_encode(np.nextafter(mid, np.inf), n, es) != lo + 1)
                 + np.count_nonzero(posit_encode(np.nextafter(mid, 0), n, es) != lo))
    edge = [2 * maxpos, 1e300, 0.5 / maxpos, 1e-300, -1e300, -1e-300, np.nan, np.inf, -np.inf, 0.0]
    want = [half - 1, half - 1, 1, 1, half + 1, (1 << n) - 1, nar, nar, nar, 0]
    clamp = float(np.count_nonzero(posit_encode(edge, n, es) != want))
    return _verdict({"value round-trip": (values, 0.0), "pattern round-trip": (patterns, 0.0),
                     "non-monotone steps": (monotone, 0.0), "known values": (known, 0.0), "ties": (ties, 0.0),
                     "saturation/NaR": (clamp, 0.0)})


# ------------------------------------------------------------------------------------- fp16 SIMD training (MCU)

U16, ETA16 = 2.0**-11, 2.0**-25  # fp16 unit roundoff; underflow error bound (half the subnormal spacing 2**-24)
U32, ETA32 = 2.0**-24, 2.0**-150
LR = 0.125  # SGD learning rate; a power of two, as is 2 / batch
Matmul = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _f16(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float64)


def simd_matmul_f16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b of fp16 values as a 2-lane fp16 SIMD MAC does it (PULP vfmac.h): lane j accumulates the terms k = j
    (mod 2) in fp16, one rounding per fused multiply-add, and the two lanes are added once at the end.

    Each FMA is formed in float64 and rounded to fp16 once: exact, except when the product is far below the
    accumulator's ulp, where both roundings return the accumulator.
    """
    lanes = [np.zeros((a.shape[0], b.shape[1])), np.zeros((a.shape[0], b.shape[1]))]
    for k in range(a.shape[1]):
        lanes[k % 2] = _f16(lanes[k % 2] + np.outer(a[:, k], b[k]))
    return _f16(lanes[0] + lanes[1])


def sgd_step(x: np.ndarray, t: np.ndarray, w1: np.ndarray, w2: np.ndarray, mm: Matmul,
             rnd: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Updated (w1, w2) after one SGD step of y = relu(x @ w1) @ w2 on loss sum((y - t)**2) / batch.

    `mm` is the arithmetic's matmul, `rnd` rounds each elementwise result (relu and the mask are exact).
    """
    z = mm(x, w1)
    h = np.maximum(z, 0)
    dy = rnd(rnd(mm(h, w2) - t) * (2 / len(x)))
    dh = mm(dy, w2.T) * (z > 0)
    return rnd(w1 - rnd(LR * mm(x.T, dh))), rnd(w2 - rnd(LR * mm(h.T, dy)))


def sgd_step_bound(x: np.ndarray, t: np.ndarray, w1: np.ndarray, w2: np.ndarray, u: float, eta: float,
                   depth: Callable[[int], int]) -> tuple[np.ndarray, ...]:
    """Exact (float64) updated weights and componentwise bounds on |computed - exact| for `sgd_step` run in an
    arithmetic of unit roundoff `u` and underflow error `eta`, whose k-term dot products round each term at most
    depth(k) times.

    Error model (Higham, Accuracy and Stability, 2.2 and 3.1/3.5): each rounding is v(1 + d) + h, |d| <= u,
    |h| <= eta; a dot product of inexact A + dA, B + dB (|dA| <= EA, |dB| <= EB) has error
    <= EA|B| + |A|EB + EA EB + g (|A| + EA)(|B| + EB) + depth * eta * (1 + g) with g = depth u / (1 - depth u);
    a rounded elementwise result adds u (|v| + E) + eta; relu passes E on (1-Lipschitz); the relu mask may flip only
    where |z| <= Ez, and there the whole |dh| + E is allowed. Exact values are float64 stand-ins (error ~2**-50).
    """

    def mm(a: np.ndarray, ea: np.ndarray, b: np.ndarray, eb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = depth(a.shape[1])
        g = k * u / (1 - k * u)
        aa, ab = np.abs(a), np.abs(b)
        return a @ b, ea @ ab + aa @ eb + ea @ eb + g * (aa + ea) @ (ab + eb) + k * eta * (1 + g)

    def rnd(v: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return v, e + u * (np.abs(v) + e) + eta

    z, ez = mm(x, 0 * x, w1, 0 * w1)
    h, eh = np.maximum(z, 0), ez
    y, ey = mm(h, eh, w2, 0 * w2)
    c = 2 / len(x)
    dy, edy = rnd(*(c * s for s in rnd(y - t, ey)))
    g, eg = mm(dy, edy, w2.T, 0 * w2.T)
    dh, edh = g * (z > 0), np.where(np.abs(z) > ez, eg * (z > 0), np.abs(g) + eg)
    (d1, e1), (d2, e2) = (rnd(LR * d, LR * e) for d, e in (mm(x.T, 0 * x.T, dh, edh), mm(h.T, eh.T, dy, edy)))
    (n1, b1), (n2, b2) = rnd(w1 - d1, e1), rnd(w2 - d2, e2)
    return n1, n2, b1, b2


def fp16_training_check() -> Outcome:
    """One SGD step of a 32-32-8 ReLU MLP on a batch of 16 (seeded, fp16-representable data), run in float32 and
    in emulated fp16 with 2-lane SIMD accumulation. Reported: max|W16 - W32| / max|W| over both layers.

    Bound, derived not fitted: `sgd_step_bound` recomputes the step independently in float64 (the exact W) and
    propagates componentwise rounding-error bounds for fp16 (u = 2**-11, depth(k) = ceil(k/2) + 1: k/2 fused MACs
    per lane plus the lane add) and for float32 (u = 2**-24, depth(k) = k for any BLAS order). Every weight must
    satisfy |W16 - W| <= E16 and |W32 - W| <= E32 (else the check fails), hence |W16 - W32| <= E16 + E32 and the
    tolerance max(E16 + E32) / max|W|. To first order a k-term product contributes (k/2 + 1) 2**-11 |A||B|, about
    0.8 % for k = 32, compounded along x@w1 -> @w2 -> @w2.T -> x.T@; the bound is worst case, so it is loose.
    """
    rng = np.random.default_rng(3)
    x, t = _f16(rng.standard_normal((16, 32))), _f16(rng.standard_normal((16, 8)))
    w1, w2 = _f16(rng.standard_normal((32, 32)) / 32**0.5), _f16(rng.standard_normal((32, 8)) / 32**0.5)
    w16 = np.concatenate([w.ravel() for w in sgd_step(x, t, w1, w2, simd_matmul_f16, _f16)])
    f32 = [a.astype(np.float32) for a in (x, t, w1, w2)]
    w32 = np.concatenate([w.ravel() for w in sgd_step(*f32, np.matmul, lambda v: v.astype(np.float32))])
    n1, n2, e16_1, e16_2 = sgd_step_bound(x, t, w1, w2, U16, ETA16, lambda k: -(-k // 2) + 1)
    *_, e32_1, e32_2 = sgd_step_bound(x, t, w1, w2, U32, ETA32, lambda k: k)
    exact = np.concatenate([n1.ravel(), n2.ravel()])
    e16, e32 = np.concatenate([e16_1.ravel(), e16_2.ravel()]), np.concatenate([e32_1.ravel(), e32_2.ravel()])
    over = int(np.count_nonzero(np.abs(w16 - exact) > e16) + np.count_nonzero(np.abs(w32 - exact) > e32))
    scale, diff = float(np.max(np.abs(exact))), float(np.max(np.abs(w16 - w32)))
    return Outcome(diff / scale if over == 0 else np.inf, float(np.max(e16 + e32)) / scale, None,
                   f"max|W16-W32|/max|W| {diff / scale:.3g}; weights past their own bound E16 or E32: {over}; "
                   f"worst |W16-W|/E16 {np.max(np.abs(w16 - exact) / e16):.3g}, "
                   f"|W32-W|/E32 {np.max(np.abs(w32 - exact) / e32):.3g}")


for _name, _fmt in FLOAT_FORMATS.items():
    check(f"format-{_name}", op="format", variant=_name)(lambda fmt=_fmt: float_format_check(fmt))
for _n, _es, _maxpos in ((8, 0, 64.0), (16, 1, 2.0**28), (4, 1, 16.0)):
    check(f"format-posit{_n}_{_es}", op="format", variant=f"posit{_n}_{_es}")(
        lambda n=_n, es=_es, maxpos=_maxpos: posit_check(n, es, maxpos))
check("format-int4", op="format", variant="int4")(int4_check)
check("format-mxfp4", op="format", variant="mxfp4")(mxfp4_check)
check("format-fp16_simd_training", op="format", variant="fp16_simd_training")(fp16_training_check)

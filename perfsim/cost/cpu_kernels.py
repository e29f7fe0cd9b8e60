"""CPU kernels counted in SIMD instructions: llama.cpp's dequantise-then-multiply dot products, T-MAC's
table lookups, and softmax with a vectorised polynomial exponential.

Counts are per 128-bit register (ARM NEON); a wider SIMD unit (AVX2, AVX-512) does the same work in
simd_bits / 128 times fewer instructions (an approximation: x86 kernels differ in detail). Loads and
stores issue on the load/store pipes and are not counted; everything else runs on the SIMD/FP pipes,
whose issue rate per core is the spec's fp32 FMA rate over FLOP per FMA instruction
(2 × simd_bits / 32): 2 on a Cortex-A76 or a Skylake-X AVX-512 core, 4 on an Apple P-core.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.dtypes import resolve_format
from perfsim.hardware.cpu import Cpu

NEON_BITS = 128


@dataclass(frozen=True)
class DequantKernel:
    """A llama.cpp vec_dot kernel (ARM NEON with dot product, ggml-cpu-quants.c): SIMD instructions per block.

    `unpack`: bits to int8 (masks, shifts, subtracts) — the dequantisation proper; `dot`: SDOT and the MOVI
    that zeroes its accumulator (and, in Q2_K, the ADDV + UMOV reducing each 16-weight sub-block to a
    scalar); `epilogue`: per-block scales (FCVT of fp16 scales, FMUL, SCVTF, FMLA, reductions).
    """

    name: str
    block: int
    unpack: int
    dot: int
    epilogue: int

    @property
    def per_weight(self) -> float:
        """SIMD instructions per weight per activation row."""
        return (self.unpack + self.dot + self.epilogue) / self.block


# Counted in llama.cpp ggml/src/ggml-cpu/ggml-cpu-quants.c (commit c392e50, 2025-02-20), __ARM_NEON paths with
# __ARM_FEATURE_DOTPROD; the fp16 scale conversions (GGML_FP16_TO_FP32) are one FCVT each.
Q8_0 = DequantKernel("q8_0", 32, unpack=0, dot=4, epilogue=6)
"""ggml_vec_dot_q8_0_q8_0: 2 SDOT + 2 MOVI; epilogue ADD, SCVTF, FMLA, 2 FCVT, FMUL."""
Q4_0 = DequantKernel("q4_0", 32, unpack=4, dot=3, epilogue=5)
"""ggml_vec_dot_q4_0_q8_0: AND, USHR, 2 SUB (4-bit → int8 − 8); 2 SDOT + 1 MOVI; SCVTF, FMLA, 2 FCVT, FMUL."""
Q2_K = DequantKernel("q2_k", 256, unpack=32, dot=64, epilogue=16)
"""ggml_vec_dot_q2_K_q8_K per 256-weight super-block: per 128 weights 2 AND + 3 × (2 USHR + 2 AND) = 14, ×2, plus
scales AND, USHR, 2 USHLL = 32; 16 sub-blocks × (MOV + SDOT + ADDV + UMOV) = 64; mins 4 SMULL + 3 ADD + ADDV,
2 FCVT, 2 FMUL, 2 SCVTF, 2 FMADD = 16."""
TQ2_0 = DequantKernel("tq2_0", 256, unpack=28, dot=18, epilogue=9)
"""ggml_vec_dot_tq2_0_q8_K (ternary in 2 bits) per 256 weights: 2 × (6 USHR + 8 AND) = 28; 16 SDOT + 2 MOVI;
ADD, ADD, SADDLP, SUB, ADDV, SCVTF, FCVT, FMUL, FMADD = 9."""

KERNELS = {"q8_0": Q8_0, "q4_0": Q4_0, "int8": Q8_0, "int4": Q4_0, "int2": Q2_K, "ternary": TQ2_0}
"""llama.cpp's kernel for a weight format: its own for q4_0/q8_0; plain int8/int4 run as Q8_0/Q4_0, int2 as Q2_K
(llama.cpp's 2-bit format), ternary as TQ2_0."""


def dequant_kernel(weight_format: str) -> DequantKernel | None:
    """The llama.cpp kernel a GEMM with `weight_format` weights runs on a CPU; None for float weights."""
    return KERNELS.get(resolve_format(weight_format).name)


def simd_issue_per_cycle(cpu: Cpu) -> float | None:
    """SIMD/FP instructions one core issues per cycle: its fp32 FMA rate over FLOP per FMA instruction."""
    fp32 = cpu.peak_flops("fp32")
    if fp32 is None:
        return None
    per_core_cycle = fp32 / cpu.clock.peak / cpu.cores
    return per_core_cycle / (2 * cpu.simd_bits / 32)


def width_factor(cpu: Cpu) -> float:
    """How many NEON-width instructions one of the CPU's SIMD instructions does (4 on AVX-512)."""
    return cpu.simd_bits / NEON_BITS


EXP_INSTRUCTIONS = 10
"""A vectorised exp(x) in XNNPACK's avx512f-p5-scalef style (the kernels arXiv 2001.04438 evaluates): n =
round(x·log2e) (MUL, ROUND), t = x − n·ln2 in two FMAs (Cody-Waite), a degree-5 polynomial by Horner (5 FMA),
and 2^n·p by SCALEF: 10 instructions per vector."""
EXP_PAIR_INSTRUCTIONS = EXP_INSTRUCTIONS - 1
"""The two-pass algorithm keeps exp(x) as a (mantissa p, exponent n) pair: no final SCALEF."""

SOFTMAX_INSTRUCTIONS = {
    "three_pass_recompute": 1 + (1 + EXP_INSTRUCTIONS + 1) + (1 + EXP_INSTRUCTIONS + 1),
    "three_pass_reload": 1 + (1 + EXP_INSTRUCTIONS + 1) + 1,
    "two_pass": (EXP_PAIR_INSTRUCTIONS + 1 + 2 + 2 + 1) + (EXP_PAIR_INSTRUCTIONS + 1 + 1 + 1),
    "single_pass": 1 + 1 + EXP_INSTRUCTIONS + 1 + 1,
}
"""SIMD instructions per vector of elements over all passes. Three-pass recompute: MAX; SUB, exp, ADD; SUB, exp, MUL
(25). Reload: MAX; SUB, exp, ADD (y stored); MUL (14). Two-pass: pass 1 exp pair, MAX of exponents, 2 SUB, 2 SCALEF
rescaling the running sum and the new term, ADD (15); pass 2 exp pair, SUB, SCALEF, MUL (12): 27. Single-pass: MAX,
SUB, exp, ADD, MUL on a row held in registers (14). Computed in fp32 lanes whatever the storage dtype."""


def softmax_instructions(variant: str, elements: int, cpu: Cpu) -> float:
    """SIMD instructions a softmax of `elements` fp32-computed elements issues on `cpu`."""
    lanes = cpu.simd_bits / 32
    return elements / lanes * SOFTMAX_INSTRUCTIONS[variant]

"""Dequantisation work of quantised-weight kernels, in element operations on the vector units (issue 14 item 4).

A weight stored narrower than the dtype the matrix units compute in is turned into that dtype inside the
kernel, once for every output tile row that reads it (a GEMV: once). Per weight element:
- unpack: 2 (shift + mask) when the element is narrower than a byte (int4, q4_0, GPTQ/AWQ int4, ternary,
  fp4) — it must be pulled out of a packed word;
- offset: 1 for unsigned sub-byte integers stored with a zero point (q4_0 subtracts 8; GPTQ/AWQ subtract
  their zero; ternary's 2-bit code subtracts 1);
- convert: 1 (integer or narrow float to the compute dtype);
- scale: 1 (multiply by its group's, channel's or tensor's scale).
So q4_0 / int4 / ternary: 5, mxfp4 / fp4: 4, q8_0 / int8 / fp8 weights with bf16 activations: 2.
Quantised activations (W8A8 int8, fp8 × fp8) run on int8/fp8 matrix units with no weight dequantisation; their
output tile is rescaled in the epilogue (per-token × per-channel scales: convert + multiply, 2 per output).
The vector units run this concurrently with the weight stream and the matrix units (the kernel is
pipelined: Marlin, llama.cpp mul_mv), so it is its own resource `dequant` and the op takes the longest.
"""

from __future__ import annotations

from perfsim.dtypes import DType, QuantScheme, resolve_dtype, resolve_format

UNPACK_OPS = 2
OFFSET_OPS = 1
CONVERT_OPS = 1
SCALE_OPS = 1
EPILOGUE_OPS = CONVERT_OPS + SCALE_OPS


def dequant_ops(fmt: str) -> float:
    """Element operations to turn one stored weight of format `fmt` into the compute dtype."""
    stored = resolve_format(fmt)
    element: DType = stored.element if isinstance(stored, QuantScheme) else stored
    sub_byte = element.storage_bits < 8
    offset = sub_byte and element.family == "int"
    return (UNPACK_OPS if sub_byte else 0) + (OFFSET_OPS if offset else 0) + CONVERT_OPS + SCALE_OPS


def needs_dequant(weight_fmt: str, compute_dtype: str) -> bool:
    """True when weights stored as `weight_fmt` are not what the matrix units consume (`compute_dtype`)."""
    stored = resolve_format(weight_fmt)
    return isinstance(stored, QuantScheme) or stored.name != compute_dtype


def quantised_activations(dtype: str) -> bool:
    """True for 8-bit-or-narrower activations (W8A8 int8, fp8): the output tile needs an epilogue rescale."""
    return resolve_dtype(dtype).storage_bits <= 8

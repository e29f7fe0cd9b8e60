"""GPUs and NPUs: matrix and vector units, HBM/LPDDR, caches, chip-to-chip links, and the kernel shapes they run."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from perfsim.dtypes import DTypeName
from perfsim.hardware.common import Count, DeviceBase, Source, Spec


class TileShape(Spec):
    """One output tile of a GEMM kernel: `m` × `n` outputs, `k` deep per main-loop step."""

    m: Count
    n: Count
    k: Count


class GemmTiles(Spec):
    """The output tile a vendor GEMM library picks per dtype for large shapes (cuBLAS, hipBLASLt, CANN, MLX).

    One thread block / workgroup / AI Core computes one tile at a time; tiles run in waves over `cores`.
    """

    shapes: dict[DTypeName, TileShape] = Field(min_length=1)
    source: Source


class AttentionTiles(Spec):
    """A FlashAttention-style kernel's tile for head_dim 128: `q` query rows (Br) × `kv` keys (Bc)."""

    q: Count
    kv: Count
    source: Source


class SpecialFunctions(Spec):
    """Transcendental (exp2, rcp, ...) results per clock per core, on units apart from the FMA lanes (NVIDIA SFU)."""

    per_cycle_per_core: Annotated[float, Field(gt=0)]
    source: Source


class Accelerator(DeviceBase):
    """A GPU or NPU chip (A100, H100, MI300X, Ascend 910B, Apple GPUs).

    `cores` counts SMs / CUs / AI Cores: the units GEMM tiles and attention blocks are spread over.
    `gemm_tiles`, `attention_tiles` and `special_functions` describe the kernels the accelerator cost
    model prices (perfsim.cost.accelerator); absent, it uses stated defaults.
    Raise ValueError if a field is missing or misspelled.
    """

    kind: Literal["accelerator"]
    cores: Count | None = None
    gemm_tiles: GemmTiles | None = None
    attention_tiles: AttentionTiles | None = None
    special_functions: SpecialFunctions | None = None

    @model_validator(mode="after")
    def _tiles_on_matrix_units(self) -> "Accelerator":
        """On a chip with matrix units, a GEMM tile is for a dtype one of them runs (the 310P's cube has no bf16)."""
        matrix = {dtype for unit in self.compute if unit.role == "matrix" for dtype in unit.dtypes}
        if matrix and self.gemm_tiles is not None and (alien := [d for d in self.gemm_tiles.shapes if d not in matrix]):
            raise ValueError(f"gemm_tiles.shapes: no matrix unit runs {', '.join(alien)} (they run "
                             f"{', '.join(sorted(matrix))}); a tile is the matrix units' kernel shape")
        return self

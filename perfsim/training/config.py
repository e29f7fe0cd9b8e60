"""What a training run is: model, hardware, parallel layout, batch, precision and memory savers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool

from perfsim.hardware.common import Count, Spec

Precision = Literal["bf16", "fp8"]


class TrainConfig(Spec):
    """One training step's settings. Field help doubles as CLI help."""

    model: str = Field(description="model name or path (a transformer, or a CNN in workloads/networks/)")
    hardware: str = Field(description="hardware name or path (a device or a system)")
    devices: Count | None = Field(None, description="chips to use (default: the system's chips, or 1)")
    tp: Count = Field(1, description="tensor-parallel degree (with sequence parallelism)")
    pp: Count = Field(1, description="pipeline-parallel stages")
    dp: Count | None = Field(None, description="data-parallel replicas (default: devices / (tp·pp))")
    ep: Count = Field(1, description="expert-parallel degree of MoE layers (divides dp)")
    zero: Literal[0, 1, 2, 3] = Field(0, description="ZeRO stage: 1 shards optimizer states, 2 also gradients, "
                                                     "3 (FSDP) also weights")
    micro_batch: Count = Field(1, description="sequences per micro-batch per data-parallel replica")
    global_batch: Count | None = Field(None, description="sequences per optimizer step (default: micro_batch·dp)")
    seq_len: Count = Field(2048, description="tokens per sequence")
    recompute: Literal["none", "full"] = Field("none", description="activation recomputation: none, or full "
                                                                    "(each layer's forward again in backward)")
    optimizer: Literal["adamw", "adam", "sgd"] = Field("adamw", description="optimizer (fp32 master weights)")
    precision: Precision = Field("bf16", description="GEMM precision: bf16, or fp8 (where the chip has fp8 "
                                                     "matrix units; other ops stay bf16)")
    schedule: Literal["1f1b", "interleaved"] = Field("1f1b", description="pipeline schedule")
    virtual_stages: Count = Field(2, description="model chunks per device in the interleaved schedule")
    grad_reduce: Literal["bf16", "fp32"] = Field("bf16", description="dtype the gradients are reduced in: bf16, "
                                                                      "or fp32 (FSDP mixed precision DEFAULT: "
                                                                      "bf16 weights, fp32 reduce_dtype)")
    bucket_mb: Annotated[float, Field(gt=0)] = Field(25.0, description="DP gradient bucket in MiB (PyTorch DDP's "
                                                                       "bucket_cap_mb, whose default is 25, counts "
                                                                       "MiB)")
    tokens: Annotated[float, Field(gt=0)] | None = Field(None, description="tokens to train (a CNN: samples), "
                                                                           "for the time to train them (default: "
                                                                           "none, no time)")
    check_memory: StrictBool = Field(True, description="refuse a run that does not fit the chips' memory")

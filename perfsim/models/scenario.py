"""A scenario: model + hardware + parallelism + phase + batch + lengths + dtypes + kernel choices.

Semantics (docs/scenarios.md):
- `devices` counts chips, the unit of every `*_per_device` figure. A single-chip spec
  with devices > 1 builds that many chips over the link its spec declares; a system
  spec defaults `devices` to its chip count.
- Dense layers: tp · pp · dp = devices. MoE layers: ep · expert_tp = tp · dp. With only
  `ep` given, attention is data-parallel (tp = 1, dp = devices / pp).
- `batch` is the global number of concurrent sequences; each DP replica serves batch / dp.
- Weights, activations and KV default to 16-bit (bf16) unless the model spec or a flag
  says otherwise; `weight_dtype` takes a dtype or a quantisation scheme (int8, q4_0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System, load_hardware
from perfsim.hardware.common import Count, Spec
from perfsim.hardware.system import join
from perfsim.models.loader import load_model
from perfsim.models.spec import ModelSpec


class Scenario(Spec):
    """What runs (`model`), where (`hardware`), and how. Field help doubles as CLI help."""

    model: str = Field(description="model name or path to a model YAML")
    hardware: str = Field(description="hardware name or path (a device or a system)")
    devices: Count | None = Field(None, description="chips to use (default: the system's chips, or 1)")
    cores: Count | None = Field(None, description="CPU or MCU cores (threads) to run on (default: all)")
    tp: Count = Field(1, description="tensor-parallel degree of attention and dense layers")
    pp: Count = Field(1, description="pipeline-parallel stages")
    dp: Count | None = Field(None, description="data-parallel replicas (default: devices / (tp·pp))")
    ep: Count | None = Field(None, description="expert-parallel degree of MoE layers")
    expert_tp: Count | None = Field(None, description="tensor-parallel degree inside each expert")
    phase: Literal["prefill", "decode"] = Field("decode", description="prefill (TTFT) or one decode step (TPOT)")
    batch: Count = Field(1, description="global number of concurrent sequences")
    micro_batches: Count = Field(1, description="pipeline micro-batches per step, each batch / micro_batches")
    prompt_len: Count = Field(512, description="prompt tokens per sequence (prefill)")
    context: Count = Field(2048, description="tokens already in each sequence's KV cache (decode)")
    decode_tokens: Count = Field(1, description="query tokens per sequence in a decode step (speculative "
                                                "verification: draft length + 1)")
    acceptance: float = Field(0.7, ge=0, le=1, description="probability α each draft token is accepted in "
                              "speculative verification, 0.7 unless given (as in serve); a step yields "
                              "(1 − α^k)/(1 − α) tokens per sequence, k = decode_tokens")
    weight_dtype: str | None = Field(None, description="weight dtype or quant scheme (default: the model's)")
    activation_dtype: str = Field("bf16", description="activation dtype (int8 with int8 weights = W8A8)")
    kv_dtype: str | None = Field(None, description="KV-cache dtype (default: the activation dtype)")
    attention: Literal["fused", "unfused"] = Field("fused", description="fused keeps scores on chip")
    lut_gemm: bool = Field(False, description="T-MAC table-lookup GEMM for low-bit weights (CPUs)")
    moe_imbalance: float = Field(1.0, ge=1.0, description="busiest expert-parallel rank's load over the mean")


@dataclass(frozen=True)
class Parallelism:
    """Resolved degrees; every product checked against the chip count."""

    devices: int
    tp: int
    pp: int
    dp: int
    ep: int
    expert_tp: int


@dataclass(frozen=True)
class Resolved:
    """A scenario with its specs loaded and its degrees resolved."""

    scenario: Scenario
    model: ModelSpec
    chip: Device
    system: System | None
    par: Parallelism
    weight_dtype: str
    kv_dtype: str

    @property
    def tokens_per_replica(self) -> int:
        """Tokens one DP replica processes in the step."""
        return self.seqs_per_replica * self.q_len

    @property
    def seqs_per_replica(self) -> int:
        """Sequences one DP replica carries in one micro-batch."""
        return -(-self.scenario.batch // (self.par.dp * self.scenario.micro_batches))

    @property
    def q_len(self) -> int:
        return self.scenario.prompt_len if self.scenario.phase == "prefill" else self.scenario.decode_tokens

    @property
    def kv_len(self) -> int:
        s = self.scenario
        return s.prompt_len if s.phase == "prefill" else s.context + s.decode_tokens


def resolve(scenario: Scenario, hardware: Device | System | None = None) -> Resolved:
    """Load the specs and pin the parallel degrees. Raise PerfsimError on inconsistent flags.

    `hardware` overrides the spec `scenario.hardware` names (a spec at one end of its ranges).
    """
    model = load_model(scenario.model)
    hardware = hardware or load_hardware(scenario.hardware)
    chip = hardware.device if isinstance(hardware, System) else hardware
    if scenario.cores is not None:
        chip = with_cores(chip, scenario.cores)
    devices = scenario.devices or hardware.chips
    system = _system(hardware, devices) if devices > 1 else None
    par = parallelism(scenario, devices, model)
    length = scenario.prompt_len if scenario.phase == "prefill" else scenario.context + scenario.decode_tokens
    if length > model.max_context:
        raise PerfsimError(f"{scenario.phase} of {length} tokens exceeds {model.name}'s max_context "
                           f"({model.max_context})")
    weight_dtype = resolve_format(scenario.weight_dtype or model.weight_dtype).name
    kv_dtype = resolve_format(scenario.kv_dtype or scenario.activation_dtype).name
    resolve_format(scenario.activation_dtype)
    return Resolved(scenario, model, chip, system, par, weight_dtype, kv_dtype)


def parallelism(s: Scenario, devices: int, model: ModelSpec) -> Parallelism:
    tp = s.tp  # with only --ep given, tp stays 1: attention is data-parallel across the chips
    if devices % (tp * s.pp):
        raise PerfsimError(f"tp ({tp}) × pp ({s.pp}) must divide the {devices} devices")
    dp = s.dp if s.dp is not None else devices // (tp * s.pp)
    if tp * s.pp * dp != devices:
        raise PerfsimError(f"tp ({tp}) × pp ({s.pp}) × dp ({dp}) = {tp * s.pp * dp}, not the {devices} devices")
    group = tp * dp
    if s.ep is None and s.expert_tp is None:
        ep, expert_tp = dp, tp
    elif s.ep is None:
        expert_tp = s.expert_tp or 1
        ep = group // expert_tp
    else:
        ep = s.ep
        expert_tp = s.expert_tp if s.expert_tp is not None else group // ep
    if ep * expert_tp != group:
        raise PerfsimError(f"ep ({ep}) × expert_tp ({expert_tp}) must equal tp × dp = {group}")
    if model.layers % s.pp:
        raise PerfsimError(f"pp ({s.pp}) must divide the {model.layers} layers of {model.name}")
    if model.moe and model.moe.experts % ep:
        raise PerfsimError(f"ep ({ep}) must divide the {model.moe.experts} experts of {model.name}")
    if s.batch < dp * s.micro_batches:
        raise PerfsimError(f"batch ({s.batch}) is smaller than dp ({dp}) × micro_batches ({s.micro_batches}): "
                           "some replicas would idle")
    return Parallelism(devices, tp, s.pp, dp, ep, expert_tp)


def one_per_replica(scenario: Scenario) -> Resolved:
    """`scenario` resolved with one sequence per data-parallel replica (batch = dp, one micro-batch)."""
    dp = resolve(scenario.model_copy(update={"batch": 2**30, "micro_batches": 1})).par.dp
    return resolve(scenario.model_copy(update={"batch": dp, "micro_batches": 1}))


def with_cores(chip: Device, cores: int) -> Device:
    """A CPU or MCU limited to `cores` of its cores: per-core units and table lookups scale, bandwidth does not."""
    available = getattr(chip, "cores", None)
    if chip.kind not in ("cpu", "mcu") or available is None:
        raise PerfsimError(f"cores applies to CPUs and MCUs; {chip.name} is a {chip.kind}")
    if cores > available:
        raise PerfsimError(f"{chip.name} has {available} cores; {cores} requested")
    units = [u.model_copy(update={"cores": min(cores, u.cores)}) if u.cores else u for u in chip.compute]
    return chip.model_copy(update={"cores": cores, "compute": units})


def _system(hardware: Device | System, devices: int) -> System:
    """The system the chips form: the spec itself, or N chips over the chip's declared link."""
    if isinstance(hardware, System):
        if devices > hardware.chips:
            raise PerfsimError(f"{hardware.name} has {hardware.chips} chips; {devices} devices requested")
        return hardware
    return join(hardware, devices)

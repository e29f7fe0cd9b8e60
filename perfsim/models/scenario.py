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
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, StrictBool, field_validator

from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System, load_hardware
from perfsim.hardware.common import Count, Fraction, Spec
from perfsim.hardware.system import join
from perfsim.models.parallel import shared_degree
from perfsim.offload.placement import PRESET, Offload

if TYPE_CHECKING:
    from perfsim.models.spec import ModelSpec

DECODE_CONTEXT = 2048  # tokens cached per sequence in a decode step unless `context` says otherwise
Tokens = Annotated[int, Field(ge=0, strict=True)]  # strict: `context: true` is an error, not 1 token


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
    phase: Literal["prefill", "decode"] = Field("decode", description="prefill (TTFT) or one decode step (TPOT) "
                                                "(default: decode; prefill for an encoder-only model, which has no "
                                                "decode)")
    batch: Count = Field(1, description="global number of concurrent sequences")
    micro_batches: Count = Field(1, description="pipeline micro-batches per step, each batch / micro_batches")
    prompt_len: Count = Field(512, description="prompt tokens per sequence (prefill) (default: 512, capped at the "
                                               "model's max_context)")
    context: Tokens | None = Field(None, description=f"tokens already in each sequence's KV cache before the step "
                                                    f"(default: {DECODE_CONTEXT} in decode, capped at the model's "
                                                    "max_context − decode_tokens; 0 in prefill; in prefill a cached "
                                                    "prefix the prompt attends to)")
    decode_tokens: Count = Field(1, description="query tokens per sequence in a decode step (speculative "
                                                "verification: draft length + 1)")
    acceptance: float = Field(0.7, ge=0, le=1, description="probability α each draft token is accepted in "
                              "speculative verification, 0.7 unless given (as in serve); a step yields "
                              "(1 − α^k)/(1 − α) tokens per sequence, k = decode_tokens")
    weight_dtype: str | None = Field(None, description="weight dtype or quant scheme (default: the model's)")
    activation_dtype: str = Field("bf16", description="activation dtype (int8 with int8 weights = W8A8)")
    kv_dtype: str | None = Field(None, description="KV-cache dtype (default: the activation dtype)")
    attention: Literal["fused", "unfused"] = Field("fused", description="fused keeps scores on chip")
    lut_gemm: StrictBool = Field(False, description="T-MAC table-lookup GEMM for low-bit weights (CPUs)")
    moe_imbalance: float = Field(1.0, ge=1.0, description="busiest expert-parallel rank's load over the mean")
    memory_utilization: Fraction = Field(0.9, description="fraction of each chip's memory a serving engine uses for "
                                                          "weights, activations and KV cache (vLLM's "
                                                          "gpu_memory_utilization); serve fills it with KV cache "
                                                          "(default: 0.9, as vLLM's); estimate and plan refuse a step "
                                                          "needing more where it is given, else check the whole "
                                                          "memory")
    wafer_region: Count | None = Field(None, description="wafer-scale mesh: P of the P×P core region each layer "
                                                         "runs on (default: the fastest that fits)")
    kv_placement: Literal["shift", "concat"] | None = Field(
        None, description="wafer-scale mesh: KV-cache management, WaferLLM's shift (default) or concatenation")
    framework: str | None = Field(None, description="serving-framework preset adding its per-step host overhead and "
                                  "CUDA-graph launches (perfsim.frameworks): eager, cuda-graph, vllm, tensorrt-llm, "
                                  "mindie, llama.cpp (default: none)")
    routing: str | None = Field(None, description="MoE routing distribution from which the busiest expert-parallel "
                                "rank's load is derived instead of moe_imbalance (perfsim.models.routing): uniform, "
                                "zipf:S (popularity ∝ 1/rank^S) or a CSV trace path")
    shared_tp: Count | None = Field(None, description="tensor-parallel degree of the shared experts (and, with "
                                    "exchange gather, of dense FFNs); default tp (perfsim.models.parallel)")
    exchange: Literal["all_to_all", "gather"] = Field(
        "all_to_all", description="how MoE layers get their tokens: all_to_all dispatch and combine among the EP "
        "ranks, or gather: the TP group all-gathers before and reduce-scatters after attention, and all tp·dp chips "
        "all-gather every token before the FFN block and reduce-scatter after it (vllm-ascend's H2P)")
    offload: Offload | None = Field(
        None, description="weights and KV cache in host memory, experts streamed over the host link, decode attention "
        "on the host CPU (perfsim.offload; a system spec with a host): moe-lens, or a placement block")

    @field_validator("offload", mode="before")
    @classmethod
    def _offload_preset(cls, value: object) -> object:
        if isinstance(value, str) and value != PRESET:
            fields = ", ".join(Offload.model_fields)
            raise ValueError(f"'{value}' is not a placement: give {PRESET} or a block of {fields}")
        return Offload() if value == PRESET else value


@dataclass(frozen=True)
class Parallelism:
    """Resolved degrees; every product checked against the chip count."""

    devices: int
    tp: int
    pp: int
    dp: int
    ep: int
    expert_tp: int
    shared_tp: int


@dataclass(frozen=True, order=True)
class Piece:
    """`seqs` sequences, each adding `new` tokens to the `cached` tokens already in its KV cache.

    Attention of a causal piece covers new · (cached + (new + 1) / 2) query-key pairs per
    sequence and head; the GEMMs see seqs · new tokens.
    """

    seqs: int
    new: int
    cached: int

    @property
    def tokens(self) -> int:
        return self.seqs * self.new


@dataclass(frozen=True)
class Resolved:
    """A scenario with its specs loaded and its degrees resolved.

    `mix` replaces the scenario's one piece (batch × q_len over context) by the pieces of one
    DP replica's forward pass: a serving iteration mixing decode sequences and prompt chunks.
    """

    scenario: Scenario
    model: ModelSpec
    chip: Device
    system: System | None
    par: Parallelism
    weight_dtype: str
    kv_dtype: str
    mix: tuple[Piece, ...] = ()

    @property
    def pieces(self) -> tuple[Piece, ...]:
        """What one DP replica's forward pass attends over, one piece per distinct shape."""
        if self.mix:
            return self.mix
        batch = -(-self.scenario.batch // (self.par.dp * self.scenario.micro_batches))
        return (Piece(batch, self.q_len, self.context),)

    @property
    def tokens_per_replica(self) -> int:
        """Tokens one DP replica processes in the step."""
        return sum(p.tokens for p in self.pieces)

    @property
    def seqs_per_replica(self) -> int:
        """Sequences one DP replica carries in one micro-batch."""
        return sum(p.seqs for p in self.pieces)

    @property
    def q_len(self) -> int:
        """Query tokens per sequence: decode_tokens in decode; in prefill the prompt (its default capped at the
        model's max_context, which a short-input model such as M3ViT's 129 patches sets)."""
        s = self.scenario
        if s.phase != "prefill":
            return s.decode_tokens
        return s.prompt_len if "prompt_len" in s.model_fields_set else min(s.prompt_len, self.model.max_context)

    @property
    def context(self) -> int:
        """Tokens already cached per sequence: the scenario's, or its phase's default (decode: DECODE_CONTEXT,
        capped so that the step's tokens fit the model's max_context; prefill: 0)."""
        s = self.scenario
        if s.context is not None:
            return s.context
        return max(0, min(DECODE_CONTEXT, self.model.max_context - self.q_len)) if s.phase == "decode" else 0

    @property
    def memory_fraction(self) -> float:
        """The share of each chip's memory the step may use: memory_utilization where the scenario gives it, else
        all of it (a published step ran in the memory it had; serve gives it, its KV cache filling that share)."""
        s = self.scenario
        return s.memory_utilization if "memory_utilization" in s.model_fields_set else 1.0

    @property
    def kv_len(self) -> int:
        return self.context + self.q_len


def resolve(scenario: Scenario, hardware: Device | System | None = None) -> Resolved:
    """Load the specs and pin the parallel degrees. Raise PerfsimError on inconsistent flags.

    `hardware` overrides the spec `scenario.hardware` names (a spec at one end of its ranges).
    """
    from perfsim.models.loader import load_model

    model = load_model(scenario.model)
    scenario = _encoder_phase(scenario, model)
    hardware = hardware or load_hardware(scenario.hardware)
    chip = hardware.device
    if scenario.cores is not None:
        chip = with_cores(chip, scenario.cores)
    wafer_fields = [f"--{name.replace('_', '-')}" for name in ("wafer_region", "kv_placement")
                    if getattr(scenario, name) is not None]
    if wafer_fields and chip.kind != "wafer_mesh":
        raise PerfsimError(f"{', '.join(wafer_fields)} apply to a wafer-scale mesh; {chip.name} is {chip.kind}")
    if scenario.routing is not None and model.moe is None:
        raise PerfsimError(f"--routing applies to MoE models; {model.name} is dense")
    devices = scenario.devices or hardware.chips
    system = _system(hardware, devices) if devices > 1 else None
    par = parallelism(scenario, devices, model)
    weight_dtype = resolve_format(scenario.weight_dtype or model.weight_dtype).name
    kv_dtype = resolve_format(scenario.kv_dtype or scenario.activation_dtype).name
    resolve_format(scenario.activation_dtype)
    r = Resolved(scenario, model, chip, system, par, weight_dtype, kv_dtype)
    if r.kv_len > model.max_context:
        raise PerfsimError(f"{scenario.phase} of {r.kv_len} tokens exceeds {model.name}'s max_context "
                           f"({model.max_context})")
    return r


def _encoder_phase(scenario: Scenario, model: ModelSpec) -> Scenario:
    """`scenario` with an encoder-only model's phase: prefill when none was given (it has no decode). Raise
    PerfsimError for a decode step or a cached context: an encoder keeps no KV cache."""
    if model.architecture != "encoder":
        return scenario
    if "phase" not in scenario.model_fields_set:
        scenario = scenario.model_copy(update={"phase": "prefill"})
    if scenario.phase == "decode":
        raise PerfsimError(f"{model.name} is an encoder: it caches no keys and values, so it has no decode step "
                           "(use phase prefill)")
    if scenario.context:
        raise PerfsimError(f"context: {model.name} is an encoder: it caches no keys and values for a prompt to attend "
                           f"to (context must be 0, got {scenario.context})")
    return scenario


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
    for layer, _ in model.layer_runs(0, model.layers):
        heads_per_rank(model, layer, tp)
    if model.moe and model.moe.experts % ep:
        raise PerfsimError(f"ep ({ep}) must divide the {model.moe.experts} experts of {model.name}")
    if model.moe and model.moe.expert_ffn % expert_tp:
        raise PerfsimError(f"expert_tp ({expert_tp}) must divide the expert FFN width {model.moe.expert_ffn} of "
                           f"{model.name}")
    if s.batch < dp * s.micro_batches:
        raise PerfsimError(f"batch ({s.batch}) is smaller than dp ({dp}) × micro_batches ({s.micro_batches}): "
                           "some replicas would idle")
    return Parallelism(devices, tp, s.pp, dp, ep, expert_tp, shared_degree(s, tp, dp))


def heads_per_rank(model: ModelSpec, layer: int, tp: int) -> tuple[int, int]:
    """(query heads, KV heads) one tensor-parallel rank holds in `layer`: heads / tp, and the KV heads
    split tp ways or, when tp is a multiple of them, one each (replicated tp / kv_heads times) — ⌈kv_heads / tp⌉.

    Raise PerfsimError where the heads do not split so (as vLLM refuses such a layout).
    """
    heads, kv_heads = model.layer_heads(layer), model.layer_kv_heads(layer)
    if heads % tp:
        raise PerfsimError(f"tp ({tp}) must divide the {heads} attention heads of {model.name} (layer {layer})")
    if kv_heads % tp and tp % kv_heads:
        raise PerfsimError(f"tp ({tp}) must divide the {kv_heads} KV heads of {model.name} (layer {layer}, {heads} "
                           "query heads) or be a multiple of them")
    return heads // tp, -(-kv_heads // tp)


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

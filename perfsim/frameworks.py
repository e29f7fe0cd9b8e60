"""Serving-framework presets: the host work a framework adds to every step, and whether it hides kernel launches.

A step estimated with `Scenario.framework = name` changes in two ways (perfsim.models.step):

    step_s = Σ ops (as costed) + host_s + (graph_launch_s if the step is graph-captured)

and, where the step is graph-captured (a phase the preset captures, on an accelerator), every kernel pays
`graph_node_s` in place of its launch (the spec's op_overhead or the 5 µs default; an op of n kernels pays
n · graph_node_s): the host submits one graph per step, and the GPU still runs its nodes one after another.
Collectives keep their own latency. `framework = None` (the default) adds nothing.

A preset may also fuse a trace op into the kernel of the op just before it (`fused`: (op, into) name pairs): the
fused op still moves its bytes and does its FLOPs, but pays no launch of its own (its overhead_s becomes 0 on an
accelerator; the kernel it joins keeps its one launch). Where `into` does not precede it, the op keeps its launch.
Without a preset every op is its own kernel, as vLLM runs them.

Each number below carries its source. Where none was found the preset says so and adds nothing for it
(stated, not measured): such a preset only names the framework's launch mode.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from perfsim.cost.opcost import OpCost
from perfsim.errors import PerfsimError

GRAPH_LAUNCH_S = 15e-6
GRAPH_NODE_S = 1.3e-6
GRAPH_SOURCE = (
    "per kernel in a replayed CUDA graph ≈ 1.3 µs of launch and teardown with the GPU idle, measured on an H100 "
    "(Hazy Research, 'Look Ma, No Bubbles!', hazyresearch.stanford.edu/blog/2025-05-27-no-bubbles); one graph "
    "launch + sync per step ≈ 15 µs (chain of N no-op kernels replayed as a graph: 15 µs fixed + 0.58 µs per node, "
    "github.com/ahrefs/ocannl/issues/488, RTX 5070 Ti Laptop, CUDA 13.3; no datacenter-GPU figure was found)")


@dataclass(frozen=True)
class Framework:
    """Per-step host seconds a framework leaves exposed, the phases whose kernels it replays as a CUDA graph."""

    name: str
    host_s: float
    graph_phases: tuple[str, ...]
    source: str
    graph_launch_s: float = GRAPH_LAUNCH_S
    graph_node_s: float = GRAPH_NODE_S
    fused: tuple[tuple[str, str], ...] = ()

    def captures(self, phase: str, kind: str) -> bool:
        """True when a `phase` step on a chip of `kind` runs as a CUDA graph (graphs replay accelerator kernels)."""
        return phase in self.graph_phases and kind == "accelerator"

    def launched(self, names: list[str], costs: list[OpCost], kind: str) -> list[OpCost]:
        """`costs` (of the trace ops called `names`, in order) with no launch for each op this framework fuses
        into the op just before it, on a chip of `kind` "accelerator"; else unchanged."""
        if kind != "accelerator" or not self.fused:
            return costs
        before = ["", *names[:-1]]
        return [replace(c, overhead_s=0.0) if (name, prior) in self.fused else c
                for name, prior, c in zip(names, before, costs, strict=True)]

    def step_overhead_s(self, phase: str, kind: str) -> float:
        """Seconds added once per step: the exposed host work, plus one graph launch where the step is captured."""
        return self.host_s + (self.graph_launch_s if self.captures(phase, kind) else 0.0)


PRESETS: dict[str, Framework] = {f.name: f for f in (
    Framework("eager", 0.0, (), "eager PyTorch: every kernel launched from the host as it comes; its launch is the "
              "spec's op_overhead, nothing else is added per step"),
    Framework("cuda-graph", 0.0, ("prefill", "decode"), f"the whole step captured as one CUDA graph: {GRAPH_SOURCE}"),
    Framework("vllm", 4e-3, ("decode",),
              "vLLM V0 with single-step scheduling: ≈ 4 ms of GPU idle per decode step while the CPU transfers "
              "sampled tokens, detokenises, pythonises outputs, schedules and prepares the next inputs (traces in "
              "github.com/vllm-project/vllm/issues/6854, which reports 5–13 ms bubbles); decode runs as CUDA graphs "
              "unless --enforce-eager (docs.vllm.ai engine arguments); graph replay: " + GRAPH_SOURCE),
    Framework("tensorrt-llm", 0.0, (),
              "TensorRT-LLM's overlap scheduler (on by default) runs step n's CPU work (stop criteria, responses, "
              "scheduling) while the GPU computes step n+1, so no host time is exposed "
              "(nvidia.github.io/TensorRT-LLM/latest/features/overlap-scheduler.html); CUDA-graph use is not "
              "assumed (not stated as a default there). Its attention preprocessing is one kernel: "
              "invokeQKVPreprocessing → invokeApplyBiasRopeUpdateKVCacheDispatch adds the QKV bias, applies RoPE "
              "and writes K and V into the KV cache in place (github.com/NVIDIA/TensorRT-LLM, "
              "cpp/tensorrt_llm/kernels/unfusedAttentionKernels.h), so kv_append runs inside rope's kernel",
              fused=(("kv_append", "rope"),)),
    Framework("mindie", 0.0, (),
              "Huawei MindIE: no cited per-step host measurement or graph mode was found; the preset adds nothing "
              "beyond each kernel's launch (stated, not measured)"),
    Framework("llama.cpp", 0.0, ("decode",),
              "llama.cpp's CUDA backend replays batch-1 decode as CUDA graphs (developer.nvidia.com/blog/"
              "optimizing-llama-cpp-ai-inference-with-cuda-graphs); its remaining CPU overhead is not given in "
              "seconds there, so none is added; graph replay: " + GRAPH_SOURCE),
)}


def preset(name: str) -> Framework:
    """The preset called `name`. Raise PerfsimError naming the presets if there is none."""
    found = PRESETS.get(name)
    if found is None:
        raise PerfsimError(f"framework: unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return found

"""What a collective running beside compute takes from it: SMs for its channels, HBM bandwidth for its traffic.

NCCL runs a collective as one CTA per channel (NVIDIA/nccl 5067397, src/enqueue.cc: the kernel's grid is the
channel count; a channel's CTA holds its SM for the kernel's life). Its ring channel count (src/graph/search.cc
ncclTopoCompute, src/init.cc, src/graph/connect.cc) for a ring searched at per-channel speed s:
- s runs down NCCL's speed array (intra-node and inter-node arrays, sm90 ones for compute capability ≥ 9.0); each
  s admits n(s) = ⌊per-GPU NVLink bandwidth / s⌋ rings (NVLink bandwidth: links × NCCL's per-link figure,
  src/graph/topo.h SM80_NVLINK_BW 20.0, SM90_NVLINK_BW 20.6 GB/s), across nodes also at most
  NICs × ⌊NIC bandwidth / s⌋ (each ring enters and leaves the node through a NIC), at most MAXCHANNELS / 2 = 32
  (init.cc ringGraph->maxChannels); s starts at the fastest speed within the GPU's fastest path out (NVLink, or
  its NIC across nodes), and the search keeps the first s of greatest n·s, going down while the next speed is
  above 0.49 × the kept one;
- ncclTopoDupChannels doubles n (within 32) when s ≥ 25 GB/s, unless cc > 80, s < 50 and n > 4;
- connect.cc doubles it again ("Duplication should be complete now"), within MAXCHANNELS = 64.
By hand: DGX H100, 18 × 20.6 = 370.8 GB/s: s = 60 → 6 rings (360; 50 → 7: 350, 40 → 9: 360, 30 → 12: 360, not
more), duplicated to 12, doubled to 24 channels of 132 SMs. DGX A100, 12 × 20.0 = 240: 40 → 6, 12, 24 of 108.
Across DGX H100 nodes with 8 × 400 Gb/s NICs: 48 → min(7, 8) = 7 (336), 45 → 8 (360): kept, not duplicated
(45 < 50, 8 > 4), 16 channels. Large buffers use every channel (enqueue.cc trims channels only below
nc · threads · threshold bytes).

RCCL on MI300X (ROCm/rccl 0cbce2a7571c907554199fad7e905f16ec0a565c, 2024-10-24) also launches one workgroup per
channel (src/enqueue.cc grid = channelCount), but an 8-GPU gfx942 node does not search: ncclTopoCompute
(src/graph/search.cc) first tries parseA2a8P (src/graph/rome_models.cc), which matches 8 GPUs on 2 CPUs, 4 per
NUMA node, all pairs one xGMI link apart, to a stored model by NICs per node and lays that model's ringBase:
rome_model_79 (0 NICs) 28 rings, rome_model_87 (4) 64, rome_model_81 (8) 64, rome_model_84 (16) 16. Within one
node all-xGMI GPUs drop their NICs (src/graph/paths.cc ncclTopoTrimSystem), so model 79. Then, with
MAXCHANNELS = 128 (src/include/device.h) and R the model's rings (src/init.cc, src/graph/connect.cc):
- the tree graph reuses the ringBase, so comm->nChannels = R; init.cc's nc for MI300X is 2 (16 and 4 only at 2
  and 4 ranks; 1 when R > MAXCHANNELS / 2);
- ncclTopoPostset caps at maxChannels = MAXCHANNELS for gfx942 (the CU count, were it 20, 38 or 80), at 64 where
  rings carry NICs or span nodes; duplicates R to 2R when R ≤ maxChannels / 2, and copies channels up to
  max(NCCL_MIN_NCHANNELS default 2, min(maxChannels / R, nc) · R).
By hand: one node, 28 → 56 channels (duplicated; nc: min(128 / 28, 2) · 28 = 56) of 304 CUs; across nodes with
8 NICs, 64 (64 > 32 not duplicated, min(64 / 64, 2) · 64 = 64). Not modelled: MSCCL's all-pairs all-reduce (8
channels) that RCCL picks below 16 MiB on one node, and nodes that match no model (RCCL then searches with its
own speed arrays). Other vendors' libraries are not modelled: no interference there.

HBM: a ring all-gather writes what it receives and reads what it forwards (2 × bytes sent); a reduce-scatter or
all-reduce also reads its own operand for each received chunk (3 ×), spread over the collective's time.

While a collective runs, an op's resources are max(compute × SMs / (SMs − channels), HBM × B / (B − b_coll),
other resources) instead of their max alone (`slowed_s`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfsim.cost.opcost import OpCost
from perfsim.hardware import Device, System

MAX_RING_CHANNELS, MAX_CHANNELS = 32, 64  # NCCL src/init.cc MAXCHANNELS / 2, src/include/device.h MAXCHANNELS
NVLINK_GBPS = {80: 20.0, 90: 20.6}  # NCCL src/graph/topo.h SM80_NVLINK_BW, SM90_NVLINK_BW (GB/s per link)
SPEEDS = {  # NCCL src/graph/search.cc speedArrayIntra/Inter, sm90SpeedArrayIntra/Inter (GB/s per channel)
    (80, False): (40.0, 30.0, 20.0, 18.0, 15.0, 12.0, 10.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0),
    (80, True): (48.0, 30.0, 28.0, 24.0, 20.0, 18.0, 15.0, 12.0, 10.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.4, 1.2,
                 0.24, 0.12),
    (90, False): (60.0, 50.0, 40.0, 30.0, 24.0, 20.0, 15.0, 12.0, 11.0, 6.0, 3.0),
    (90, True): (48.0, 45.0, 42.0, 40.0, 30.0, 24.0, 22.0, 20.0, 17.5, 15.0, 12.0, 6.0, 3.0, 2.4, 1.2, 0.24,
                 0.12),
}
COMPUTE_CAPABILITY = {"a100": 80, "h100": 90, "h200": 90}  # chip name prefix → CUDA compute capability (×10)
REDUCING = ("all_reduce", "reduce_scatter")
RCCL_MAX_CHANNELS, RCCL_NODE_GPUS = 128, 8  # ROCm/rccl src/include/device.h MAXCHANNELS; parseA2a8P's 8 GPUs
RCCL_CU_CAPPED = (20, 38, 80)  # connect.cc: gfx94x parts with these CU counts cap channels at their CUs
RCCL_MODEL_RINGS = {0: 28, 4: 64, 8: 64, 16: 16}  # NICs per node → rings of rome_model_79/87/81/84 (rome_models.cc)
RCCL_CHIPS = ("mi300x",)  # chip name prefixes that are gfx942 and match RCCL's 8-GPU all-xGMI models


def ring_channels(cc: int, nvlink_gbps: float, nics: int = 0, nic_gbps: float = 0.0) -> int:
    """NCCL's ring channel count (module doc) on a GPU of compute capability `cc` with `nvlink_gbps` of NVLink;
    `nics` NICs of `nic_gbps` per node when the ring crosses nodes (0: one node)."""
    speeds = SPEEDS[(cc, nics > 0)]
    path_gbps = min(nvlink_gbps, nic_gbps) if nics else nvlink_gbps  # NCCL's maxBw: the GPU's fastest path out
    start = next((s for s in speeds if s <= path_gbps), speeds[-1])
    best_n, best_s = 0, 0.0
    for s in speeds[speeds.index(start):]:
        if best_n and s / best_s <= 0.49:
            break
        n = math.floor(nvlink_gbps / s)
        if nics:
            n = min(n, nics * math.floor(nic_gbps / s))
        n = min(n, MAX_RING_CHANNELS)
        if n * s > best_n * best_s:
            best_n, best_s = n, s
    if best_s >= 25 and not (cc > 80 and best_s < 50 and best_n > 4):
        best_n = min(2 * best_n, MAX_RING_CHANNELS)
    return min(2 * best_n, MAX_CHANNELS)


def rccl_channels(rings: int, cus: int, crosses_nodes: bool) -> int:
    """RCCL's channel count on a gfx942 GPU of `cus` CUs from the `rings` of its node's topology model (module
    doc); `crosses_nodes`: the rings carry NICs and the communicator spans nodes."""
    max_channels = cus if cus in RCCL_CU_CAPPED else RCCL_MAX_CHANNELS
    if crosses_nodes:
        max_channels = min(64, max_channels)
    nc = 1 if rings > RCCL_MAX_CHANNELS // 2 else 2
    duplicated = min(max_channels, 2 * rings if rings <= max_channels // 2 else rings)
    return max(duplicated, min(max_channels // rings, nc) * rings)


def compute_capability(chip: Device) -> int | None:
    return next((cc for prefix, cc in COMPUTE_CAPABILITY.items() if chip.name.startswith(prefix)), None)


def collective_channels(chip: Device, system: System | None, crosses_nodes: bool) -> int:
    """Channels (so SMs or CUs) NCCL or RCCL gives a large ring collective on `chip`; 0 where no library model
    applies."""
    if chip.name.startswith(RCCL_CHIPS):
        return _rccl_collective_channels(chip, system, crosses_nodes)
    cc = compute_capability(chip)
    links = sum(link.count for link in chip.links if link.name.startswith("nvlink"))
    if cc is None or not links:
        return 0
    nics, nic_gbps = 0, 0.0
    if crosses_nodes and system is not None:
        network = system.interconnect
        nics, nic_gbps = network.links_per_member, network.bandwidth_per_direction / 1e9
    return ring_channels(cc, links * NVLINK_GBPS[cc], nics, nic_gbps)


def _rccl_collective_channels(chip: Device, system: System | None, crosses_nodes: bool) -> int:
    """RCCL's channels on an MI300X in `system`: its node must be the 8-GPU node RCCL's models describe."""
    node = system.member if system is not None and isinstance(system.member, System) else system
    if node is None or node.count != RCCL_NODE_GPUS:
        return 0
    nics = system.interconnect.links_per_member if crosses_nodes and system is not node else 0
    rings = RCCL_MODEL_RINGS.get(nics)
    return rccl_channels(rings, chip.cores or 0, nics > 0) if rings else 0


@dataclass(frozen=True)
class Interference:
    """A running collective's share of its chip: SMs its channels hold, HBM bytes/s its traffic takes."""

    sms: int = 0
    hbm_bytes_per_s: float = 0.0

    @classmethod
    def of(cls, kind: str, bytes_sent: float, seconds: float, channels: int) -> Interference:
        """A `kind` collective sending `bytes_sent` per rank in `seconds` over `channels` channels."""
        touches = 3 if kind in REDUCING else 2
        return cls(channels, touches * bytes_sent / seconds if seconds > 0 else 0.0)


NONE = Interference()  # nothing taken: compute keeps its pace


def slowed_s(c: OpCost, chip: Device, during: Interference) -> float:
    """`c`'s seconds while `during` runs beside it (module doc)."""
    sms = chip.cores or 0
    hbm = next((m.bandwidth for m in chip.memory if m.name == "hbm"), 0.0)
    sm_factor = sms / (sms - during.sms) if sms > during.sms else 1.0
    hbm_factor = hbm / (hbm - during.hbm_bytes_per_s) if hbm > during.hbm_bytes_per_s else 1.0
    scaled = [s * (sm_factor if r.startswith("compute:") else hbm_factor if r == "memory:hbm" else 1.0)
              for r, s in c.resource_s.items()]
    return max(scaled, default=0.0) + c.overhead_s

"""Alpha-beta collectives against the RCCL calibration points (CAL-RCCL-MI300X) and hand arithmetic."""

import json

import pytest

from perfsim.cost import bus_bandwidth, cost
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.hardware.system import join
from perfsim.ops import parse_op

NODE = load_hardware("mi300x-node")
LINK = NODE.interconnect
ALPHA = LINK.calibration.latency.value
BETA_BW = LINK.bandwidth_per_direction * 7 * LINK.calibration.bandwidth_efficiency.value


def _all_reduce(size: float) -> float:
    # ring over 8 GPUs on the full xGMI mesh: 2(n−1) steps of α, 2(n−1)/n · S over 7 links in parallel
    return 2 * 7 * ALPHA + 2 * 7 / 8 * size / BETA_BW


def test_16_gib_all_reduce_matches_its_calibration_point(cli):
    out = json.loads(cli("estimate", "--hardware", "mi300x-node", "--op", f"all_reduce bytes={16 * 2**30}",
                         "--format", "json").out)
    assert out["time_s"] == pytest.approx(_all_reduce(16 * 2**30))
    assert out["bus_bandwidth_bytes_per_s"] == pytest.approx(319e9, rel=0.10)
    assert out["bound"] == "link:xgmi"


def test_8_byte_all_reduce_is_latency():
    c = cost(parse_op("all_reduce bytes=8"), NODE)
    assert c.time_s == pytest.approx(16.6e-6, rel=0.01)  # CAL-RCCL-MI300X's 8 B point


def test_1_mib_all_reduce_uses_the_same_alpha_and_beta():
    op = parse_op(f"all_reduce bytes={2**20}")
    c = cost(op, NODE)
    assert c.time_s == pytest.approx(_all_reduce(2**20))
    assert bus_bandwidth(op, NODE, c.time_s) == pytest.approx(2 * 7 / 8 * 2**20 / c.time_s)


@pytest.mark.parametrize(("kind", "steps", "factor"), [("reduce_scatter", 7, 7 / 8), ("all_gather", 7, 7 / 8),
                                                       ("all_to_all", 7, 7 / 8), ("broadcast", 7, 1.0)])
def test_other_collectives(kind, steps, factor):
    size = 2**28
    c = cost(parse_op(f"{kind} bytes={size}"), NODE)
    assert c.time_s == pytest.approx(steps * ALPHA + factor * size / BETA_BW)


def test_smaller_group_on_a_full_mesh_uses_fewer_links():
    size = 2**30
    c = cost(parse_op(f"all_reduce bytes={size} group=4"), NODE)
    bw = LINK.bandwidth_per_direction * 3 * LINK.calibration.bandwidth_efficiency.value
    assert c.time_s == pytest.approx(2 * 3 * ALPHA + 2 * 3 / 4 * size / bw)


CLUSTER = load_hardware("mi300x-cluster")
RAIL_ALPHA = 5e-6  # Pollara: no calibration, the spec's 5 us per message
NIC = 50e9  # one 400 Gb/s Pollara NIC per GPU: the node's 8 NICs over its 8 GPUs
GIB = 2**30


def test_cluster_spec_numbers_the_hand_derivations_use():
    rail = CLUSTER.interconnect
    assert (rail.topology, rail.latency, rail.calibration.latency, rail.calibration.bandwidth_efficiency) == \
        ("rails", RAIL_ALPHA, None, None)
    assert rail.bandwidth_per_direction * rail.links_per_member / 8 == NIC
    assert ALPHA == 1.186e-6
    assert pytest.approx(318.976e9) == BETA_BW  # 7 × 64 GB/s × 0.712


def test_two_node_all_reduce_pipelines_its_levels():
    # one node: 14α + 2·7/8·S/B = 16.6 µs + 5.8908 ms = 5.9074 ms
    one = cost(parse_op(f"all_reduce bytes={GIB} group=8"), CLUSTER)
    assert one.time_s == pytest.approx(14 * 1.186e-6 + 1.75 * GIB / 318.976e9)
    assert one.time_s == pytest.approx(5.9074e-3, rel=1e-4)
    # two nodes (a = 8, N = 2): reduce-scatter in the node, all-reduce of S/8 on each rail, all-gather in the node,
    # pipelined: 14α + 2·α_rail + max(2·7/8·S/B = 5.8908 ms, 2·1/2·(S/8)/50 GB/s = 2.6844 ms) = 5.9174 ms
    two = cost(parse_op(f"all_reduce bytes={GIB} group=16"), CLUSTER)
    assert two.time_s == pytest.approx(14 * 1.186e-6 + 2 * RAIL_ALPHA + max(1.75 * GIB / 318.976e9, GIB / 8 / NIC))
    assert two.time_s == pytest.approx(5.9174e-3, rel=1e-4)
    assert two.time_s <= 1.2 * one.time_s  # 1.0017×; the phases one after the other took 8.60 ms (1.46×)
    assert two.bound == "link:xgmi"  # the node's reduce-scatter + all-gather moves more than the rail
    assert two.resource_s["link:pollara"] == pytest.approx(14 * 1.186e-6 + 2 * RAIL_ALPHA + GIB / 8 / NIC)


def test_broadcast_is_no_slower_than_an_all_reduce_of_the_same_size():
    # group 16: scatter + all-gather in the node (2·7 steps, 7/8·S per rank), a chain of S/8 on each rail
    # 14α + α_rail + max(7/8·S/B = 2.9454 ms, (S/8)/50 GB/s = 2.6844 ms) = 2.9670 ms
    # (was 24.85 ms: all of S over one NIC, then the node)
    broadcast = cost(parse_op(f"broadcast bytes={GIB} group=16"), CLUSTER)
    assert broadcast.time_s == pytest.approx(14 * 1.186e-6 + RAIL_ALPHA + 0.875 * GIB / 318.976e9)
    assert broadcast.time_s == pytest.approx(2.9670e-3, rel=1e-4)
    for size in (8, 2**20, GIB):
        for group in (2, 8, 16, 64, 1024):
            b, a = (cost(parse_op(f"{kind} bytes={size} group={group}"), CLUSTER).time_s
                    for kind in ("broadcast", "all_reduce"))
            assert b <= a, (size, group)


def test_all_1024_gpus_cross_both_levels_and_report_what_each_rank_sends():
    c = cost(parse_op(f"all_reduce bytes={GIB}"), CLUSTER)
    # N = 128 nodes: 14α + 2·127·α_rail + max(5.8908 ms, 2·127/128·(S/8)/50 GB/s = 5.3267 ms) = 7.1775 ms
    assert c.time_s == pytest.approx(14 * 1.186e-6 + 254 * RAIL_ALPHA + 1.75 * GIB / 318.976e9)
    # each rank sends 2·7/8·S on xGMI and 2·127/128·S/8 on its rail: together 2(n−1)/n·S, n = 1024
    assert c.bytes_per_level == pytest.approx({"xgmi": 1.75 * GIB, "pollara": 2 * 127 / 128 * GIB / 8})
    assert c.bytes == pytest.approx(2 * 1023 / 1024 * GIB)
    assert bus_bandwidth(parse_op(f"all_reduce bytes={GIB}"), CLUSTER, c.time_s) < 8 * NIC


def test_cluster_all_to_all_forwards_cross_rail_chunks_through_the_node():
    n, size = 16, 2**26
    c = cost(parse_op(f"all_to_all bytes={size} group={n}"), CLUSTER)
    # 7/16 of the buffer goes to node-mates over xGMI, 8/16 over the rails; rails-only: 7/8 of the rail chunks go
    # to another rail's GPU, so they also cross xGMI: xGMI carries (7/16 + 8/16 · 7/8)·S = 7/8·S per rank
    xgmi, rail = 7 / 16 * size + 8 / 16 * 7 / 8 * size, 8 / 16 * size
    assert c.bytes_per_level == pytest.approx({"xgmi": xgmi, "pollara": rail})
    assert c.time_s == pytest.approx(7 * ALPHA + RAIL_ALPHA + max(xgmi / BETA_BW, rail / NIC))
    assert c.bound == "link:pollara"  # 0.671 ms on the rail vs 0.184 ms on xGMI


def test_group_and_stride_must_spread_evenly():
    with pytest.raises(PerfsimError, match="group 12 with stride 1 does not spread evenly over the 8-chip xgmi"):
        cost(parse_op("all_reduce bytes=8 group=12"), CLUSTER)
    with pytest.raises(PerfsimError, match="stride 3 does not spread evenly"):
        cost(parse_op("all_reduce bytes=8 group=4 stride=3"), CLUSTER)
    # stride 2 inside one node (chips 0, 2, 4, 6): a full mesh of 4, 3 links each
    c = cost(parse_op("all_reduce bytes=4096 group=4 stride=2"), CLUSTER)
    assert c.time_s == pytest.approx(2 * 3 * ALPHA + 2 * 3 / 4 * 4096 / (3 * 64e9 * 0.712))
    # stride 8: one GPU per node, all on rail 0: a flat ring over 4 nodes at one NIC
    c = cost(parse_op("all_reduce bytes=4096 group=4 stride=8"), CLUSTER)
    assert c.time_s == pytest.approx(2 * 3 * RAIL_ALPHA + 2 * 3 / 4 * 4096 / NIC)
    assert list(c.resource_s) == ["link:pollara"]


SEND = 2**26  # 64 MiB: e.g. 4096 tokens × 8192 hidden × 2 B of activations between pipeline stages


def test_send_inside_a_node_uses_one_xgmi_link():
    c = cost(parse_op(f"send bytes={SEND} group=2"), CLUSTER)
    # one step, S over the pair's one link at the calibrated 0.712: 1.186 µs + 2^26 / 45.568 GB/s = 1.4739 ms
    assert c.time_s == pytest.approx(1.186e-6 + SEND / (64e9 * 0.712))
    assert c.time_s == pytest.approx(1.4739e-3, rel=1e-4)
    assert (c.bound, c.bytes) == ("link:xgmi", SEND)


def test_send_between_nodes_is_priced_on_the_rail():
    # stages tp·dp = 8 chips apart: chips 0 and 8 span 9 chips > 8 per node: one NIC, 5 µs + 2^26 / 50 GB/s
    c = cost(parse_op(f"send bytes={SEND} group=2 stride=8"), CLUSTER)
    assert c.time_s == pytest.approx(RAIL_ALPHA + SEND / NIC)
    assert c.time_s == pytest.approx(1.3472e-3, rel=1e-4)
    assert (c.bound, c.bytes, c.bytes_per_level) == ("link:pollara", SEND, {"pollara": SEND})
    # stride 4 still fits one node (span 5 ≤ 8): the xGMI link
    assert cost(parse_op(f"send bytes={SEND} group=2 stride=4"), CLUSTER).bound == "link:xgmi"


def test_send_on_dgx_h100_uses_the_gpus_nvswitch_port():
    dgx = load_hardware("dgx-h100")
    # NVSwitch: a pair uses all 18 NVLinks (450 GB/s, no efficiency calibrated); α = 1.83 µs calibrated
    c = cost(parse_op(f"send bytes={SEND} group=2 stride=4"), dgx)
    assert c.time_s == pytest.approx(1.83e-6 + SEND / 450e9)
    assert c.time_s == pytest.approx(0.15096e-3, rel=1e-4)
    with pytest.raises(PerfsimError, match="spans 9 chips, which exceeds the 8 chips of dgx-h100"):
        cost(parse_op(f"send bytes={SEND} group=2 stride=8"), dgx)


@pytest.mark.parametrize(("kind", "factor"), [("all_reduce", 2 * 7 / 8), ("reduce_scatter", 7 / 8),
                                              ("all_gather", 7 / 8), ("all_to_all", 7 / 8), ("broadcast", 1.0)])
def test_bytes_each_rank_sends(kind, factor, cli):
    size = 2**20
    assert cost(parse_op(f"{kind} bytes={size}"), NODE).bytes == pytest.approx(factor * size)
    out = json.loads(cli("estimate", "--hardware", "mi300x-node", "--op", f"{kind} bytes={size}", "--format",
                         "json").out)
    assert out["bytes"] == pytest.approx(factor * size)
    assert out["bytes_per_level"] == pytest.approx({"xgmi": factor * size})


def test_two_mi300x_joined_share_one_xgmi_link():
    pair = join(load_hardware("mi300x"), 2)
    assert (pair.chips, pair.interconnect.topology, pair.interconnect.links_per_member) == (2, "full_mesh", 7)
    # a pair of a full mesh shares one link: 2·1·α + 2·1/2·S / 64 GB/s (the chip spec has no efficiency)
    c = cost(parse_op(f"all_reduce bytes={GIB}"), pair)
    assert c.time_s == pytest.approx(2 * 1.186e-6 + GIB / 64e9)
    assert c.time_s == pytest.approx(16.7796e-3, rel=1e-4)  # was 2.4 ms over all 7 links


def test_join_builds_a_switch_for_nvlink_and_refuses_an_impossible_mesh():
    eight = join(load_hardware("h100-sxm"), 8)
    assert (eight.interconnect.topology, eight.interconnect.links_per_member) == ("switch", 18)
    # through NVSwitch a pair uses all 18 links: 2α + S / 450 GB/s
    c = cost(parse_op(f"all_reduce bytes={GIB} group=2"), eight)
    assert c.time_s == pytest.approx(2 * 1.83e-6 + GIB / 450e9)
    with pytest.raises(PerfsimError, match="a full mesh of 9 chips needs 8 xgmi links per chip; it has 7"):
        join(load_hardware("mi300x"), 9)
    with pytest.raises(PerfsimError, match="declares no chip-to-chip links"):
        join(load_hardware("stm32f746"), 2)


def test_group_of_one_is_refused(cli):
    result = cli("estimate", "--hardware", "mi300x-node", "--op", "all_reduce bytes=8 group=1")
    assert result.code == 2 and "group 1 has no peer" in result.err and len(result.err.strip().splitlines()) == 1
    with pytest.raises(PerfsimError, match="a send has group=2"):
        parse_op("send bytes=8 group=4")
    with pytest.raises(PerfsimError, match="mi300x-x1 has 1 chip; a collective needs at least 2"):
        cost(parse_op("all_reduce bytes=8"), join(load_hardware("mi300x"), 1))


def test_tree_on_the_rails_of_1024_gpus():
    # ring reduce-scatter / all-gather in the node, NCCL's double binary tree over the 128 nodes on each rail:
    # 14α + 2⌈log2 128⌉·α_rail + max(2·7/8·S/B, 2·(S/8)/50 GB/s); S = 1 MiB: max(5.753 µs, 5.243 µs)
    size = 2**20
    c = cost(parse_op(f"all_reduce bytes={size} algorithm=tree"), CLUSTER)
    assert c.time_s == pytest.approx(14 * ALPHA + 14 * RAIL_ALPHA + 1.75 * size / BETA_BW)
    assert c.time_s == pytest.approx(92.35e-6, rel=1e-3)  # the ring's 254 rail steps take 1.29 ms of latency


def test_tree_all_reduce_trades_latency_steps_for_bandwidth():
    small, large = 8, 2**30
    for size in (small, large):
        tree = cost(parse_op(f"all_reduce bytes={size} algorithm=tree"), NODE)
        assert tree.time_s == pytest.approx(2 * 3 * ALPHA + 2 * size / BETA_BW)  # 2·⌈log2 8⌉ steps, 2S / B
    assert cost(parse_op("all_reduce bytes=8 algorithm=tree"), NODE).time_s < cost(parse_op("all_reduce bytes=8"),
                                                                                       NODE).time_s
    assert cost(parse_op(f"all_reduce bytes={large} algorithm=tree"), NODE).time_s > cost(
        parse_op(f"all_reduce bytes={large}"), NODE).time_s  # 2S vs 2·7/8·S: the ring moves less


def test_tree_broadcast_and_bad_kind(cli):
    c = cost(parse_op("broadcast bytes=4096 algorithm=tree group=4"), NODE)
    bw = LINK.bandwidth_per_direction * 3 * LINK.calibration.bandwidth_efficiency.value
    assert c.time_s == pytest.approx(2 * ALPHA + 4096 / bw)
    result = cli("estimate", "--hardware", "mi300x-node", "--op", "all_gather bytes=4096 algorithm=tree")
    assert result.code == 2 and "applies to all_reduce and broadcast" in result.err

"""Alpha-beta collectives against the RCCL calibration points (CAL-RCCL-MI300X) and hand arithmetic."""

import json

import pytest

from perfsim.cost import bus_bandwidth, cost
from perfsim.hardware import load_hardware
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


def test_cluster_all_reduce_is_hierarchical():
    cluster = load_hardware("mi300x-cluster")
    rail = cluster.interconnect
    size, a, nodes = 2**30, 8, 4
    c = cost(parse_op(f"all_reduce bytes={size} group={a * nodes}"), cluster)
    # each GPU drives its own rail NIC: the node's links_per_member NICs shared by its 8 GPUs
    rail_bw = rail.bandwidth_per_direction * rail.links_per_member / 8 * (
        rail.calibration.bandwidth_efficiency.value if rail.calibration.bandwidth_efficiency else 1.0)
    rail_alpha = rail.calibration.latency.value if rail.calibration.latency else rail.latency
    inner = 7 * ALPHA + 7 / 8 * size / BETA_BW  # reduce-scatter in the node (and the all-gather after)
    outer = 2 * 3 * rail_alpha + 2 * 3 / 4 * (size / 8) / rail_bw
    assert c.time_s == pytest.approx(2 * inner + outer)


def test_cluster_bus_bandwidth_stays_below_one_nic():
    cluster = load_hardware("mi300x-cluster")
    op = parse_op(f"all_reduce bytes={2**30}")  # all 1,024 GPUs
    c = cost(op, cluster)
    nic = cluster.interconnect.bandwidth_per_direction
    assert nic == 50e9  # one 400 Gb/s Pollara NIC per GPU
    # the cross-node phase runs at one NIC per GPU, so the whole all-reduce cannot beat the NVLink-free bound:
    # busbw ≤ 2(n−1)/n · S / (2(N−1)/N · (S/8) / nic) ≈ 8 · nic
    assert bus_bandwidth(op, cluster, c.time_s) < 8 * nic


def test_cluster_all_to_all_splits_node_and_rail_traffic():
    cluster = load_hardware("mi300x-cluster")
    rail = cluster.interconnect
    n, a, size = 16, 8, 2**26
    c = cost(parse_op(f"all_to_all bytes={size} group={n}"), cluster)
    rail_alpha = rail.calibration.latency.value if rail.calibration.latency else rail.latency
    rail_bw = rail.bandwidth_per_direction * rail.links_per_member / a
    expected = 7 * ALPHA + 7 / n * size / BETA_BW + 1 * rail_alpha + (n - a) / n * size / rail_bw
    assert c.time_s == pytest.approx(expected)


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

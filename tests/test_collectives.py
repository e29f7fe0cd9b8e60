"""Collectives by hand: algorithms × NCCL protocols on the RCCL / NVLS calibration points, levels pipelined.

Protocol terms (perfsim/cost/collectives.py, from NCCL's tuning model): once per op LL 6.6 µs, LL128 14.0 µs,
Simple 8.4 µs; per step the link's α plus LL128 1.3 µs, Simple 2.8 µs (11.3 µs on a network); bandwidth share
LL 1/2, LL128 120/128, Simple 1.
"""

import json

import pytest

from perfsim.cost import cost
from perfsim.cost.collectives import choose
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.hardware.system import join
from perfsim.ops import parse_op

US = 1e-6
NODE = load_hardware("mi300x-node")
LINK = NODE.interconnect
ALPHA = 0.714 * US  # CAL-RCCL-MI300X-8B: (16.6 µs − LL's 6.6 µs) / 14 steps
B = 7 * 64e9 * 0.7125  # 319.2 GB/s: CAL-RCCL-MI300X-16G's efficiency over 7 xGMI links
LL = {"base": 6.6 * US, "extra": 0.0, "share": 0.5}
LL128 = {"base": 14.0 * US, "extra": 1.3 * US, "share": 120 / 128}
SIMPLE = {"base": 8.4 * US, "extra": 2.8 * US, "share": 1.0}
GIB = 2**30


def _ring(size: float, proto: dict, n: int = 8, bandwidth: float = B, alpha: float = ALPHA) -> float:
    # ring all-reduce over n GPUs: base + 2(n−1)·(α + extra) + 2(n−1)/n · S / (B · share)
    steps = 2 * (n - 1)
    return proto["base"] + steps * (alpha + proto["extra"]) + steps / n * size / (bandwidth * proto["share"])


def test_spec_numbers_the_hand_derivations_use():
    assert (LINK.calibration.latency.value, LINK.calibration.bandwidth_efficiency.value) == (ALPHA, 0.7125)
    assert (LINK.bandwidth_per_direction, LINK.links_per_member) == (64e9, 7)


def test_16_gib_all_reduce_is_ring_simple_at_its_calibration_point(cli):
    out = json.loads(cli("estimate", "--hardware", "mi300x-node", "--op", f"all_reduce bytes={16 * GIB}",
                         "--format", "json").out)
    # 8.4 + 14·(0.714 + 2.8) = 57.6 µs + 1.75 · 2^34 / 319.2 GB/s = 94.19 ms
    assert out["time_s"] == pytest.approx(_ring(16 * GIB, SIMPLE))
    assert out["bus_bandwidth_bytes_per_s"] == pytest.approx(319e9, rel=0.001)
    assert out["bound"] == "link:xgmi"
    assert (choose(parse_op(f"all_reduce bytes={16 * GIB}"), NODE).protocol) == "simple"


def test_8_byte_all_reduce_is_ring_ll():
    c = choose(parse_op("all_reduce bytes=8"), NODE)
    # 6.6 + 14 · 0.714 = 16.596 µs (+ 1.75 · 8 B / 159.6 GB/s = 0.09 ns): CAL-RCCL-MI300X-8B's 16.6 µs
    assert (c.algorithm, c.protocol) == ("ring", "ll")
    assert c.seconds == pytest.approx(16.596 * US, rel=1e-4)


def test_protocol_switch_points_on_the_mi300x_node():
    # ring, 8 GPUs: ll 16.596 µs + 3.5 S/B; ll128 14 + 14·2.014 = 42.196 µs + 1.75/0.9375 = 1.8667 S/B;
    # simple 8.4 + 14·3.514 = 57.596 µs + 1.75 S/B.
    # ll = ll128 at S = 25.6 µs · B / 1.6333 = 5.003 MB; ll128 = simple at S = 15.4 µs · B / 0.11667 = 42.13 MB
    first, second = 25.6 * US * B / (3.5 - 1.75 / 0.9375), 15.4 * US * B / (1.75 / 0.9375 - 1.75)
    assert first == pytest.approx(5.0029e6, rel=1e-4) and second == pytest.approx(42.134e6, rel=1e-4)
    chosen = [choose(parse_op(f"all_reduce bytes={s}"), NODE).protocol
              for s in (0.99 * first, 1.01 * first, 0.99 * second, 1.01 * second)]
    assert chosen == ["ll", "ll128", "ll128", "simple"]
    assert cost(parse_op(f"all_reduce bytes={first}"), NODE).time_s == pytest.approx(_ring(first, LL))
    assert _ring(first, LL) == pytest.approx(_ring(first, LL128))


def test_1_mib_and_8_mib_points_between_the_calibration_ends():
    # RCCL-1M: ll, 16.596 µs + 3.5 · 2^20 / 319.2 GB/s = 28.09 µs (published 27.4 µs)
    assert cost(parse_op(f"all_reduce bytes={2**20}"), NODE).time_s == pytest.approx(28.09 * US, rel=1e-3)
    # RCCL-MI300X-8M: ll128, 42.196 µs + 1.8667 · 2^23 / 319.2 GB/s = 91.25 µs (published 91.10 µs)
    assert cost(parse_op(f"all_reduce bytes={2**23}"), NODE).time_s == pytest.approx(91.25 * US, rel=1e-3)


def test_explicit_algorithm_and_protocol_restrict_the_choice():
    size = 2**28
    c = cost(parse_op(f"all_reduce bytes={size} protocol=ll"), NODE)
    assert c.time_s == pytest.approx(_ring(size, LL))
    # inside a node NCCL's tree is a chain: 2(n−1) steps and 2S per rank, never faster than the ring here
    tree = cost(parse_op(f"all_reduce bytes={size} algorithm=tree protocol=simple"), NODE)
    assert tree.time_s == pytest.approx(8.4 * US + 14 * (ALPHA + 2.8 * US) + 2 * size / B)
    assert choose(parse_op("all_reduce bytes=8"), NODE).algorithm == "ring"


@pytest.mark.parametrize(("kind", "factor"), [("reduce_scatter", 7 / 8), ("all_gather", 7 / 8), ("broadcast", 1.0)])
def test_other_collectives_at_large_size_run_simple(kind, factor):
    size = 2**28
    c = cost(parse_op(f"{kind} bytes={size}"), NODE)
    assert c.time_s == pytest.approx(8.4 * US + 7 * (ALPHA + 2.8 * US) + factor * size / B)


def test_all_to_all_on_a_full_mesh_sends_to_every_peer_at_once():
    # one step (a link per peer), 7/8 · S over the 7 links: 8.4 + 3.514 µs + 7/8 · 2^28 / 319.2 GB/s
    size = 2**28
    c = cost(parse_op(f"all_to_all bytes={size}"), NODE)
    assert c.time_s == pytest.approx(8.4 * US + ALPHA + 2.8 * US + 7 / 8 * size / B)


def test_smaller_group_on_a_full_mesh_uses_fewer_links():
    c = cost(parse_op(f"all_reduce bytes={GIB} group=4"), NODE)
    assert c.time_s == pytest.approx(_ring(GIB, SIMPLE, n=4, bandwidth=3 * 64e9 * 0.7125))


def test_a_full_mesh_pair_shares_one_link():
    pair = join(load_hardware("mi300x"), 2)
    assert (pair.chips, pair.interconnect.topology, pair.interconnect.links_per_member) == (2, "full_mesh", 7)
    # one 64 GB/s link, no efficiency, the chip's 1.186 µs per step: simple 8.4 + 2·(1.186 + 2.8) µs + S / 64 GB/s
    c = cost(parse_op(f"all_reduce bytes={GIB}"), pair)
    assert c.time_s == pytest.approx(8.4 * US + 2 * 3.986 * US + GIB / 64e9)
    assert c.time_s == pytest.approx(16.7940e-3, rel=1e-4)  # 7 links would be 2.4 ms
    # 8 B: ll, 6.6 + 2 · 1.186 µs = 8.972 µs
    assert cost(parse_op("all_reduce bytes=8"), pair).time_s == pytest.approx(8.972 * US, rel=1e-4)


CLUSTER = load_hardware("mi300x-cluster")
RAIL_ALPHA = 5e-6  # Pollara: no calibration, the spec's 5 us per LL step
NET_SIMPLE = 11.3e-6  # Simple's extra per network step
NIC = 50e9  # one 400 Gb/s Pollara NIC per GPU: the node's 8 NICs over its 8 GPUs


def test_cluster_spec_numbers_the_hand_derivations_use():
    rail = CLUSTER.interconnect
    assert (rail.topology, rail.latency, rail.calibration.latency, rail.calibration.bandwidth_efficiency) == \
        ("rails", RAIL_ALPHA, None, None)
    assert rail.bandwidth_per_direction * rail.links_per_member / 8 == NIC
    assert CLUSTER.chips == 1024 and [c for _, c in CLUSTER.interconnects] == [8, 128]


def test_two_level_hierarchical_all_reduce_pipelines_its_levels():
    one = cost(parse_op(f"all_reduce bytes={GIB} group=8"), CLUSTER)
    # one node, ring simple: 57.596 µs + 1.75 · 2^30 / 319.2 GB/s = 5.8867 ms → 5.9443 ms
    assert one.time_s == pytest.approx(_ring(GIB, SIMPLE))
    assert one.time_s == pytest.approx(5.9443e-3, rel=1e-4)
    # two nodes (a = 8, N = 2): reduce-scatter in the node, all-reduce of S/8 on each rail, all-gather in the node,
    # pipelined, simple: 8.4 + 14·(0.714 + 2.8) + 2·(5 + 11.3) = 90.196 µs
    # + max(1.75 · S / B = 5.8867 ms, 2 · 1/2 · (S/8) / 50 GB/s = 2.6844 ms) = 5.9769 ms
    two = cost(parse_op(f"all_reduce bytes={GIB} group=16"), CLUSTER)
    latency = 8.4 * US + 14 * (ALPHA + 2.8 * US) + 2 * (RAIL_ALPHA + NET_SIMPLE)
    assert two.time_s == pytest.approx(latency + max(1.75 * GIB / B, GIB / 8 / NIC))
    assert two.time_s == pytest.approx(5.9769e-3, rel=1e-4)
    assert two.time_s <= 1.2 * one.time_s  # 1.0055×
    assert two.bound == "link:xgmi"
    assert two.resource_s["link:pollara"] == pytest.approx(latency + GIB / 8 / NIC)


def test_broadcast_is_no_slower_than_an_all_reduce_of_the_same_size():
    for size in (8, 2**20, GIB):
        for group in (2, 8, 16, 64, 1024):
            b, a = (cost(parse_op(f"{kind} bytes={size} group={group}"), CLUSTER).time_s
                    for kind in ("broadcast", "all_reduce"))
            assert b <= a, (size, group)


def test_all_1024_gpus_choose_the_tree_across_nodes_and_name_the_binding_link():
    op = parse_op(f"all_reduce bytes={GIB}")
    c, choice = cost(op, CLUSTER), choose(op, CLUSTER)
    # tree simple: ring in the node, double binary tree over 128 nodes: 2⌈log2 128⌉ = 14 rail steps:
    # 57.596 + 14 · 16.3 = 285.8 µs + max(5.8867 ms, 2 · (S/8) / 50 GB/s = 5.3687 ms) = 6.1725 ms
    assert (choice.algorithm, choice.protocol) == ("tree", "simple")
    assert c.time_s == pytest.approx(8.4 * US + 14 * (ALPHA + 2.8 * US) + 14 * (RAIL_ALPHA + NET_SIMPLE)
                                     + 1.75 * GIB / B)
    assert c.time_s == pytest.approx(6.1725e-3, rel=1e-4)
    assert c.bound == "link:xgmi"
    assert c.bytes_per_level == pytest.approx({"xgmi": 1.75 * GIB, "pollara": 2 * GIB / 8})
    # the ring alone picks ll128: 42.196 µs + 254 · (5 + 1.3) µs = 1.6424 ms + 1.75 · S / (0.9375 B) = 6.2792 ms
    ring = cost(parse_op(f"all_reduce bytes={GIB} algorithm=ring"), CLUSTER)
    assert ring.bytes == pytest.approx(2 * 1023 / 1024 * GIB)  # 2·7/8·S on xGMI + 2·127/128·S/8 on the rail
    assert ring.time_s == pytest.approx(7.9216e-3, rel=1e-4)


def test_cluster_all_to_all_forwards_cross_rail_chunks_through_the_node():
    n, size = 16, 2**26
    c = cost(parse_op(f"all_to_all bytes={size} group={n}"), CLUSTER)
    # 7/16 of the buffer to node-mates over xGMI, 8/16 over the rails; rails-only: 7/8 of the rail chunks go to
    # another rail's GPU, so they also cross xGMI: xGMI carries (7/16 + 8/16 · 7/8)·S = 7/8·S per rank
    xgmi, rail = 7 / 16 * size + 8 / 16 * 7 / 8 * size, 8 / 16 * size
    assert c.bytes_per_level == pytest.approx({"xgmi": xgmi, "pollara": rail})
    # simple: 8.4 µs + one xGMI step (all peers at once) + one rail step (n = 2) + max(0.184 ms, 0.671 ms)
    assert c.time_s == pytest.approx(8.4 * US + ALPHA + 2.8 * US + RAIL_ALPHA + NET_SIMPLE
                                     + max(xgmi / B, rail / NIC))
    assert c.bound == "link:pollara"


def test_a_fat_tree_needs_no_cross_rail_forwarding():
    h100 = load_hardware("h100-cluster")
    assert (h100.chips, h100.interconnect.topology) == (1024, "fat_tree")
    c = cost(parse_op(f"all_to_all bytes={2**26} group=16"), h100)
    assert c.bytes_per_level == pytest.approx({"nvswitch": 7 / 16 * 2**26, "ib-ndr": 8 / 16 * 2**26})


def test_group_and_stride_must_spread_evenly():
    with pytest.raises(PerfsimError, match="group 12 with stride 1 does not spread evenly over the 8-chip xgmi"):
        cost(parse_op("all_reduce bytes=8 group=12"), CLUSTER)
    with pytest.raises(PerfsimError, match="stride 3 does not spread evenly"):
        cost(parse_op("all_reduce bytes=8 group=4 stride=3"), CLUSTER)
    # stride 8: one GPU per node, all on rail 0: a flat ring over 4 nodes at one NIC, ll at 4 KiB:
    # 6.6 + 6 · 5 µs + 2 · 3/4 · 4096 / (0.5 · 50 GB/s) = 36.846 µs (the tree: ⌈log2 4⌉ = 2 steps each way, 2S)
    c = cost(parse_op("all_reduce bytes=4096 group=4 stride=8 algorithm=ring"), CLUSTER)
    assert c.time_s == pytest.approx(6.6 * US + 6 * RAIL_ALPHA + 1.5 * 4096 / (0.5 * NIC))
    assert list(c.resource_s) == ["link:pollara"]


DGX = load_hardware("dgx-h100")
NVLS_LATENCY, NVLS_BW = 25.6 * US, 450e9 * 0.685  # CAL-NVLS-H100-1K and -8G


def test_nvls_on_dgx_h100_sends_each_buffer_once_to_the_switch():
    # nvls: 25.6 µs + 9/8 · 2^30 / 308.25 GB/s = 3.9447 ms; the ring simple: 8.4 + 14 · 3.4 µs + 1.75 · S / 450 GB/s
    # = 4.2317 ms
    op = parse_op(f"all_reduce bytes={GIB}")
    assert (choose(op, DGX).algorithm, cost(op, DGX).time_s) == ("nvls", pytest.approx(NVLS_LATENCY + 9 / 8 * GIB /
                                                                                        NVLS_BW))
    ring = cost(parse_op(f"all_reduce bytes={GIB} algorithm=ring"), DGX)
    assert ring.time_s == pytest.approx(8.4 * US + 14 * 3.4 * US + 1.75 * GIB / 450e9)


def test_algorithm_switch_point_ring_ll_to_nvls():
    # ring ll: 6.6 + 14 · 0.6 = 15.0 µs + 1.75 S / 225 GB/s; nvls 25.6 µs + 1.125 S / 308.25 GB/s:
    # equal at S = 10.6 µs / (1.75 / 225e9 − 1.125 / 308.25e9) = 2.568 MB (ll128 there: 51 µs, slower)
    switch = 10.6 * US / (1.75 / 225e9 - 1.125 / NVLS_BW)
    assert switch == pytest.approx(2.5677e6, rel=1e-3)
    below, above = (choose(parse_op(f"all_reduce bytes={s}"), DGX) for s in (0.99 * switch, 1.01 * switch))
    assert (below.algorithm, below.protocol, above.algorithm) == ("ring", "ll", "nvls")


def test_bad_algorithm_and_protocol_are_one_line_errors(cli):
    for op, message in [("all_gather bytes=4096 algorithm=tree", "applies to all_reduce and broadcast"),
                        ("all_reduce bytes=4096 algorithm=direct", "applies to all_to_all and send"),
                        ("all_reduce bytes=4096 algorithm=nvls protocol=ll", "runs protocol 'simple' only"),
                        ("all_reduce bytes=4096 algorithm=nvls", "no level of mi300x-node"),
                        ("all_reduce bytes=4096 protocol=ll256", "protocol")]:
        result = cli("estimate", "--hardware", "mi300x-node", "--op", op)
        assert result.code == 2 and message in result.err and len(result.err.strip().splitlines()) == 1, op


SEND = 2**26  # 64 MiB: e.g. 4096 tokens × 8192 hidden × 2 B of activations between pipeline stages


def test_send_inside_a_node_uses_one_xgmi_link():
    c = cost(parse_op(f"send bytes={SEND} group=2"), CLUSTER)
    # one step over the pair's one link at 0.7125, simple: 8.4 + 0.714 + 2.8 µs + 2^26 / 45.6 GB/s = 1.4836 ms
    assert c.time_s == pytest.approx(8.4 * US + ALPHA + 2.8 * US + SEND / (64e9 * 0.7125))
    assert c.time_s == pytest.approx(1.4836e-3, rel=1e-4)
    assert (c.bound, c.bytes) == ("link:xgmi", SEND)


def test_send_between_nodes_is_priced_on_the_rail():
    # stages tp·dp = 8 chips apart span 9 chips > 8 per node: one NIC, simple 8.4 + 5 + 11.3 µs + 2^26 / 50 GB/s
    c = cost(parse_op(f"send bytes={SEND} group=2 stride=8"), CLUSTER)
    assert c.time_s == pytest.approx(8.4 * US + RAIL_ALPHA + NET_SIMPLE + SEND / NIC)
    assert c.time_s == pytest.approx(1.3669e-3, rel=1e-4)
    assert (c.bound, c.bytes, c.bytes_per_level) == ("link:pollara", SEND, {"pollara": SEND})
    assert cost(parse_op(f"send bytes={SEND} group=2 stride=4"), CLUSTER).bound == "link:xgmi"  # span 5 ≤ 8


def test_send_on_dgx_h100_uses_the_gpus_nvswitch_port():
    # NVSwitch: a pair uses all 18 NVLinks (450 GB/s, no ring efficiency): simple 8.4 + 0.6 + 2.8 µs + S / 450 GB/s
    c = cost(parse_op(f"send bytes={SEND} group=2 stride=4"), DGX)
    assert c.time_s == pytest.approx(11.8 * US + SEND / 450e9)
    assert c.time_s == pytest.approx(0.16093e-3, rel=1e-4)
    with pytest.raises(PerfsimError, match="spans 9 chips, which exceeds the 8 chips of dgx-h100"):
        cost(parse_op(f"send bytes={SEND} group=2 stride=8"), DGX)


@pytest.mark.parametrize(("kind", "factor"), [("all_reduce", 2 * 7 / 8), ("reduce_scatter", 7 / 8),
                                              ("all_gather", 7 / 8), ("all_to_all", 7 / 8), ("broadcast", 1.0)])
def test_bytes_each_rank_sends(kind, factor, cli):
    size = 2**20
    assert cost(parse_op(f"{kind} bytes={size}"), NODE).bytes == pytest.approx(factor * size)
    out = json.loads(cli("estimate", "--hardware", "mi300x-node", "--op", f"{kind} bytes={size}", "--format",
                         "json").out)
    assert out["bytes"] == pytest.approx(factor * size)
    assert out["bytes_per_level"] == pytest.approx({"xgmi": factor * size})


def test_join_builds_a_switch_for_nvlink_and_refuses_an_impossible_mesh():
    eight = join(load_hardware("h100-sxm"), 8)
    assert (eight.interconnect.topology, eight.interconnect.links_per_member) == ("switch", 18)
    # through NVSwitch a pair uses all 18 links; the chip's 1.83 µs per step, no in-switch reduction declared:
    # simple 8.4 + 2 · (1.83 + 2.8) µs + S / 450 GB/s
    c = cost(parse_op(f"all_reduce bytes={GIB} group=2"), eight)
    assert c.time_s == pytest.approx(8.4 * US + 2 * 4.63 * US + GIB / 450e9)
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


def test_tree_on_the_rails_of_1024_gpus_at_1_mib():
    # ring in the node, double binary tree over the 128 nodes, ll: 6.6 + 14 · 0.714 + 14 · 5 µs = 86.596 µs
    # + max(2 · 7/8 · S / (0.5 B), 2 · (S/8) / (0.5 · 50 GB/s)) = max(11.50 µs, 10.49 µs) = 98.09 µs
    size = 2**20
    c = cost(parse_op(f"all_reduce bytes={size} algorithm=tree protocol=ll"), CLUSTER)
    assert c.time_s == pytest.approx(6.6 * US + 14 * ALPHA + 14 * RAIL_ALPHA + 3.5 * size / B)
    assert c.time_s == pytest.approx(98.09e-6, rel=1e-3)


def test_curves_rows_match_the_cost_model_and_mark_the_knee():
    from perfsim.analysis.collective_curves import curves, plot_curves

    first = 25.6 * US * B / (3.5 - 1.75 / 0.9375)  # the LL → LL128 switch derived above, 5.003 MB
    frame = curves(["mi300x-node"], kinds=["all_reduce"], groups=[8, 64], sizes=[8, int(0.99 * first), 2**34])
    assert list(frame["group"]) == [8, 8, 8]  # 64 GPUs do not fit one node: skipped
    assert list(frame["protocol"]) == ["ll", "ll", "simple"]
    # 16 GiB: 1.75 · 2^34 / (57.596 µs + 1.75 · 2^34 / 319.2 GB/s) = 319.0 GB/s bus bandwidth
    assert frame["bus_bandwidth_bytes_per_s"].iloc[-1] == pytest.approx(1.75 * 2**34 / _ring(2**34, SIMPLE))
    assert frame["bound"].iloc[-1] == "link:xgmi"
    figure = plot_curves(frame)
    assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == ["all_reduce"]
    with pytest.raises(PerfsimError, match="mi300x is one chip"):
        curves(["mi300x"])


def test_estimate_names_the_binding_link_and_the_algorithm(cli):
    import json

    out = cli("estimate", "--hardware", "mi300x-cluster", "--op", "all_reduce bytes=1073741824 group=1024",
              "--format", "json")
    record = json.loads(out.out)
    assert record["bound"].startswith("link:")
    assert record["algorithm"] in ("ring", "tree") and record["protocol"] in ("ll", "ll128", "simple")

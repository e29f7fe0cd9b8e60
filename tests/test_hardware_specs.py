"""Every shipped spec loads, the list covers every kind, and numbers come out in SI."""

import json

import pytest

from perfsim.hardware import DEVICE_KINDS, System, load_hardware, shipped_names
from perfsim.units import Span

DEVICES = [
    "a100-sxm-80gb", "h100-sxm", "mi300x", "ascend-910b", "ascend-310p", "m2-pro-cpu", "m2-ultra-cpu",
    "m2-ultra-gpu", "m2-gpu", "m1-pro-gpu", "m3-max-gpu", "raspberry-pi-5", "skylake-x-avx512", "cerebras-wse2",
    "duplex-logic-pim", "gap8", "pulp-open", "stm32f746", "zcu102-edge-moe", "tpe-systolic-os-128", "xr-npe",
]
SYSTEMS = {"atlas-800i-a2": 8, "atlas-300i-duo": 2, "mi300x-node": 8, "mi300x-cluster": 1024, "dgx-h100": 8}


@pytest.mark.parametrize("name", shipped_names())
def test_shipped_spec_loads_and_names_its_sources(name):
    spec = load_hardware(name)
    assert spec.name == name
    chip = spec.device if isinstance(spec, System) else spec
    assert chip.dtypes, "a device runs at least one dtype"
    assert all(chip.peak_flops(d) > 0 for d in chip.dtypes)


def test_list_covers_every_required_name_and_kind(cli):
    result = cli("hardware", "list", "--format", "json")
    assert result.code == 0
    rows = {row["name"]: row for row in json.loads(result.out)}
    assert set(DEVICES) | set(SYSTEMS) <= set(rows)
    assert {rows[name]["kind"] for name in DEVICES} == set(DEVICE_KINDS)
    for name, chips in SYSTEMS.items():
        assert rows[name]["chips"] == chips
        assert rows[name]["system"] is True


def test_h100_show_is_si(cli):
    result = cli("hardware", "show", "h100-sxm", "--format", "json")
    data = json.loads(result.out)
    hbm = next(level for level in data["memory"] if level["name"] == "hbm")
    assert hbm["capacity"] == 85899345920  # 80 GiB = 80 * 2**30 bytes
    assert hbm["bandwidth"] == 3.35e12
    assert data["peak_flop_per_s"]["bf16"] == 989.4e12


def test_cluster_node_count_is_a_field(tmp_path):
    cluster = load_hardware("mi300x-cluster")
    assert cluster.chips == cluster.count * 8
    text = (load_hardware.__globals__["SPEC_DIR"] / "mi300x-cluster.yaml").read_text()
    smaller = tmp_path / "mi300x-cluster.yaml"
    smaller.write_text(text.replace(f"count: {cluster.count}", "count: 4").replace(
        "member: mi300x-node", f"member: {load_hardware.__globals__['SPEC_DIR'] / 'mi300x-node.yaml'}"))
    assert load_hardware(str(smaller)).chips == 32


def test_ranges_survive_loading():
    specs = [load_hardware(name) for name in shipped_names()]
    spans = [value for spec in specs for value in _floats(spec) if isinstance(value, Span)]
    assert spans, "hardware_facts.md lists ranges (e.g. Ascend 910B fp16); at least one spec keeps one"
    assert all(span.low < float(span) < span.high for span in spans)


def _floats(model):
    from perfsim.hardware.describe import spec_rows

    return [row["value"] for row in spec_rows(model)]


def test_link_bandwidths_are_per_direction():
    h100 = load_hardware("h100-sxm")
    nvlink = h100.links[0]
    # NVLink 4: "900 GB/s" is the bidirectional total over 18 links → 25 GB/s per link per direction
    assert nvlink.count * nvlink.bandwidth_per_direction * 2 == pytest.approx(900e9)

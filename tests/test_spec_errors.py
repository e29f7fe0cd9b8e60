"""Bad spec files: one line on stderr naming the file and the field, exit 2, never a traceback."""

import pytest

from perfsim.hardware import SPEC_DIR

H100 = (SPEC_DIR / "h100-sxm.yaml").read_text()


def _write(tmp_path, text, name="h100-sxm"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def _fails(cli, path, *needles):
    for fmt in ("table", "json"):
        result = cli("hardware", "show", path, "--format", fmt)
        assert result.code == 2
        assert result.out == ""
        lines = result.err.strip().splitlines()
        assert len(lines) == 1, result.err
        assert "Traceback" not in result.err
        for needle in needles:
            assert needle in lines[0]
    return lines[0]


def test_misspelled_top_level_field(cli, tmp_path):
    line = _fails(cli, _write(tmp_path, H100.replace("vendor:", "vendor_tpyo:")), "h100-sxm.yaml", "vendor_tpyo")
    assert "did you mean 'vendor'" in line


def test_misspelled_nested_field(cli, tmp_path):
    line = _fails(cli, _write(tmp_path, H100.replace("    role: matrix", "    rol: matrix")), "compute[0].rol")
    assert "did you mean 'role'" in line


def test_decimal_capacity(cli, tmp_path):
    _fails(cli, _write(tmp_path, H100.replace("capacity: 80 GiB", "capacity: 80 GB")), "memory[1].capacity",
           "write GiB")


def test_bad_unit(cli, tmp_path):
    _fails(cli, _write(tmp_path, H100.replace("bandwidth: 3.35 TB/s", "bandwidth: 3.35 TB")), "memory[1].bandwidth",
           "3.35 TB")


def test_unknown_dtype(cli, tmp_path):
    _fails(cli, _write(tmp_path, H100.replace("bf16: 989.4", "bf17: 989.4")), "bf17", "unknown dtype")


def test_negative_size(cli, tmp_path):
    _fails(cli, _write(tmp_path, H100.replace("cores: 132", "cores: -132")), "cores", "greater than 0")


def test_zero_capacity(cli, tmp_path):
    _fails(cli, _write(tmp_path, H100.replace("capacity: 80 GiB", "capacity: 0")), "capacity", "positive")


def test_malformed_yaml(cli, tmp_path):
    _fails(cli, _write(tmp_path, H100 + "\nbroken: [1, 2\n"), "h100-sxm.yaml", "malformed YAML", "line")


def test_not_a_mapping(cli, tmp_path):
    _fails(cli, _write(tmp_path, "- just\n- a list\n"), "expected a mapping")


def test_unknown_kind(cli, tmp_path):
    _fails(cli, _write(tmp_path, H100.replace("kind: accelerator", "kind: gpu")), "kind", "gpu", "accelerator")


def test_missing_source(cli, tmp_path):
    text = H100.replace("  source: NVIDIA H100 datasheet, SXM column\n", "", 1)
    assert text != H100
    _fails(cli, _write(tmp_path, text), "source", "missing")


def test_name_must_match_file(cli, tmp_path):
    _fails(cli, _write(tmp_path, H100, name="my-gpu"), "my-gpu.yaml", "must equal the file name")


def test_unknown_shipped_name(cli):
    result = cli("hardware", "show", "h100-sxn")
    assert result.code == 2
    assert "did you mean 'h100-sxm'" in result.err


def test_missing_file(cli, tmp_path):
    _fails(cli, str(tmp_path / "nope.yaml"), "nope.yaml", "cannot read")


def test_calibration_out_of_range(cli, tmp_path):
    text = H100.replace("value: 0.8866", "value: 1.8866")
    _fails(cli, _write(tmp_path, text), "calibration.memory_efficiency.hbm.value")


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_user_spec_path_is_shown(cli, tmp_path, fmt):
    result = cli("hardware", "show", _write(tmp_path, H100), "--format", fmt)
    assert result.code == 0
    assert "h100-sxm" in result.out


def test_fpga_design_must_match_its_compute(cli, tmp_path):
    text = (SPEC_DIR / "zcu102-edge-moe.yaml").read_text()
    path = tmp_path / "zcu102-edge-moe.yaml"
    path.write_text(text.replace("  rows: 16", "  rows: 8"))
    result = cli("hardware", "show", str(path))
    assert result.code == 2
    assert "8 x 16 MAC array" in result.err


def test_type_adapters_are_built_once_per_annotation():
    # building a TypeAdapter costs far more than validating with it (75 % of an op estimate from names)
    from perfsim.ops import Op
    from perfsim.specfile import adapter

    assert adapter(Op) is adapter(Op)


def test_unit_efficiency_naming_an_unknown_compute_unit(cli, tmp_path):
    a6000 = (SPEC_DIR / "rtx-a6000.yaml").read_text().replace("  unit_efficiency:\n    cuda:",
                                                               "  unit_efficiency:\n    cdua:")
    _fails(cli, _write(tmp_path, a6000, "rtx-a6000"), "rtx-a6000.yaml", "unit_efficiency", "cdua", "cuda, tensor")


def test_unit_efficiency_on_a_kind_that_runs_the_whole_chip_at_one_rate(cli, tmp_path):
    gap8 = (SPEC_DIR / "gap8.yaml").read_text().replace(
        "calibration:\n", "calibration:\n  unit_efficiency:\n    cluster: {value: 0.5, source: a test}\n", 1)
    _fails(cli, _write(tmp_path, gap8, "gap8"), "gap8.yaml", "calibration.unit_efficiency", "compute_efficiency")


def test_a_calibration_given_as_a_bare_number_names_the_fields_it_needs(cli, tmp_path):
    start = H100.index("  compute_efficiency:\n")
    bare = H100[:start] + "  compute_efficiency: 0.5\n" + H100[H100.index("  memory_efficiency:", start):]
    line = _fails(cli, _write(tmp_path, bare), "calibration.compute_efficiency", "expected a mapping with fields")
    assert "source, value" in line and "Annotated" not in line


DGX = (SPEC_DIR / "dgx-h100.yaml").read_text()


def test_compute_unit_named_twice(cli, tmp_path):
    text = H100.replace("  - name: cuda\n", "  - name: tensor\n")
    assert text != H100
    line = _fails(cli, _write(tmp_path, text), "h100-sxm.yaml", "compute:")
    assert line.endswith("names must be unique; tensor given more than once")


def test_link_named_twice(cli, tmp_path):
    text = H100.replace("  - name: pcie5\n", "  - name: nvlink4\n")
    assert text != H100
    line = _fails(cli, _write(tmp_path, text), "h100-sxm.yaml", "links:")
    assert line.endswith("names must be unique; nvlink4 given more than once")


def test_links_per_member_beyond_the_chips_ports(cli, tmp_path):
    # h100-sxm's largest port kind is nvlink4 × 18, so a DGX cannot join its chips over 1800 links each
    text = DGX.replace("links_per_member: 18", "links_per_member: 1800")
    assert text != DGX
    line = _fails(cli, _write(tmp_path, text, "dgx-h100"), "dgx-h100.yaml", "interconnect.links_per_member")
    assert "1800 links, but h100-sxm has at most 18 of one kind (nvlink4 × 18, pcie5 × 1)" in line


def test_links_per_member_equal_to_the_ports_loads(cli, tmp_path):
    assert cli("hardware", "show", _write(tmp_path, DGX, "dgx-h100")).code == 0


@pytest.mark.parametrize("ref", ["h100-nope", "./nope.yaml"])
def test_unknown_member_names_the_file_and_field(cli, tmp_path, ref):
    text = DGX.replace("member: h100-sxm", f"member: {ref}")
    assert text != DGX
    _fails(cli, _write(tmp_path, text, "dgx-h100"), "dgx-h100.yaml: member:", ref)


def test_unknown_topology_lists_every_allowed_one(cli, tmp_path):
    text = DGX.replace("  topology: switch", "  topology: torus")
    assert text != DGX
    line = _fails(cli, _write(tmp_path, text, "dgx-h100"), "dgx-h100.yaml: interconnect.topology: ")
    assert "literal" not in line
    for allowed in ("'ring'", "'switch'", "'full_mesh'", "'mesh2d'", "'rails'", "'fat_tree'"):
        assert allowed in line

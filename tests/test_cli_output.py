"""What the command line prints: readable units, tables that fit, step CSVs with the step, warnings, --spec-dir,
the files it wrote, and a progress bar that only a terminal sees."""

import csv
import io
import json
import math

import pytest

from perfsim import api, datadirs
from perfsim.hardware import SPEC_DIR
from perfsim.output import cell, human, listing, render, table
from perfsim.progress import Progress

# --- units by column suffix ---


@pytest.mark.parametrize(
    ("column", "value", "text"),
    [
        ("time_s", 1050.0, "1,050 s"),  # never "1.05 ks"
        ("time_s", 8.2e-13, "0.00082 ns"),  # never "0.82 ps"
        ("time_s", 138.9e-6, "138.9 µs"),
        ("time_s", 0.0, "0 s"),
        ("intensity_flop_per_byte", 0.9995, "1"),  # 3 significant digits, never "999.5 mFLOP/B"
        ("intensity_flop_per_byte", 2 * 4096**3 / (3 * 4096**2 * 2), "1,365"),  # a 4096³ bf16 GEMM: 4096/3 FLOP/B
        ("intensity_flop_per_byte", 12.8, "12.8"),
        ("memory_bytes", 80 * 2**30, "80 GiB"),  # capacities binary
        ("hbm_bytes", 96 * 2**20, "96 MiB"),
        ("kv_bytes_per_token_per_device", 2**19, "512 KiB"),
        ("memory_bandwidth_bytes_per_s", 3.35e12, "3.35 TB/s"),  # rates decimal
        ("link_bytes_per_s", 0.5, "0.5 B/s"),  # no milli-bytes
        ("flops", 2 * 4096**3, "137.4 GFLOP"),  # 137,438,953,472 FLOP
        ("flops_per_token", 139006066688, "139 GFLOP"),
        ("params", 70553706496, "70.55 B"),
        ("energy_j", 0.09724, "97.24 mJ"),  # energy and power read with milli and kilo
        ("joules_per_token", 1.022, "1.022 J"),
        ("average_power_w", 5600.0, "5.6 kW"),
        ("tokens_per_s", 5478.57, "5,479"),
        ("tokens_per_s_per_device", 684.82, "684.8"),
        ("flops_per_token_x", 139006066688, "139,006,066,688"),  # no unit: thousands separators
        ("count", 524288.0, "524,288"),  # never "5.243e+05"
        ("rel_error", -0.0002357, "-0.0002357"),
        ("ttft_s", None, ""),
        ("ttft_s", math.nan, ""),
        ("system", True, "True"),
    ],
)
def test_a_cell_reads_in_its_columns_unit(column, value, text):
    assert cell(column, value) == text


def test_human_keeps_prefixes_people_read():
    assert human(1.979e15, "FLOP/s") == "1.979 PFLOP/s"
    assert human(3.9e-12, "J/B") == "3.9 pJ/B"
    assert human(50 * 2**20, "B", binary=True) == "50 MiB"
    assert human(2e21, "FLOP") == "2,000 EFLOP"


# --- tables that fit ---

ROWS = [{"name": f"device-{i}", "memory_bytes": 2**30 * (i + 1), "description": "a long description " * 5}
        for i in range(3)]


def test_a_table_fits_its_width_eliding_text_then_leaving_columns_out():
    wide = table(ROWS)
    assert max(map(len, wide.splitlines())) > 60  # unlimited: every column in full
    fitted = table(ROWS, 60).splitlines()
    assert all(len(line) <= 60 for line in fitted)
    assert fitted[1].startswith("device-0") and fitted[1].rstrip().endswith("…")  # the description elided
    narrow = table(ROWS, 30).splitlines()
    assert all(len(line) <= 30 for line in narrow)
    assert narrow[0].split() == ["name", "memory_bytes"]
    assert "(1 more column: description;" in " ".join(narrow[4:])  # named below the rows, wrapped to fit


def test_a_one_row_table_too_wide_becomes_a_listing():
    text = table(ROWS[:1], 40)
    lines = text.splitlines()
    assert lines[0].split() == ["name", "device-0"]
    assert lines[1].split() == ["memory_bytes", "1", "GiB"]
    assert all(len(line) <= 40 for line in lines)  # the description wrapped under its value
    assert listing([("a", "x")]) == "a  x"


def test_numbers_right_text_left():
    lines = table([{"op": "qkv", "time_s": 1e-3}, {"op": "attention", "time_s": 1.5e-6}]).splitlines()
    assert lines == ["op         time_s", "qkv          1 ms", "attention  1.5 µs"]


def test_csv_without_pandas_leaves_missing_values_empty():
    text = render([{"a": 1, "b": None}, {"a": math.nan, "c": "x,y"}], "csv")
    assert list(csv.reader(io.StringIO(text))) == [["a", "b", "c"], ["1", "", ""], ["", "", "x,y"]]


# --- commands ---


def test_op_estimate_table_has_no_raw_exponents(cli):
    out = cli("estimate", "--hardware", "h100-sxm", "--op", "gemm m=4096 n=4096 k=4096").out
    assert "e+" not in out and "e-" not in out and "kFLOP/B" not in out
    assert "137.4 GFLOP" in out and "96 MiB" in out  # 2·4096³ FLOP; 3 × 4096² × 2 B = 96 MiB


def test_step_csv_has_the_step_fields_on_every_op_row(cli):
    argv = ["estimate", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--batch", "4", "--context", "1024"]
    step = json.loads(cli(*argv, "--format", "json").out)
    rows = list(csv.DictReader(io.StringIO(cli(*argv, "--format", "csv").out)))
    assert len(rows) == len(step["breakdown"])
    assert {"step_s", "ttft_s", "tpot_s", "tokens_per_s", "energy_j", "step_bound", "op", "time_s", "bound"} <= set(
        rows[0])
    assert {float(row["step_s"]) for row in rows} == {step["step_s"]}
    # one analytic step on one chip is its ops one after another: step_s = Σ time_s over the op names
    assert sum(float(row["time_s"]) for row in rows) == pytest.approx(step["step_s"], rel=1e-9)
    assert rows[0]["ttft_s"] == ""  # a decode step has no TTFT


def test_model_show_has_the_architecture(cli):
    info = dict(line.split(None, 1) for line in cli("model", "show", "mixtral-8x7b").out.splitlines())
    # mistralai/Mixtral-8x7B-v0.1 config.json: 32 heads, 8 KV heads, vocab 32000, 32768 positions, 8 experts, top-2
    assert (info["heads"], info["kv_heads"], info["head_dim"]) == ("32", "8", "128")  # 4096 / 32 = 128
    assert (info["vocab"], info["max_context"]) == ("32,000", "32,768")
    assert (info["moe_experts"], info["moe_top_k"], info["tied_embeddings"]) == ("8", "2", "False")
    per_layer = dict(line.split(None, 1) for line in cli("model", "show", "openelm-3b").out.splitlines())
    assert per_layer["heads"] == "12 – 24 per layer"  # OpenELM-3B scales its query heads from 12 to 24


def test_where_the_timeline_was_written(cli, tmp_path):
    argv = ["estimate", "--model", "llama-2-7b", "--hardware", "h100-sxm", "--engine", "des", "--timeline",
            str(tmp_path)]
    result = cli(*argv)
    assert result.code == 0, result.err
    written = f"{tmp_path / 'trace.json'}, {tmp_path / 'gantt.png'} and {tmp_path / 'timeline.csv'}"
    assert result.out.rstrip().endswith(f"wrote {written}")
    as_json = cli(*argv, "--format", "json")
    json.loads(as_json.out)  # stdout stays JSON; the files are named on stderr
    assert as_json.err.splitlines()[-1] == f"perfsim: wrote {written}"  # after any warning about the H100


def test_validate_writes_and_says_so(cli, tmp_path):
    from perfsim.validation.case import CASE_DIR

    result = cli("validate", str(CASE_DIR / "amd_mi300x.yaml"), "-o", str(tmp_path))
    assert result.code == 0, result.err
    assert result.out.rstrip().endswith(f"and {tmp_path / 'predicted_vs_published.png'}")
    assert "e+" not in result.out  # predicted and published in their metric's unit


# --- warnings ---


def test_kinds_with_their_own_model_estimate_without_warnings(cli):
    for name in ("gap8", "raspberry-pi-5", "zcu102-edge-moe"):
        result = cli("estimate", "--hardware", name, "--op", "gemm m=8 n=64 k=64 dtype=int8")
        assert (result.code, result.err) == (0, ""), name


def test_a_failed_command_prints_its_error_alone(cli, tmp_path):
    result = cli("roofline", "--hardware", "gap8", "--op", "gemm m=8 n=64 k=64 dtype=int8", "-o", str(tmp_path))
    assert result.code == 2
    assert result.err.splitlines() == [f"perfsim: error: -o {tmp_path}: is a directory; give a file name, e.g. "
                                       f"{tmp_path / 'roofline.png'}"]


def test_an_uncalibrated_accelerator_names_the_default_derating(cli, tmp_path):
    from perfsim.hardware.common import DeviceCalibration

    bare = api.hardware("h100-sxm").model_copy(update={"calibration": DeviceCalibration()})
    assert api.notes(bare) == ["h100-sxm is uncalibrated (no calibration.compute_efficiency, "
                               "calibration.memory_efficiency.hbm, calibration.op_overhead); default derating: "
                               "compute 0.7, memory 0.8, launch 5 µs"]
    # the shipped H100 is calibrated throughout: nothing on stderr; without its launch latency, one line
    assert cli("estimate", "--hardware", "h100-sxm", "--op", "gemm m=8 n=64 k=64").err == ""
    text = (SPEC_DIR / "h100-sxm.yaml").read_text()
    (tmp_path / "h100-sxm.yaml").write_text(text[: text.index("  op_overhead:\n")])  # its last field
    result = cli("estimate", "--hardware", str(tmp_path / "h100-sxm.yaml"), "--op", "gemm m=8 n=64 k=64")
    assert result.err == ("perfsim: warning: h100-sxm is uncalibrated (no calibration.op_overhead); default "
                          "derating: launch 5 µs\n")


# --- --spec-dir ---


@pytest.fixture
def team_dir(tmp_path, monkeypatch):
    """A team directory with a copy of the H100 called team-gpu; nothing else on the search path."""
    monkeypatch.setattr(datadirs, "_added", [])
    monkeypatch.delenv(datadirs.ENV_VAR, raising=False)
    folder = tmp_path / "team" / "hardware_specs"
    folder.mkdir(parents=True)
    h100 = (datadirs.shipped_dir("hardware") / "h100-sxm.yaml").read_text()
    (folder / "team-gpu.yaml").write_text(h100.replace("name: h100-sxm", "name: team-gpu"))
    return tmp_path / "team"


def test_spec_dir_adds_a_directory_for_one_command(cli, team_dir):
    result = cli("--spec-dir", str(team_dir), "hardware", "list", "--format", "json")
    assert result.code == 0, result.err
    origins = {row["name"]: row["origin"] for row in json.loads(result.out)}
    assert origins["team-gpu"] == str(team_dir / "hardware_specs")
    assert origins["h100-sxm"] == "shipped"
    on_it = cli("--spec-dir", str(team_dir), "estimate", "--hardware", "team-gpu", "--op", "gemm m=1 n=8 k=8")
    assert on_it.code == 0, on_it.err
    assert cli("hardware", "show", "team-gpu").code == 2  # the directory was searched for that command only
    models = json.loads(cli("--spec-dir", str(team_dir), "model", "list", "--format", "json").out)
    assert {row["origin"] for row in models} == {"shipped"}


def test_spec_dir_must_be_a_directory(cli, tmp_path):
    result = cli("--spec-dir", str(tmp_path / "nope"), "hardware", "list")
    assert (result.code, result.err) == (2, f"perfsim: error: spec directory {tmp_path / 'nope'}: not a directory\n")


# --- progress ---


def test_progress_draws_only_after_a_second_and_ends_its_line():
    now = [0.0]
    stream = io.StringIO()
    bar = Progress(4, "requests", stream=stream, clock=lambda: now[0])
    bar.update(1)
    assert stream.getvalue() == ""  # 0 s: a short run stays silent
    now[0] = 2.0
    bar.update(2)
    # 2 of 4 in 2 s: 15 of 30 marks, 2 s left at that pace
    assert stream.getvalue() == f"\r[{'#' * 15}{'.' * 15}] 2/4 requests, 2 s, ~2 s left"
    now[0] = 2.05
    bar.update(3)
    assert stream.getvalue().count("\r") == 1  # not redrawn within 0.1 s
    bar.update(4)
    assert stream.getvalue().endswith(f"\r[{'#' * 30}] 4/4 requests\n")
    bar.update(4)
    assert stream.getvalue().count("\n") == 1  # finished: drawn once


def test_progress_is_for_a_terminal_only(capsys):
    from perfsim.progress import on_terminal

    assert not on_terminal()  # stderr captured, as in CI or `2> log`: no bar
    with pytest.raises(ValueError, match="positive total"):
        Progress(0, "cases")

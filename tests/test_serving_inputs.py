"""`perfsim serve` input: every bad flag, length distribution or trace file is one line on stderr and exit 2;
durations take units; Poisson flags given with --trace are an error."""

import json
import math

import numpy as np
import pytest

from perfsim.api import duration
from perfsim.errors import PerfsimError
from perfsim.serving.arrivals import HORIZON_S, from_csv, length_sampler, poisson

BASE = ("serve", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb")
HUGE = "1" + "0" * 310  # ≥ 1e309: no float can hold it


def _fails(cli, *argv: str) -> str:
    result = cli(*BASE, *argv)
    assert result.code == 2, result.out
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert result.err.startswith("perfsim: error: ")
    return result.err


@pytest.mark.parametrize(("argv", "needle"), [
    (["--rate", "nan"], "--rate must be positive and finite, got nan"),  # hung before
    (["--rate", "inf"], "--rate must be positive and finite, got inf"),
    (["--rate", "1e-300", "--requests", "3"], "arrivals must lie within 0 to 1e+08 s"),
    (["--seed", "-1"], "--seed must be a non-negative integer"),
    (["--prompt-len", "uniform:500:10"], "'uniform:500:10' is not uniform:LOW:HIGH"),
    (["--prompt-len", "normal:inf:1"], "is not normal:MEAN:STD with finite"),
    (["--output-len", "exponential:nan"], "--output-len: 'exponential:nan' is not exponential:MEAN"),
    (["--prompt-len", "lognormal:1000:1000"], "more than any context"),  # e^(1000·z) overflows to inf
    (["--prompt-len", HUGE], "a length is 1 to 2,147,483,647 tokens"),
    (["--slo-ttft", "-1"], "--slo-ttft: time must be positive"),
    (["--slo-tpot", "nan"], "--slo-tpot: time must be positive"),
    (["--slo-tpot", "3 parsecs"], "--slo-tpot: '3 parsecs' is not a time"),
    (["--requests", HUGE], "--requests must be 1 to 100,000,000, got 10000000000000000000… (311 digits)"),
    (["--max-tokens", HUGE], "--max-tokens must be 1 to 2,147,483,647"),
    (["--max-batch", HUGE], "--max-batch must be 1 to"),
    (["--block-size", "0"], "--block-size must be 1 to"),
    (["--draft-model", "openelm-1.1b", "--draft-len", HUGE], "--draft-len must be 1 to"),
    (["--prefill-devices", HUGE], "--prefill-devices must be 1 to"),
])
def test_bad_flags_are_one_line(cli, argv, needle):
    assert needle in _fails(cli, *argv)


def test_a_huge_seed_is_still_a_seed(cli):
    out = json.loads(cli(*BASE, "--seed", HUGE, "--requests", "3", "--format", "json").out)
    assert out["requests"] == 3


@pytest.mark.parametrize("flags", [["--rate", "3"], ["--requests", "7"], ["--prompt-len", "64"],
                                   ["--output-len", "8"], ["--seed", "0"], ["--rate", "3", "--seed", "2"]])
def test_poisson_flags_cannot_apply_to_a_trace(cli, tmp_path, flags):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_len,output_len\n0,16,4\n")
    given = ", ".join(f for f in flags if f.startswith("--"))
    assert f"{given} cannot apply with --trace" in _fails(cli, "--trace", str(trace), *flags)


def test_a_trace_alone_is_fine_with_the_defaults(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_len,output_len\n0,16,4\n")
    assert json.loads(cli(*BASE, "--trace", str(trace), "--format", "json").out)["requests"] == 1


@pytest.mark.parametrize(("content", "needle"), [
    (b"arrival_s,prompt_len,output_len\n", "no requests (a header but no rows)"),
    (b"arrival_s,prompt_len,output_len\n0,16,4\nnan,16,4\n", "line 3: arrival at nan s"),  # hung before
    (b"arrival_s,prompt_len,output_len\n0,16,4\ninf,16,4\n", "line 3: arrival at inf s"),
    (b"arrival_s,prompt_len,output_len\n-1,16,4\n", "line 2: arrival at -1 s"),
    (b"arrival_s,prompt_len,output_len\n2e8,16,4\n", "line 2: arrival at 2e+08 s"),
    (b"arrival_s,prompt_len,output_len\n1,16,4\n0.5,16,4\n", "line 3: arrivals must be sorted"),
    (b"arrival_s,prompt_len,output_len\n0,16\n", "line 2: 3 fields expected"),
    (b"arrival_s,prompt_len,output_len\n0,16,4,9\n", "line 2: 3 fields expected"),
    (b"arrival_s,prompt_len,output_len\n0,1.5,4\n", "line 2: arrival_s must be a number and the lengths integers"),
    (b"arrival_s,prompt_len,output_len\n0,16,0\n", "line 2: lengths must be 1 to"),
    (b"arrival_s,prompt_len,output_len\n0,16,\xff\n", "not UTF-8 text"),
    (b"prompt_len,output_len\n16,4\n", "missing column(s) arrival_s"),
    (b"arrival_s,prompt_len,output_len\n" + b"0" * 5000 + b",16,4\n", "line 2 is longer than 4096 characters"),
])
def test_bad_traces_are_one_line(cli, tmp_path, content, needle):
    trace = tmp_path / "t.csv"
    trace.write_bytes(content)
    assert needle in _fails(cli, "--trace", str(trace))


def test_unreadable_traces(cli, tmp_path):
    assert "/dev/zero: line 1 is longer than 4096 characters" in _fails(cli, "--trace", "/dev/zero")
    assert "cannot read (Is a directory)" in _fails(cli, "--trace", str(tmp_path))
    assert "cannot read (File name too long)" in _fails(cli, "--trace", str(tmp_path / ("x" * 300)))


def test_a_trace_may_start_with_a_byte_order_mark(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_bytes(b"\xef\xbb\xbfarrival_s,prompt_len,output_len\n0.5,16,4\n")
    assert [(r.arrival_s, r.prompt_len) for r in from_csv(trace)] == [(0.5, 16)]


def test_output_path_that_cannot_be_written(cli, tmp_path):
    (tmp_path / "out" / "serving.png").mkdir(parents=True)
    assert f"cannot write {tmp_path / 'out' / 'serving.png'} (Is a directory)" in _fails(
        cli, "--requests", "2", "-o", str(tmp_path / "out"))
    (tmp_path / "file").write_text("")
    assert "-o " + str(tmp_path / "file") + ": not a directory" in _fails(cli, "-o", str(tmp_path / "file"))


def test_table_output_says_where_it_wrote(cli, tmp_path):
    result = cli(*BASE, "--requests", "3", "-o", str(tmp_path / "o"))
    assert result.code == 0, result.err
    assert result.out.rstrip().endswith(f"wrote {tmp_path / 'o' / 'requests.csv'} and {tmp_path / 'o' / 'serving.png'}")


@pytest.mark.parametrize(("text", "seconds"), [("2", 2.0), ("2s", 2.0), ("150ms", 0.15), ("150 us", 150e-6),
                                               ("0.05", 0.05), ("1e-3 s", 1e-3)])
def test_durations_take_units(text, seconds):
    assert duration(text, "slo-ttft") == pytest.approx(seconds, rel=1e-12)


def test_slo_with_units_equals_slo_in_seconds(cli):
    run = ("--rate", "5", "--requests", "40", "--seed", "3", "--format", "json")
    # SLOs inside this run's spread (kernel-level A100 model: TTFT p50 ≈ 48 ms, TPOT p50 ≈ 21 ms, p90 ≈ 22 ms), so
    # some requests meet them and some do not
    plain = json.loads(cli(*BASE, *run, "--slo-ttft", "0.05", "--slo-tpot", "0.022").out)
    units = json.loads(cli(*BASE, *run, "--slo-ttft", "50ms", "--slo-tpot", "22 ms").out)
    assert units == plain
    assert plain["goodput_requests_per_s"] > 0


@pytest.mark.parametrize(("spec", "low", "high"), [("uniform:100:200", 100, 200), ("uniform:7:7", 7, 7),
                                                   ("normal:50:0", 50, 50), ("lognormal:64:0", 64, 64),
                                                   ("exponential:0.01", 1, 1)])
def test_valid_distributions_stay_in_range(spec, low, high):
    # std 0 and sigma 0 are point masses; an exponential of mean 0.01 rounds to 0, clipped to 1
    draw = length_sampler(spec, "prompt-len")
    rng = np.random.default_rng(0)
    assert all(low <= draw(rng) <= high for _ in range(200))


def test_poisson_validates_before_the_first_request():
    with pytest.raises(PerfsimError, match="--seed"):
        poisson(1.0, 5, "8", "8", seed=-1)  # raised at the call, not when iterated
    late = poisson(1.0 / HORIZON_S, 50, "8", "8", seed=0)  # mean gap = the horizon: some request passes it
    with pytest.raises(PerfsimError, match="arrivals must lie within"):
        list(late)
    assert all(math.isfinite(r.arrival_s) for r in poisson(1e12, 100, "8", "8", seed=0))  # all at ~0 is fine

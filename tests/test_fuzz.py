"""Fuzzing the inputs users write: spec, model, scenario, case and trace files, and command lines.

The contract for every input: it works (exit 0; JSON output strict and every number finite), or it is refused
with exit 2 and one line `perfsim: error: ...` — never a traceback, never a hang (TIMEOUT_S per example). Some
mutations must be refused outright: a number replaced by `true`, a boolean by 0 or 1, a duplicated key, a case
whose published value is not a positive finite number or whose hardware does not exist, and a flag given with
`--op` that cannot apply to it (one that can must change the result). PERFSIM_FUZZ_EXAMPLES=N runs N per test.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from strategies import HARDWARE, MODELS, OP_KINDS, bounded, check_outcome, collect, op_strings, run_cli

from perfsim.hardware import SPEC_DIR, load_hardware
from perfsim.models.loader import WORKLOAD_DIR
from perfsim.ops import COLLECTIVES

WORK = Path(tempfile.mkdtemp(prefix="perfsim-fuzz-"))
_fresh = itertools.count()

BAD_VALUES = (0, -1, 1, 0.5, float("inf"), float("-inf"), float("nan"), 1e-320, 10**309, 10**9, 2**64, True, False,
              "x", "", None, [], {}, [1, 2], "1e309 GB/s", "-5 GB/s", "nan TB/s", "inf MHz", "0 W", "1e-320 B")
BAD_WORDS = ("0", "-1", "1", "2", "1e309", "1" + "0" * 309, "inf", "nan", "-inf", "1e-320", "true", "x", "", "0.5",
             "bf16", "int4", "q4_0", "posit16_1", "uniform:500:10", "normal:inf:1", "exponential:nan", "lognormal:1:-1")


def fresh_dir() -> Path:
    """A new directory per example: perfsim memoises specs by path."""
    directory = WORK / str(next(_fresh))
    directory.mkdir()
    return directory


# --- YAML mutations ---------------------------------------------------------------------------------------------

def leaves(data, path=()):
    """Paths of every value (leaf or not) below the top level."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        yield (*path, key)
        yield from leaves(value, (*path, key))


def _get_or(data, path):
    try:
        return _get(data, path)
    except (KeyError, IndexError, TypeError):
        return "(gone)"


def _get(data, path):
    for key in path:
        data = data[key]
    return data


@st.composite
def mutated_yaml(draw, original: dict) -> tuple[bytes, bool, str]:
    """(file bytes, must be refused, what was done) for one mutation of `original`."""
    data = yaml.safe_load(yaml.safe_dump(original))  # a deep copy
    paths = list(leaves(data))
    path = draw(st.sampled_from(paths))
    parent, key = _get(data, path[:-1]), path[-1]
    value = parent[key]
    how = draw(st.sampled_from(["value", "value", "value", "strict", "drop", "misspell", "nest", "duplicate",
                                "bytes", "deep"]))
    refuse = False
    where = ".".join(map(str, path))
    if how == "value":
        parent[key] = draw(st.sampled_from(BAD_VALUES))
    elif how == "strict":  # a count or quantity given as a boolean, a boolean as 0/1: strict types refuse both
        if isinstance(value, bool):
            parent[key], refuse = draw(st.sampled_from([0, 1])), True
        elif isinstance(value, int | float):
            parent[key], refuse = True, True
        else:
            parent[key] = draw(st.sampled_from(BAD_VALUES))
    elif how == "drop":
        del parent[key]
    elif how == "misspell" and isinstance(key, str):
        parent[key + draw(st.sampled_from(["s", "_", "x"]))] = parent.pop(key)
    elif how == "nest":
        parent[key] = draw(st.sampled_from([[value], {"value": value}, {str(value): value}]))
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
    if how == "duplicate":  # the first top-level key again at the end: YAML would silently take the last
        first = next(iter(data))
        text += yaml.safe_dump({first: data[first]}, sort_keys=False).encode()
        refuse, where = True, first
    elif how == "bytes":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from([b"\xff\xfe", b"\x80", b"\xc3\x28", b"\x00"])) + text[at:]
    elif how == "deep":
        depth = draw(st.sampled_from([100, 1000]))
        text += f"{draw(st.sampled_from(['extra', str(next(iter(data)))]))}: {'[' * depth}{']' * depth}\n".encode()
    return text, refuse, f"{how} at {where}: {value!r:.60} -> {_get_or(data, path)!r:.60}"


def write(directory: Path, name: str, content: bytes) -> str:
    path = directory / name
    path.write_bytes(content)
    return str(path)


def check_refused(result, refuse: bool, what: str) -> None:
    check_outcome(result)
    if refuse:
        assert result.code == 2, f"perfsim {result.argv} accepted a file it must refuse ({what})"


def _shipped(directory: Path, names: list[str]) -> dict[str, dict]:
    return {name: yaml.safe_load((directory / f"{name}.yaml").read_text()) for name in names}


HARDWARE_FILES = _shipped(SPEC_DIR, HARDWARE)
MODEL_FILES = _shipped(WORKLOAD_DIR, MODELS)


@st.composite
def mutated_specs(draw, files: dict[str, dict]) -> tuple[str, bytes, bool, str]:
    name = draw(st.sampled_from(sorted(files)))
    return (name, *draw(mutated_yaml(files[name])))


@bounded(80)
@given(mutated_specs(HARDWARE_FILES))
@collect
def test_mutated_hardware_specs(mutation):
    name, content, refuse, what = mutation
    path = write(fresh_dir(), f"{name}.yaml", content)
    check_refused(run_cli(["hardware", "show", path, "--format", "json"]), refuse, what)
    chips = load_hardware(name).chips
    op = "all_reduce bytes=1048576" if chips > 1 else "gemm m=256 n=256 k=256"
    check_outcome(run_cli(["estimate", "--op", op, "--hardware", path, "--format", "json"]))
    check_outcome(run_cli(["estimate", "--model", "bert-base", "--hardware", path, "--format", "json"]))


@bounded(60)
@given(mutated_specs(MODEL_FILES))
@collect
def test_mutated_model_specs(mutation):
    name, content, refuse, what = mutation
    path = write(fresh_dir(), f"{name}.yaml", content)
    check_refused(run_cli(["model", "show", path, "--format", "json"]), refuse, what)
    check_outcome(run_cli(["estimate", "--model", path, "--hardware", "mi300x", "--format", "json"]))


SCENARIO = {"model": "llama-3-8b", "hardware": "h100-sxm", "phase": "decode", "batch": 4, "context": 1024,
            "prompt_len": 512, "tp": 1, "weight_dtype": "int8", "attention": "fused", "lut_gemm": False,
            "moe_imbalance": 1.0}


@bounded(50)
@given(mutated_yaml(SCENARIO))
@collect
def test_mutated_scenario_files(mutation):
    content, refuse, what = mutation
    path = write(fresh_dir(), "scenario.yaml", content)
    check_refused(run_cli(["estimate", "--scenario", path, "--format", "json"]), refuse, what)


CASES = {"cases": [
    {"id": "FUZZ-01", "source": "fuzz case (an op)", "hardware": "h100-sxm",
     "workload": {"op": "gemm m=1024 n=1024 k=1024 dtype=bf16"}, "metric": "latency_s", "published": 1.0e-4,
     "status": "verified", "role": "validation"},
    {"id": "FUZZ-02", "source": "fuzz case (a scenario)", "hardware": "mi300x",
     "workload": {"scenario": {"model": "llama-3-8b", "hardware": "mi300x", "phase": "decode", "batch": 1}},
     "metric": "tpot_s", "published": 5.0e-3, "status": "verified", "role": "validation"}]}


@bounded(50)
@given(mutated_yaml(CASES))
@collect
def test_mutated_case_files(mutation):
    content, refuse, what = mutation
    path = write(fresh_dir(), "cases.yaml", content)
    check_refused(run_cli(["validate", path, "--format", "json"]), refuse, what)


@pytest.mark.parametrize(("field", "value"), [("published", -1.0), ("published", float("nan")),
                                              ("published", float("inf")), ("published", 0.0),
                                              ("hardware", "no-such-chip")])
def test_case_that_cannot_be_scored_is_refused(field, value):
    # an error exit, not a row (issue 11, defects 17 and 20); published 0 may be a `fits` answer, so it only has
    # to keep the contract
    data = yaml.safe_load(yaml.safe_dump(CASES))
    data["cases"][1][field] = value
    content = yaml.safe_dump(data).encode()
    check_refused(run_cli(["validate", write(fresh_dir(), "cases.yaml", content), "--format", "json"]),
                  value != 0.0, f"{field}: {value}")


# --- request traces -----------------------------------------------------------------------------------------------

CSV_WORDS = ("0", "0.5", "1", "12", "100", "-1", "nan", "inf", "1e309", "1" + "0" * 309, "x", "", "true")


@st.composite
def traces(draw) -> bytes:
    header = draw(st.sampled_from(["arrival_s,prompt_len,output_len", "arrival_s,prompt_len", "a,b,c", ""]))
    rows = draw(st.lists(st.lists(st.sampled_from(CSV_WORDS), min_size=1, max_size=4), max_size=5))
    good = [f"{0.1 * i:.1f},{draw(st.integers(1, 300))},{draw(st.integers(1, 20))}" for i in range(3)]
    lines = [header, *good, *(",".join(row) for row in rows)]
    content = "\n".join(draw(st.permutations(lines)) if draw(st.booleans()) else lines).encode()
    if draw(st.booleans()):
        content += draw(st.sampled_from([b"\n\xff\xfe,1,1", b"\n1,1,1\x00", b"\n" + b"9," * 1000]))
    return content


@bounded(80)
@given(traces(), st.sampled_from(["analytic", "des"]))
@collect
def test_request_traces(content, engine):
    path = write(fresh_dir(), "trace.csv", content)
    check_outcome(run_cli(["serve", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--trace", path,
                           "--engine", engine, "--format", "json"]))


# --- command lines -------------------------------------------------------------------------------------------------

def where() -> st.SearchStrategy[list[str]]:
    """--model and --hardware: half the time a pair that fits (so the other flags get exercised), else any."""
    fits = st.just(["--model", "llama-3-8b", "--hardware", "h100-sxm"])
    anything = st.builds(lambda m, h: ["--model", m, "--hardware", h], st.sampled_from(MODELS),
                         st.sampled_from(HARDWARE))
    return st.one_of(fits, anything)


SCENARIO_FLAGS = {
    "--devices": ("1", "2", "8", "0", "-1", "3"), "--cores": ("1", "4", "0", "1000"), "--tp": ("1", "2", "8", "0"),
    "--pp": ("1", "2", "4", "0"), "--dp": ("1", "2", "0"), "--ep": ("1", "2", "8"), "--expert-tp": ("1", "2"),
    "--phase": ("prefill", "decode"), "--batch": ("1", "7", "64", "0", "-3", "1000000"),
    "--micro-batches": ("1", "2", "8", "0"), "--prompt-len": ("1", "512", "4097", "131072", "0", "10000000"),
    "--context": ("1", "2048", "130000", "0", "-1", "10000000"), "--decode-tokens": ("1", "4", "0"),
    "--weight-dtype": ("bf16", "int4", "q4_0", "ternary", "mxfp4", "posit8_1", "int3"),
    "--activation-dtype": ("bf16", "fp32", "int8", "fp8", "x"), "--kv-dtype": ("fp8", "int8", "int4", "nope"),
    "--attention": ("fused", "unfused"), "--lut-gemm": (), "--moe-imbalance": ("1", "1.5", "0.5", "inf", "nan",
                                                                                 "1e309"),
    "--engine": ("analytic", "des"), "--cache": ("cold", "warm"),
}


@st.composite
def flags(draw, table: dict[str, tuple[str, ...]], most: int = 4) -> list[str]:
    argv: list[str] = []
    for flag in draw(st.lists(st.sampled_from(sorted(table)), max_size=most, unique=True)):
        argv += [flag, *([draw(st.sampled_from(table[flag]))] if table[flag] else [])]
    return argv


@st.composite
def op_texts(draw) -> str:
    """Op strings: valid ones, collectives, and ones with random kinds, fields and values."""
    which = draw(st.sampled_from(["valid", "collective", "random"]))
    if which == "valid":
        return draw(op_strings())
    if which == "collective":
        group = draw(st.sampled_from(["", " group=1", " group=2", " group=3", " group=8", " group=64"]))
        return (f"{draw(st.sampled_from(COLLECTIVES))} bytes={draw(st.sampled_from(['1', '4096', '1e9', '0.5']))}"
                f"{group} algorithm={draw(st.sampled_from(['ring', 'tree']))}")
    kind = draw(st.sampled_from([*OP_KINDS, *COLLECTIVES, "gemmm", ""]))
    fields = draw(st.lists(st.sampled_from(["m", "n", "k", "batch", "dtype", "heads", "kv_heads", "q_len", "kv_len",
                                            "rows", "cols", "elements", "flops_per_element", "bytes", "group",
                                            "algorithm", "tokens", "hidden", "expert_ffn", "experts", "top_k",
                                            "imbalance", "group_size", "in_channels", "out_channels", "height",
                                            "width", "kernel", "stride", "padding", "groups", "variant", "x"]),
                           max_size=6))
    words = [f"{f}={draw(st.sampled_from(BAD_WORDS))}" for f in fields]
    return " ".join([kind, *words, *draw(st.sampled_from([[], ["'unclosed"], ["novalue"], ["=1"]]))])


@bounded(250)
@given(op_texts(), st.sampled_from([*HARDWARE, "nope", "x.yaml"]),
       flags({k: v for k, v in SCENARIO_FLAGS.items() if k in ("--cores", "--devices", "--cache", "--engine")}, 2),
       st.sampled_from(["json", "table", "csv"]))
@collect
def test_estimate_op_command_lines(op, hardware, extra, fmt):
    check_outcome(run_cli(["estimate", "--op", op, "--hardware", hardware, *extra, "--format", fmt]))


@bounded(200)
@given(where(), flags(SCENARIO_FLAGS), st.sampled_from(["json", "csv"]))
@collect
def test_estimate_model_command_lines(model_and_hardware, extra, fmt):
    check_outcome(run_cli(["estimate", *model_and_hardware, *extra, "--format", fmt]))


SERVE_FLAGS = {
    "--rate": ("0.5", "10", "1000", "0", "-1", "nan", "inf", "1e-300", "1e309"), "--requests": ("1", "5", "0", "-1"),
    "--prompt-len": ("1", "300", "uniform:10:500", "uniform:500:10", "normal:inf:1", "exponential:nan",
                     "lognormal:100:0.5", "normal:100:-1", "0", "x:1", "uniform:1"),
    "--output-len": ("1", "16", "exponential:8", "0"), "--seed": ("0", "7", "-1", "1" + "0" * 30),
    "--slo-ttft": ("0.1", "-1", "nan", "inf"), "--slo-tpot": ("0.01", "0", "nan"), "--max-batch": ("1", "4", "0"),
    "--max-tokens": ("16", "256", "8192", "0"), "--no-chunked-prefill": (), "--block-size": ("1", "16", "0"),
    "--engine": ("analytic", "des"), "--prefill-devices": ("1", "4", "0", "8"), "--draft-model": ("bert-base",
                                                                                                  "llama-3-8b"),
    "--draft-len": ("1", "4", "0"), "--acceptance": ("0", "0.7", "1", "nan", "-1"), "--devices": ("1", "2", "8"),
    "--tp": ("1", "2"), "--kv-dtype": ("fp8", "int4"),
}


@bounded(120)
@given(where(), flags(SERVE_FLAGS, 5))
@collect
def test_serve_command_lines(model_and_hardware, extra):
    argv = ["serve", *model_and_hardware, "--requests", "8", *extra, "--format", "json"]
    check_outcome(run_cli(argv))


@bounded(30)
@given(st.lists(op_texts(), min_size=1, max_size=3), st.sampled_from(HARDWARE),
       st.sampled_from(["plot.png", "plot.svg", "plot", "dir/", "plot.xyz"]), st.sampled_from([[], ["--model",
                                                                                                 "llama-3-8b"]]))
@collect
def test_roofline_command_lines(ops, hardware, output, model):
    target = fresh_dir() / output
    if output.endswith("/"):
        target.mkdir()
    argv = ["roofline", "--hardware", hardware, *itertools.chain.from_iterable(["--op", op] for op in ops), *model,
            "-o", str(target), "--format", "json"]
    check_outcome(run_cli(argv))


@bounded(40)
@given(st.sampled_from([*HARDWARE, "h100", "/dev/zero", "/nonexistent.yaml", "x" * 300 + ".yaml", "", "."]),
       st.sampled_from(["json", "table", "csv"]), st.sampled_from(["hardware", "model"]))
@collect
def test_show_command_lines(name, fmt, what):
    check_outcome(run_cli([what, "show", name, "--format", fmt]))


# --- flags that cannot apply ----------------------------------------------------------------------------------------

NOT_FOR_AN_OP = {
    "--batch": "2", "--tp": "2", "--pp": "2", "--devices": "2", "--micro-batches": "2", "--phase": "prefill",
    "--prompt-len": "4096", "--context": "4096", "--decode-tokens": "2", "--weight-dtype": "int4",
    "--activation-dtype": "fp32", "--kv-dtype": "int8", "--attention": "unfused", "--lut-gemm": None,
    "--moe-imbalance": "2", "--cores": "1",
}


@bounded(60)
@given(st.sampled_from(HARDWARE), st.sampled_from(sorted(NOT_FOR_AN_OP)))
@collect
def test_flags_given_with_an_op_apply_or_are_refused(hardware, flag):
    # A flag that cannot apply is an error; one that can, applies (issue 11, defects 13 and 19).
    chip = load_hardware(hardware)
    if flag == "--cores" and (getattr(chip, "cores", None) or 1) < 2:
        return  # one core of a one-core chip is the chip
    base = ["estimate", "--op", "gemm m=256 n=256 k=256", "--hardware", hardware, "--format", "json"]
    plain = run_cli(base)
    check_outcome(plain)
    value = NOT_FOR_AN_OP[flag]
    flagged = run_cli([*base, flag, *([value] if value else [])])
    check_outcome(flagged)
    assert flagged.code == 2 or flagged.out != plain.out, f"perfsim {flagged.argv}: {flag} silently ignored"

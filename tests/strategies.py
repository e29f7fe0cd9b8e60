"""Shared pieces of the property and fuzz suites: bounded settings, the in-process CLI runner with a
per-example timeout, and hypothesis strategies for shipped specs, scenarios and op strings.

Example counts are small by default so `make test` stays fast; PERFSIM_FUZZ_EXAMPLES=N runs every
property and fuzz test with N examples instead (a big exploratory run).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import resource
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption

from perfsim.cli import main
from perfsim.errors import PerfsimError
from perfsim.hardware import System, load_hardware, shipped_names
from perfsim.models import load_model, shipped_models
from perfsim.models.scenario import Scenario

TIMEOUT_S = float(os.environ.get("PERFSIM_FUZZ_TIMEOUT", "10"))
"""Seconds one example may take before it counts as a hang."""
MEMORY_HEADROOM = 3 * 2**30
"""Bytes one command may allocate beyond what the test process already holds."""


BIG_RUN = int(os.environ.get("PERFSIM_FUZZ_EXAMPLES") or 0)


def bounded(default: int) -> settings:
    """Hypothesis settings: `default` examples (or PERFSIM_FUZZ_EXAMPLES), reproducible, no per-example deadline
    (the SIGALRM timeout catches hangs instead). Only a big run shrinks a failure: shrinking a hang replays it
    for TIMEOUT_S each time, minutes in all."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if BIG_RUN else [])]
    return settings(max_examples=BIG_RUN or default, deadline=None, derandomize=True, database=None,
                    phases=phases, suppress_health_check=list(HealthCheck))


LOG = os.environ.get("PERFSIM_FUZZ_LOG")


def collect(test):
    """With PERFSIM_FUZZ_LOG=FILE (a big exploratory run), write each failing example to FILE as a JSON line and
    go on, so one run lists every distinct failure instead of stopping at the first. Without it: `test` itself."""
    if not LOG:
        return test

    @functools.wraps(test)
    def run(*args, **kwargs):
        try:
            test(*args, **kwargs)
        except UnsatisfiedAssumption:
            raise
        except Exception as err:
            with open(LOG, "a") as log:
                log.write(json.dumps({"test": test.__name__, "args": repr(_short(kwargs))[:3000],
                                      "error": f"{type(err).__name__}: {err}"[:4000]}) + "\n")

    return run


def _short(value: object) -> object:
    """`value` with file contents (bytes) replaced by their length, for the log."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    return type(value)(map(_short, value)) if isinstance(value, tuple | list) else value


class Hang(BaseException):  # not an Exception: no `except Exception` or `except OSError` in perfsim hides it
    """An example ran past TIMEOUT_S."""


@contextlib.contextmanager
def time_limit(what: object, seconds: float = TIMEOUT_S):
    """Raise Hang (naming `what`) if the body runs longer than `seconds`."""
    def expire(signum, frame):
        raise Hang(f"no result after {seconds:g} s: {what}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _virtual_size() -> int | None:
    """This process's virtual memory in bytes (Linux), or None where /proc is not there."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) * 1024 for line in text.splitlines() if line.startswith("VmSize:")), None)


@contextlib.contextmanager
def memory_limit(extra: int = MEMORY_HEADROOM):
    """Allocations past `extra` more bytes raise MemoryError instead of filling the machine (a file read without a
    limit, /dev/zero)."""
    size = _virtual_size()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if size is None:
        yield
        return
    limit = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@dataclass(frozen=True)
class CliResult:
    argv: list[str]
    code: int
    out: str
    err: str


def run_cli(argv: list[str], seconds: float = TIMEOUT_S) -> CliResult:
    """`perfsim ARGV` in process with stdout and stderr captured; fail the test (showing argv) on a hang
    or on any exception escaping `main`."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with time_limit(argv, seconds), memory_limit(), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code if isinstance(exit_.code, int) else 1
    except Hang as hang:
        raise AssertionError(f"hang: {hang}") from None
    except Exception as exc:
        raise AssertionError(f"exception escaped perfsim {argv}:\n{traceback.format_exc()}") from exc
    return CliResult(argv, code, out.getvalue(), err.getvalue())


def _no_constant(name: str):
    raise ValueError(f"invalid JSON constant {name}")


def numbers(data: object) -> list[float]:
    """Every number in a parsed JSON document."""
    if isinstance(data, dict):
        return [x for v in data.values() for x in numbers(v)]
    if isinstance(data, list):
        return [x for v in data for x in numbers(v)]
    return [data] if isinstance(data, int | float) and not isinstance(data, bool) else []


def parse_json(result: CliResult) -> object:
    """stdout as strict JSON (no NaN or Infinity); every number in it finite."""
    try:
        data = json.loads(result.out, parse_constant=_no_constant)
    except ValueError as err:
        raise AssertionError(f"perfsim {result.argv}: stdout is not valid JSON ({err}):\n{result.out[:2000]}") \
            from None
    bad = [x for x in numbers(data) if isinstance(x, float) and not math.isfinite(x)]
    assert not bad, f"perfsim {result.argv}: non-finite numbers {bad[:5]}"
    return data


def check_outcome(result: CliResult) -> None:
    """The contract for any input: it works (exit 0; JSON output, if asked for, strict and finite), or it is
    refused with exit 2 and one line `perfsim: error: ...` (or argparse's usage error), never anything else."""
    shown = f"perfsim {result.argv}\nexit {result.code}\nstderr: {result.err[-2000:]!r}"
    assert "Traceback" not in result.err, shown
    if result.code == 0:
        if "json" in result.argv and "--format" in result.argv:
            parse_json(result)
        return
    assert result.code == 2, shown
    lines = result.err.splitlines()
    if lines and lines[0].startswith("usage: "):  # argparse: usage, then "perfsim CMD: error: ..."
        assert lines[-1].startswith("perfsim") and ": error: " in lines[-1], shown
        return
    assert len(lines) == 1 and lines[0].startswith("perfsim: error: "), shown


# --- shipped specs -------------------------------------------------------------------------------------------

HARDWARE = shipped_names()
MODELS = shipped_models()
CHIPS = {name: load_hardware(name).chips for name in HARDWARE}
SYSTEMS = [name for name in HARDWARE if isinstance(load_hardware(name), System) and CHIPS[name] > 1]
"""Systems a collective can run on (a one-GPU host system, as for offloaded serving, has no peer)."""
CPU_LIKE = [name for name in HARDWARE if load_hardware(name).kind in ("cpu", "mcu")]
LAYERS = {name: load_model(name).layers for name in MODELS}

FLOAT_DTYPES = ("bf16", "fp16", "fp32", "fp8_e4m3")
OP_DTYPES = (*FLOAT_DTYPES, "int8")
WEIGHT_FORMATS = (None, "bf16", "fp16", "int8", "int4", "q4_0", "q8_0", "fp8_e4m3")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def lengths(low: int, high: int) -> st.SearchStrategy[int]:
    """Token counts spread over orders of magnitude (powers of two and their neighbours, plus any)."""
    powers = [p + d for p in (2**i for i in range(high.bit_length())) for d in (-1, 0, 1) if low <= p + d <= high]
    return st.one_of(st.sampled_from(powers), st.integers(low, high))


@st.composite
def scenarios(draw, phase: str | None = None, single_chip: bool = False) -> Scenario:
    """A scenario over shipped model × hardware with consistent degrees (tp · pp · dp = devices, pp | layers).

    Other constraints (heads divisible by tp, memory, max_context, dtype support) are left to perfsim: callers
    skip a scenario it refuses with a PerfsimError.
    """
    hardware = draw(st.sampled_from(HARDWARE))
    model = draw(st.sampled_from(MODELS))
    chips = CHIPS[hardware]
    if single_chip:
        devices = 1
    elif chips == 1:
        devices = draw(st.sampled_from([1, 1, 2, 4, 8]))
    else:
        devices = draw(st.sampled_from(_divisors(chips)))
    tp = draw(st.sampled_from(_divisors(devices)))
    pp = draw(st.sampled_from([p for p in _divisors(devices // tp) if LAYERS[model] % p == 0]))
    dp = devices // (tp * pp)
    micro_batches = draw(st.sampled_from([1, 2, 4])) if pp > 1 else 1
    batch = dp * micro_batches * draw(st.sampled_from([1, 1, 2, 3, 4, 8, 16]))
    weight = draw(st.sampled_from(WEIGHT_FORMATS))
    activation = draw(st.sampled_from(["bf16", "bf16", "fp16", "fp32", "int8"] if weight == "int8" else
                                      ["bf16", "bf16", "fp16", "fp32"]))
    fields = {
        "model": model, "hardware": hardware, "devices": devices if devices != chips else None,
        "tp": tp, "pp": pp, "micro_batches": micro_batches, "batch": batch,
        "phase": phase or draw(st.sampled_from(["prefill", "decode"])),
        "prompt_len": draw(lengths(1, 4096)), "context": draw(lengths(1, 16384)),
        "weight_dtype": weight, "activation_dtype": activation,
        "kv_dtype": draw(st.sampled_from([None, None, "fp8_e4m3", "int8"])),
        "attention": draw(st.sampled_from(["fused", "fused", "unfused"])),
    }
    return Scenario(**{k: v for k, v in fields.items() if v is not None})


# --- op strings ------------------------------------------------------------------------------------------------

def _sizes(high: int) -> st.SearchStrategy[int]:
    return lengths(1, high)


OP_KINDS = ("gemm", "attention", "softmax", "norm", "elementwise", "conv2d", "moe", "lut_gemm")


@st.composite
def op_strings(draw, kinds: tuple[str, ...] = OP_KINDS) -> str:
    """A valid `estimate --op` string of a non-collective op (ops perfsim may still refuse for a given chip)."""
    dtype = draw(st.sampled_from(OP_DTYPES))
    kind = draw(st.sampled_from(kinds))
    if kind == "gemm":
        fields = {"m": draw(_sizes(8192)), "n": draw(_sizes(8192)), "k": draw(_sizes(8192)),
                  "batch": draw(st.integers(1, 4)), "weight_shared": draw(st.sampled_from(["true", "false"]))}
    elif kind == "attention":
        kv_heads = draw(st.sampled_from([1, 2, 8]))
        kv_len = draw(_sizes(32768))
        fields = {"heads": kv_heads * draw(st.sampled_from([1, 4, 8])), "kv_heads": kv_heads,
                  "head_dim": draw(st.sampled_from([64, 128])), "kv_len": kv_len,
                  "q_len": draw(st.integers(1, kv_len)), "batch": draw(st.integers(1, 8)),
                  "fused": draw(st.sampled_from(["true", "false"]))}
        dtype = draw(st.sampled_from(FLOAT_DTYPES))
    elif kind == "softmax":
        fields = {"rows": draw(_sizes(65536)), "cols": draw(_sizes(65536)),
                  "variant": draw(st.sampled_from(["three_pass_recompute", "three_pass_reload", "two_pass",
                                                   "single_pass"]))}
        dtype = draw(st.sampled_from(FLOAT_DTYPES))
    elif kind == "norm":
        fields = {"rows": draw(_sizes(65536)), "cols": draw(_sizes(16384)),
                  "norm": draw(st.sampled_from(["rmsnorm", "layernorm"]))}
        dtype = draw(st.sampled_from(FLOAT_DTYPES))
    elif kind == "elementwise":
        fields = {"elements": draw(_sizes(2**26)), "inputs": draw(st.integers(1, 3)),
                  "flops_per_element": draw(st.sampled_from([0, 1, 2, 5, 200, 1000]))}
    elif kind == "conv2d":
        groups = draw(st.sampled_from([1, 1, 16]))
        fields = {"in_channels": 16 * draw(st.integers(1, 8)), "out_channels": 16 * draw(st.integers(1, 8)),
                  "height": draw(st.integers(3, 64)), "width": draw(st.integers(3, 64)),
                  "kernel": draw(st.sampled_from([1, 3])), "padding": draw(st.integers(0, 1)), "groups": groups}
    elif kind == "moe":
        experts = draw(st.sampled_from([8, 16, 64]))
        fields = {"tokens": draw(_sizes(4096)), "hidden": draw(st.sampled_from([512, 4096])),
                  "expert_ffn": draw(st.sampled_from([256, 1408, 14336])), "experts": experts,
                  "top_k": draw(st.sampled_from([1, 2, 8])), "shared_experts": draw(st.integers(0, 2))}
    else:
        fields = {"m": draw(_sizes(64)), "n": draw(_sizes(8192)), "k": 4 * draw(_sizes(2048)),
                  "weight_dtype": draw(st.sampled_from(["int4", "int2", "ternary"]))}
        dtype = draw(st.sampled_from(["fp16", "fp32"]))
    return " ".join([kind, *(f"{k}={v}" for k, v in fields.items()), f"dtype={dtype}"])


def refused(call):
    """call(), or None when perfsim refuses the input with a PerfsimError (a combination it does not support)."""
    try:
        return call()
    except PerfsimError:
        return None

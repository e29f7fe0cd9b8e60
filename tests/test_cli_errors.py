"""Bad input at the CLI: one line on stderr and exit 2, never a traceback, a hang or a silently wrong number."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import perfsim as ps
from perfsim.errors import PerfsimError
from perfsim.models import WORKLOAD_DIR
from perfsim.output import render

ROOT = Path(__file__).resolve().parents[1]
LLAMA = (WORKLOAD_DIR / "llama-2-7b.yaml").read_text()


def one_line_error(result, needle: str) -> None:
    assert result.code == 2, result.out
    assert needle in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"name: llama-2-7b\n\xff\xfe: 1\n", "not UTF-8 text (byte 17)"),
        (("a: " + "[" * 1000 + "]" * 1000 + "\n").encode(), "nested deeper than 32 levels"),
        (("a: " + "{b: " * 40 + "1" + "}" * 40 + "\n").encode(), "nested deeper than 32 levels"),
        (b"name: llama-2-7b\nhidden: 4096\nlayers: 32\nhidden: 8192\n", "line 4, column 1: duplicate key 'hidden'"),
        # "billion laughs": nine levels of aliases that would expand to 10^9 values
        (("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))).encode(),
         "holds more than 1,000,000 values"),
    ],
)
def test_unreadable_spec_files(cli, tmp_path, content, needle):
    path = tmp_path / "llama-2-7b.yaml"
    path.write_bytes(content)
    one_line_error(cli("model", "show", str(path)), needle)


def test_special_and_huge_files(cli, tmp_path):
    one_line_error(cli("hardware", "show", "/dev/zero"), "/dev/zero: not a regular file")
    one_line_error(cli("model", "show", str(tmp_path)), "not a regular file")
    big = tmp_path / "big.yaml"
    with big.open("wb") as file:
        file.truncate(17 * 2**20)  # sparse: 17 MiB of zero bytes without writing them
    one_line_error(cli("model", "show", str(big)), "larger than 16 MiB")
    one_line_error(cli("model", "show", "a" * 300 + ".yaml"), "File name too long")
    one_line_error(cli("estimate", "--scenario", "/dev/zero"), "/dev/zero: not a regular file")


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("heads: 32", "heads: 8192"), "head_dim: required, as hidden (4096) is not a multiple of heads (8192)"),
        (("layers: 32", "layers: 1000000000"), "layers: Input should be less than or equal to 10000"),
        (("layers: 32", "layers: true"), "layers: Input should be a valid integer"),
        (("layers: 32", "layers: 32.0"), "layers: Input should be a valid integer"),
        (("vocab: 32000", "vocab: 1" + "0" * 400), "vocab: Input should be less than or equal to 9007199254740992"),
        (("vocab: 32000", "vocab: .inf"), "vocab: Input should be a valid integer"),
        (("vocab: 32000", "vocab: 32000\ntied_embeddings: 1"), "tied_embeddings: Input should be a valid boolean"),
    ],
)
def test_model_values_that_would_break_the_arithmetic(cli, tmp_path, edit, needle):
    assert edit[0] in LLAMA
    path = tmp_path / "llama-2-7b.yaml"
    path.write_text(LLAMA.replace(*edit))
    one_line_error(cli("model", "show", str(path)), needle)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("fp32: 16,", "fp32: 1.0e-310,"), "per_cycle.fp32: Input should be greater than or equal to 0.000001"),
        (("fp32: 16,", "fp32: .inf,"), "per_cycle.fp32: Input should be a finite number"),
        (("bandwidth: 17.07 GB/s", "bandwidth: 1e-320 B/s"), "bandwidth must be positive and between 1e-18 and 1e+30"),
        (("bandwidth: 17.07 GB/s", "bandwidth: 1e400 B/s"), "bandwidth must be positive and between 1e-18 and 1e+30"),
        (("bandwidth: 17.07 GB/s", "bandwidth: 1" + "0" * 400), "got 'a number over 1e30'"),
        (("cores: 4\nsimd", "cores: true\nsimd"), "cores: Input should be a valid integer"),
    ],
)
def test_hardware_values_that_would_break_the_arithmetic(cli, tmp_path, edit, needle):
    text = (ROOT / "hardware_specs" / "raspberry-pi-5.yaml").read_text()
    assert edit[0] in text
    path = tmp_path / "raspberry-pi-5.yaml"
    path.write_text(text.replace(*edit, 1))
    one_line_error(cli("hardware", "show", str(path)), needle)


def test_non_finite_and_non_integer_scenario_values(cli, tmp_path):
    base = ["estimate", "--model", "llama-2-7b", "--hardware", "h100-sxm"]
    one_line_error(cli(*base, "--moe-imbalance", "inf"), "moe_imbalance: Input should be a finite number")
    scenario = tmp_path / "s.yaml"
    scenario.write_text("model: llama-2-7b\nhardware: h100-sxm\nbatch: true\n")
    one_line_error(cli("estimate", "--scenario", str(scenario)), "batch: Input should be a valid integer")
    scenario.write_text("model: llama-2-7b\nhardware: h100-sxm\nphase: decode\ncontext: true\n")  # was 1 token
    one_line_error(cli("estimate", "--scenario", str(scenario)), "context: Input should be a valid integer")


def test_json_is_strict_null_for_non_finite_numbers():
    text = render({"step_s": math.inf, "rows": [{"x": math.nan}, {"x": 1.5}], "n": 3}, "json")
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert data == {"step_s": None, "rows": [{"x": None}, {"x": 1.5}], "n": 3}


def test_a_closed_pipe_ends_quietly():
    # the reader closes its end before perfsim writes (as `| head` does once it has its lines)
    process = subprocess.Popen([sys.executable, "-m", "perfsim", "model", "list", "--format", "csv"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert err == b""
    assert process.returncode == 1


OP = ["estimate", "--hardware", "h100-sxm", "--op", "gemm m=64 n=64 k=64"]


@pytest.mark.parametrize(
    "flag",
    [["--weight-dtype", "int8"], ["--activation-dtype", "int8"], ["--batch", "4"], ["--devices", "2"], ["--tp", "2"],
     ["--engine", "des"], ["--lut-gemm"], ["--timeline", "out"], ["--context", "128"]],
)
def test_flags_an_op_cannot_use_are_errors(cli, flag):
    one_line_error(cli(*OP, *flag), f"{flag[0]} does not apply to --op")


def test_several_unusable_flags_are_named_together(cli):
    one_line_error(cli(*OP, "--batch", "4", "--tp", "2"), "--tp, --batch do not apply to --op")


def test_cores_applies_to_an_op(cli):
    # Pi 5 NEON: 16 fp32 FLOP/cycle/core at its sustained 2.398 GHz (CAL-FMA-PI5). 2·512³ = 268,435,456 FLOP on
    # 4 cores (153.5 GFLOP/s): 1.749 ms; on 1 core (38.37 GFLOP/s): 6.997 ms
    op = ["estimate", "--hardware", "raspberry-pi-5", "--op", "gemm m=512 n=512 k=512 dtype=fp32", "--format", "json"]
    all_cores = json.loads(cli(*op).out)
    one_core = json.loads(cli(*op, "--cores", "1").out)
    assert all_cores["compute_s"] == pytest.approx(2 * 512**3 / (16 * 4 * 2.398e9))
    assert one_core["compute_s"] == pytest.approx(2 * 512**3 / (16 * 1 * 2.398e9))
    one_line_error(cli(*op, "--cores", "5"), "raspberry-pi-5 has 4 cores; 5 requested")
    one_line_error(cli("estimate", "--hardware", "mi300x-node", "--op", "all_reduce bytes=1024", "--cores", "2"),
                   "--cores does not apply to a collective")


def test_roofline_op_flags_and_output_path(cli, tmp_path):
    roof = ["roofline", "--hardware", "h100-sxm", "--op", "gemm m=64 n=64 k=64"]
    one_line_error(cli(*roof, "--tp", "0", "-o", str(tmp_path / "r.png")), "--tp does not apply to --op")
    result = cli(*roof, "-o", str(tmp_path / "plot"))
    assert result.code == 0
    assert result.out.strip().endswith(f"wrote {tmp_path / 'plot.png'}")
    assert (tmp_path / "plot.png").is_file()
    one_line_error(cli(*roof, "-o", str(tmp_path)), "is a directory; give a file name")


TRAIN_7B = ["train", "--model", "llama-2-7b", "--hardware", "h100-sxm", "--devices", "8", "--zero", "3"]
PLAN = ["plan", "--model", "llama-2-7b", "--rate", "1", "--slo-ttft", "2s", "--slo-tpot", "50ms",
        "--candidates", "h100-sxm"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([*PLAN, "--seed", "-1"], "--seed must be 0 to 9,223,372,036,854,775,807, got -1"),
        (["train", "--model", "vit-mcuformer", "--hardware", "h100-sxm"], "no backward pass for norm layers"),
        ([*TRAIN_7B, "--virtual-stages", "4"], "--virtual-stages applies to --schedule interleaved only"),
        ([*TRAIN_7B, "--schedule", "interleaved"], "--schedule interleaved needs --pp above 1"),
        (["train", "--model", "resnet8", "--hardware", "h100-sxm", "--grad-reduce", "fp32"],
         "--grad-reduce does not apply to training resnet8"),
        # used to hang: 10^8 micro-batches through an 8-stage pipeline simulation
        ([*TRAIN_7B[:-2], "--pp", "8", "--global-batch", "100000000"], "more pipeline slots than the 100,000"),
    ],
)
def test_impossible_training_and_planning_flags(cli, argv, needle):
    one_line_error(cli(*argv), needle)


def test_train_plot_path(cli, tmp_path):
    one_line_error(cli(*TRAIN_7B, "--plot", str(tmp_path)), f"--plot {tmp_path}: is a directory; give a file name")
    one_line_error(cli(*TRAIN_7B, "--plot", str(tmp_path / "step.txt")), "Format 'txt' is not supported")


HF_LLAMA = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "intermediate_size": 11008, "vocab_size": 32000, "max_position_embeddings": 4096}
HF_DEEPSEEK = {**HF_LLAMA, "model_type": "deepseek", "num_hidden_layers": 4, "n_routed_experts": 64,
               "num_experts_per_tok": 6, "moe_intermediate_size": 1408}


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({**HF_DEEPSEEK, "moe_layer_freq": 0}, "moe_layer_freq: must be an integer from 1 to 10,000, got 0"),
        ({**HF_DEEPSEEK, "first_k_dense_replace": "one"}, "first_k_dense_replace: must be an integer from 0 to"),
        ({**HF_DEEPSEEK, "num_hidden_layers": "4"}, "num_hidden_layers: must be an integer from 1 to 10,000, got '4'"),
        ({**HF_DEEPSEEK, "num_hidden_layers": 10**9}, "num_hidden_layers: must be an integer from 1 to 10,000"),
        ({**HF_LLAMA, "torch_dtype": ["bfloat16"]}, "torch_dtype: '['bfloat16']' is not one of bfloat16"),
        ({**HF_LLAMA, "num_key_value_heads": 0}, "kv_heads"),  # not silently the 32 heads
        ({**HF_LLAMA, "tie_word_embeddings": "no"}, "tied_embeddings: Input should be a valid boolean"),  # not True
    ],
)
def test_broken_hugging_face_configs(cli, tmp_path, config, needle):
    path = tmp_path / "model" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(config))
    one_line_error(cli("model", "show", str(path)), needle)


SWEEP = {"axes": {"model": ["llama-2-7b"], "hardware": ["h100-sxm"]}}


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: ps.sweep([SWEEP]), "sweep: expected a sweep YAML path, a mapping of its fields or a SweepSpec"),
        (lambda: ps.plan("llama-2-7b", 1, "2s", "50ms", ["h100-sxm"], seed=-1), "--seed must be 0 to"),
        (lambda: ps.plan("llama-2-7b", 1, "2s", "50ms", ["h100-sxm"], prompt_len=1.5), "--prompt-len must be 1 to"),
        (lambda: ps.serve("llama-2-7b", "h100-sxm", requests=10, replicas=1.5), "--replicas must be 1 to"),
        (lambda: ps.max_rate("llama-2-7b", "h100-sxm", slo_ttft="2s", rate_range="5:1"),
         "--rate-range: '5:1' is not a pair LOW, HIGH of rates"),
        (lambda: ps.max_rate("llama-2-7b", "h100-sxm", slo_ttft="2s", rate_range=(1, 2, 3)),
         "--rate-range: (1, 2, 3) is not a pair"),
        (lambda: ps.offloaded("mixtral-8x7b", "host-8380x2-a40", cache="lukewarm"),
         "cache: 'lukewarm' is not one of cold, warm"),
        (lambda: ps.train("vit-mcuformer", "h100-sxm"), "no backward pass for norm layers"),
    ],
)
def test_python_api_raises_the_one_line_error(call, needle):
    with pytest.raises(PerfsimError) as caught:
        call()
    assert needle in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ("memory.hbm.bandwith: [1 TB/s]", "memory.hbm.bandwith: MemoryLevel has no field 'bandwith'"),
        ("memory..capacity: [80 GiB]", "memory..capacity: no item '' in the list"),
        ("memory.hbm.capacity: [-1, 80 GiB]", "memory.hbm.capacity: capacity: capacity must be positive"),
    ],
)
def test_a_sweep_override_no_hardware_takes_is_an_error(cli, tmp_path, overrides, needle):
    # a typo in an override path used to make every point invalid, with exit 0 (an unknown hardware stays a reason)
    path = tmp_path / "sweep.yaml"
    path.write_text("axes:\n  model: [llama-2-7b]\n  hardware: [h100-sxm, no-such-chip]\n"
                    f"hardware_overrides:\n  {overrides}\n")
    one_line_error(cli("sweep", str(path), "--workers", "1"), f"{path}: hardware_overrides.{needle}")


SERVE = ["serve", "--model", "llama-2-7b", "--hardware", "h100-sxm", "--requests", "20"]


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--arrivals", "gamma:1e300"], "gamma's CV must be positive, from 1e-06 to 1e+06, got 1e+300"),  # overflowed
        (["--arrivals", "gamma:1e-300"], "CV must be positive, from 1e-06 to 1e+06, got 1e-300"),  # divided by 0
        (["--replicas", "2147483647"], "--replicas must be 1 to 100,000, got 2147483647"),  # exhausted memory
        # used to say "the KV cache ... (-2147363441 tokens) leaves room for -2147363441 token(s)"
        (["--block-size", "2147483647"], "--block-size 2147483647: a block must be smaller than the KV cache"),
    ],
)
def test_serving_values_that_crashed_or_hung(cli, flags, needle):
    one_line_error(cli(*SERVE, *flags), needle)

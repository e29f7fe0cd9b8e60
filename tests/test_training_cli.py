"""`perfsim train` and ps.train: formats, the CNN path, plots, and one-line errors."""

import json

import pytest

import perfsim as ps
from perfsim.reference.registry import run_checks


def test_train_table_json_csv(cli):
    args = ["train", "--model", "llama-3-8b", "--hardware", "h100-cluster", "--devices", "8", "--global-batch", "16",
            "--seq-len", "1024", "--zero", "1"]
    table = cli(*args, "--wide")
    assert table.code == 0 and "mfu" in table.out and "qkv.wgrad" in table.out
    data = json.loads(cli(*args, "--format", "json").out)
    assert {"step_s", "tokens_per_s", "mfu", "hfu", "memory", "time_s", "bound"} <= set(data)
    assert data["tokens_per_s"] == pytest.approx(16 * 1024 / data["step_s"])
    csv = cli(*args, "--format", "csv").out.splitlines()
    assert csv[0].startswith("model,hardware,devices") and "step_bound" in csv[0] and len(csv) > 10


def test_train_cnn_on_an_mcu(cli):
    result = cli("train", "--model", "resnet8", "--hardware", "pulp-open", "--global-batch", "8", "--format", "json")
    data = json.loads(result.out)
    assert result.code == 0 and data["global_batch"] == 8 and data["mac_per_cycle"] > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "llama-3-70b", "--hardware", "h100-sxm"], "does not fit"),
    (["--model", "llama-3-8b", "--hardware", "h100-cluster", "--devices", "8", "--global-batch", "12"],
     "global batch"),
    (["--model", "llama-3-8b", "--hardware", "a100-sxm-80gb", "--precision", "fp8"], "fp8"),
    (["--model", "llama-3-8b", "--hardware", "h100-cluster", "--devices", "8", "--ep", "2"], "dense"),
    (["--model", "llama-3-8b"], "hardware"),
])
def test_train_bad_input_is_one_line(cli, args, message):
    result = cli("train", *args)
    assert result.code == 2 and message in result.err and len(result.err.strip().splitlines()) == 1


def test_api_train_result(tmp_path):
    result = ps.train("llama-3-8b", "h100-cluster", devices=16, pp=2, micro_batch=1, global_batch=32, seq_len=1024,
                      zero=1)
    frame = result.to_frame()
    assert {"pass", "op", "time_s", "flops", "bound"} <= set(frame.columns)
    assert result.time_to_train_s(1e9) == pytest.approx(1e9 / (32 * 1024) * result.step_s)
    assert result.plot().axes and result.gantt("pipeline").axes and result.gantt("dp").axes
    assert set(result.timeline("pipeline").stream) == {"compute", "p2p"}
    with pytest.raises(ps.PerfsimError, match="no dp schedule"):
        ps.train("llama-3-8b", "h100-sxm", seq_len=512, check_memory=False).timeline("dp")


def test_reference_backward_checks_pass():
    ops = ("gemm_grad", "attention_grad", "norm_grad", "softmax_grad", "conv2d_grad")
    rows = [r for r in run_checks() if r["op"] in ops]
    assert len(rows) == 5 and all(r["passed"] and r["counts_match"] for r in rows)


def test_cnn_refuses_cluster_settings(cli):
    result = cli("train", "--model", "resnet8", "--hardware", "pulp-open", "--tp", "2")
    assert result.code == 2 and "--tp does not apply" in result.err
    data = json.loads(cli("train", "--model", "resnet8", "--hardware", "pulp-open", "--global-batch", "10",
                          "--tokens", "50000", "--format", "json").out)
    assert data["time_to_train_s"] == pytest.approx(5000 * data["step_s"])  # 50,000 samples, 10 per step

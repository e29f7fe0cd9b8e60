"""StepResult and TrainResult read their shared attributes off their estimate through one StepView."""

from types import SimpleNamespace

import pytest

import perfsim as ps
from perfsim.api import StepResult, StepView
from perfsim.training.result import TrainResult

H100 = ps.hardware("h100-sxm")
ROW = {"op": "gemm", "time_s": 2.0, "flops": 8.0, "bytes": 4.0, "count": 1, "bound": "compute:bf16"}


def _summary() -> dict:
    return {"model": "m", "step_s": 3.0, "bound": "memory:hbm", "memory": {"kv_bytes": 5}, "breakdown": [ROW]}


def _step() -> StepResult:
    return StepResult(SimpleNamespace(  # type: ignore[arg-type]
        summary=_summary, step_s=3.0, bound="memory:hbm", breakdown=lambda: [ROW],
        resolved=SimpleNamespace(system=None, chip=H100), trace=SimpleNamespace(ops=[])))


def _train() -> TrainResult:
    return TrainResult(SimpleNamespace(summary=_summary, step_s=3.0, chip=H100))  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [_step, _train], ids=["step", "train"])
def test_the_shared_attributes_delegate_to_the_estimate(make):
    result = make()
    assert isinstance(result, StepView)
    assert result.summary == _summary() and result.step_s == 3.0 and result.bound == "memory:hbm"
    assert result.notes == ps.notes(H100)
    assert result.records() == [ROW]
    # the step's fields lead each row, its bound renamed step_bound, nested memory flattened, breakdown dropped
    assert result.records(step_columns=True) == [{"model": "m", "step_s": 3.0, "step_bound": "memory:hbm",
                                                  "memory_kv_bytes": 5, **ROW}]
    assert list(result.to_frame()["time_s"]) == [2.0]


def test_real_results_agree_with_their_summaries():
    step = ps.step("llama-2-7b", "a100-sxm-80gb", phase="decode", batch=4, context=1024)
    trained = ps.train("llama-3-8b", "h100-sxm", seq_len=512, check_memory=False)
    for result in (step, trained):
        summary = result.summary
        assert result.step_s == summary["step_s"] and result.bound == summary["bound"]
        assert {row["step_bound"] for row in result.records(step_columns=True)} == {summary["bound"]}

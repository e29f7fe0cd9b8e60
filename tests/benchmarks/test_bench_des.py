"""Budget: a DES decode step of Llama-3-70B on 8 H100s (tp 8) under 100 ms."""

from perfsim.models.scenario import Scenario, resolve
from perfsim.models.step import estimate_step


def test_des_step_8_chips(benchmark):
    resolved = resolve(Scenario(model="llama-3-70b", hardware="dgx-h100", tp=8, batch=64, context=2048))
    step = benchmark(estimate_step, resolved, engine="des")
    assert step.schedule is not None

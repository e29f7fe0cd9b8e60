"""The explorer without a browser: the page's inputs → one API call per device → the payload; the app's answers and
the `perfsim ui` command's refusals. The browser drives the page in test_ui_browser.py."""

from __future__ import annotations

import json
import socket
import sys

import pytest

import perfsim as ps
from perfsim import api
from perfsim.cli import main
from perfsim.errors import PerfsimError
from perfsim.ui import view
from perfsim.ui.view import HEAD_FIELDS, Inputs, explore, inputs_from_query

GEMM = "gemm m=4096 n=4096 k=4096 dtype=bf16"


def test_blank_inputs_take_the_defaults_and_numbers_are_parsed():
    inputs = inputs_from_query({"hardware": "mi300x", "compare": "", "batch": "16", "context": " ", "tp": "1"})
    assert inputs == Inputs(hardware="mi300x", batch=16)
    assert inputs.compare is None and inputs.context is None and inputs.model == "llama-3-8b"


def test_an_op_makes_the_model_irrelevant():
    inputs = inputs_from_query({"op": GEMM, "model": "llama-3-8b"})
    assert inputs.op == GEMM and inputs.model is None


@pytest.mark.parametrize(("query", "message"), [
    ({"batch": "two"}, "batch: 'two' is not a whole number"),
    ({"batch": "-1"}, "batch: '-1' is not a whole number"),
    ({"colour": "red"}, "unknown input 'colour'"),
    ({"phase": "train"}, "phase: 'train' is not one of prefill, decode"),
    ({"op": " "}, "op: empty"),
    ({"model": ""}, "model: empty"),
    ({"tp": "99999999999"}, "--tp must be 0 to 2,147,483,647"),
])
def test_a_bad_input_is_refused_naming_it(query, message):
    with pytest.raises(PerfsimError, match=f"^{message}".replace("(", r"\(")):
        inputs_from_query(query)


def test_a_step_payload_is_the_apis_result_for_each_device():
    inputs = Inputs(hardware="h100-sxm", compare="mi300x", batch=8, engine="analytic")
    payload = explore(inputs)
    steps = [ps.step("llama-3-8b", ref, batch=8, engine="analytic") for ref in ("h100-sxm", "mi300x")]
    assert payload["mode"] == "step"
    for shown, step in zip(payload["devices"], steps, strict=True):
        assert shown["head"] == {name: step.summary[name] for name in HEAD_FIELDS}
        assert [{k: v for k, v in row.items() if k != "energy_j"} for row in shown["ops"]] == step.records()
        assert shown["by_resource_s"] == step.estimate.by_resource()
        # every op's joules and the waiting chips' add up to the step's energy
        busy = sum(row["energy_j"] for row in shown["ops"])
        assert busy + shown["idle_energy_j"] == pytest.approx(step.summary["energy_j"], rel=1e-12)
        assert shown["timeline_svg"] is None  # analytic: no schedule
        memory = shown["memory"]
        assert memory["fraction"] == memory["total_bytes"] / memory["capacity_bytes"]
        # by hand, Llama-3-8B: 32 layers × (2·4096² + 2·4096·1024 attention + 3·4096·14336 FFN + 2·4096 norms)
        # = 6,979,584,000, plus 2 × 128256·4096 embedding and head + 4096 final norm = 8,030,261,248 bf16 weights
        assert memory["weights_bytes"] == 8_030_261_248 * 2
        # KV: 8 sequences × (2048 cached + 1 new) tokens × 32 layers × 2 (K, V) × 8 kv heads × 128 × 2 bytes
        assert memory["kv_bytes"] == 8 * 2049 * 32 * 2 * 8 * 128 * 2
    points = api.roofline("h100-sxm", compare=["mi300x"], step=steps).points
    assert payload["roofline"]["points"] == points
    assert {p["device"] for p in points} == {"h100-sxm", "mi300x"}
    assert payload["roofline"]["svg"].lstrip().startswith("<?xml")


def test_an_op_payload_is_the_apis_estimate():
    payload = explore(inputs_from_query({"hardware": "h100-sxm", "op": GEMM}))
    result = ps.estimate(GEMM, "h100-sxm")
    (shown,) = payload["devices"]
    assert payload["mode"] == "op"
    assert shown["head"]["step_s"] == result.time_s and shown["head"]["energy_j"] == result.summary["energy_j"]
    assert shown["head"]["flops"] == 2 * 4096**3  # by hand: 2 FLOPs per multiply-add of m·n·k
    assert shown["by_resource_s"] == result.summary["resource_s"]
    assert shown["memory"] is None and shown["timeline_svg"] is None
    (point,) = payload["roofline"]["points"]
    assert point["device"] == "h100-sxm" and point["time_s"] == result.time_s


def test_the_des_engine_gives_the_timeline_of_the_same_step():
    payload = explore(Inputs(hardware="h100-sxm", phase="prefill", prompt_len=128))
    step = ps.step("llama-3-8b", "h100-sxm", phase="prefill", prompt_len=128, engine="des")
    (shown,) = payload["devices"]
    assert shown["head"]["step_s"] == step.step_s and shown["head"]["engine"] == "des"
    assert "<svg" in shown["timeline_svg"]


def test_each_input_set_is_computed_once(monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return estimate(*args, **kwargs)

    estimate = api.estimate
    monkeypatch.setattr(view.api, "estimate", counted)
    view._explore.cache_clear()
    first = explore(Inputs(hardware="h100-sxm", compare="mi300x", model=None, op="gemm m=8 n=8 k=8"))
    assert explore(Inputs(hardware="h100-sxm", compare="mi300x", model=None, op="gemm m=8 n=8 k=8")) is first
    assert len(calls) == 2  # one estimate per device, none for the repeat
    explore(Inputs(hardware="h100-sxm", compare="mi300x", model=None, op="gemm m=8 n=8 k=16"))
    assert len(calls) == 4


def test_the_roofline_of_given_results_costs_nothing_again(monkeypatch):
    import perfsim.cost

    results = [ps.step("llama-3-8b", "h100-sxm", engine="analytic"), ps.estimate(GEMM, "mi300x")]

    def refuse(*args, **kwargs):
        raise AssertionError("costed again")

    monkeypatch.setattr(perfsim.cost, "cost", refuse)
    points = api.roofline("h100-sxm", compare=["mi300x"], step=results).points
    labels = {c.op for c in results[0].estimate.costs}  # llama's trace has no collective on one chip
    assert len(points) == len(labels) + 1 and points[-1]["device"] == "mi300x"


@pytest.mark.parametrize(("inputs", "message"), [
    (Inputs(hardware="no-such-chip"), "unknown hardware 'no-such-chip'"),
    (Inputs(hardware="h100-sxm", model=None, op="gemm m=x"), "op 'gemm m=x': m: "),
    (Inputs(hardware="h100-sxm", model="llama-3-70b"), "llama-3-70b does not fit on h100-sxm with 1 device"),
])
def test_a_bad_step_raises_its_one_line(inputs, message):
    with pytest.raises(PerfsimError, match=f"^{message}") as err:
        explore(inputs)
    assert "\n" not in str(err.value)


def _get(endpoint, query: str) -> tuple[int, dict]:
    from starlette.requests import Request

    response = endpoint(Request({"type": "http", "method": "GET", "query_string": query.encode(), "headers": []}))
    return response.status_code, json.loads(response.body)


def test_the_app_answers_json_and_a_bad_input_with_its_one_line():
    pytest.importorskip("starlette")
    from perfsim.ui import app

    status, body = _get(app.explore_endpoint, "hardware=no-such-chip")
    assert status == 400 and body["error"].startswith("unknown hardware 'no-such-chip'")
    status, body = _get(app.explore_endpoint, "hardware=h100-sxm&op=gemm+m%3D64+n%3D64+k%3D64")
    assert status == 200 and body["devices"][0]["head"]["step_s"] == ps.estimate("gemm m=64 n=64 k=64",
                                                                                  "h100-sxm").time_s
    status, body = _get(app.choices, "")
    assert status == 200 and "h100-sxm" in body["hardware"] and "llama-3-8b" in body["model"]
    assert body["defaults"]["hardware"] == Inputs().hardware


def test_ui_refuses_a_port_in_use_or_out_of_range(capsys):
    pytest.importorskip("starlette")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"perfsim: error: cannot listen on 127.0.0.1:{port}: ") and err.count("\n") == 1
    assert main(["ui", "--port", "70000", "--no-browser"]) == 2
    assert capsys.readouterr().err == "perfsim: error: --port must be 0 to 65,535, got 70000\n"


def test_ui_without_its_extra_says_how_to_install_it(monkeypatch, capsys):
    import perfsim.ui

    monkeypatch.delitem(sys.modules, "perfsim.ui.app", raising=False)
    monkeypatch.delattr(perfsim.ui, "app", raising=False)
    monkeypatch.setitem(sys.modules, "starlette", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "starlette.applications", None)
    with socket.socket() as taken:  # were the app imported after all, it would fail on this port, not serve
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["ui", "--no-browser", "--port", str(taken.getsockname()[1])]) == 2
    assert capsys.readouterr().err == "perfsim: error: perfsim ui needs the `ui` extra: pip install 'perfsim[ui]' " \
                                      "(Starlette and uvicorn)\n"

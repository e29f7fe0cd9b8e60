"""The per-object memo behind cost() and rates(): one entry per live spec object, freed with it."""

import gc

import pytest

from perfsim.cost import _memos, cost
from perfsim.cost.derating import _RATES, rates
from perfsim.cost.memo import PerObject
from perfsim.hardware import load_hardware
from perfsim.ops import parse_op

GEMM = parse_op("gemm m=4096 n=4096 k=4096 dtype=bf16")


class Spec:
    """A stand-in object (weak-referenceable, hashed by identity)."""


def test_per_object_makes_once_per_object_and_frees_the_entry_with_it():
    made = []
    memo: PerObject[Spec, list[int]] = PerObject(lambda obj: made.append(obj) or [])
    a, b = Spec(), Spec()
    assert memo(a) is memo(a) and memo(b) is not memo(a)
    assert len(made) == 2 and len(memo) == 2
    del a, made[:]
    gc.collect()
    assert len(memo) == 1  # a's entry went with a; b's stays


@pytest.mark.parametrize(("memo", "use"), [(_memos, lambda chip: cost(GEMM, chip)), (_RATES, rates)],
                         ids=["cost", "rates"])
def test_a_memo_entry_is_freed_when_its_hardware_is_collected(memo, use):
    chip = load_hardware("h100-sxm").model_copy()  # an object of this test's own, which nothing else holds
    before = len(memo)
    use(chip)
    assert len(memo) == before + 1
    del chip
    gc.collect()
    assert len(memo) == before


def test_a_modified_copy_is_priced_afresh_and_an_equal_copy_apart():
    h100 = load_hardware("h100-sxm")
    eff = h100.calibration.compute_efficiency
    half = h100.model_copy(update={"calibration": h100.calibration.model_copy(
        update={"compute_efficiency": eff.model_copy(update={"value": eff.value / 2})})})
    first = cost(GEMM, h100)
    assert first.bound == "compute:bf16"
    # compute seconds = FLOPs / (peak × compute_efficiency): half the efficiency, twice the seconds; a memo
    # keyed by identity must not hand back h100's cost (or its ChipRates) for the copy
    assert cost(GEMM, half).compute_s == pytest.approx(2 * first.compute_s)
    assert rates(half).compute("matrix", "bf16")[1] == pytest.approx(rates(h100).compute("matrix", "bf16")[1] / 2)
    same = h100.model_copy()  # equal, but another object: its own entry, the same numbers
    assert cost(GEMM, same) is not first and cost(GEMM, same) == first

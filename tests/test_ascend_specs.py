"""The Atlas 800I A2's NPU: the 910B4-1 spec's peaks follow from its CANN platform config by hand."""

from perfsim.hardware import System, load_hardware
from perfsim.units import Span


def test_the_800i_a2_is_eight_910b4_1_npus():
    server = load_hardware("atlas-800i-a2")
    assert isinstance(server, System) and server.chips == 8
    assert server.device.name == "ascend-910b4-1"
    assert load_hardware("atlas-800i-a2-x4").device.name == "ascend-910b4-1"


def test_910b4_1_peaks_follow_from_its_platform_config():
    chip = load_hardware("ascend-910b4-1")
    # Ascend910B4-1.ini: 20 cube cores, cube_freq 1500 MHz, 16x16x16 fp16 MACs and 16x32x16 int8 MACs a cycle:
    # fp16 20 * 4096 * 2 * 1.5e9 = 245.76e12 FLOP/s, int8 20 * 8192 * 2 * 1.5e9 = 491.52e12 OP/s
    assert chip.cores == 20
    assert chip.peak_flops("fp16") == 245.76e12 and chip.peak_flops("bf16") == 245.76e12
    assert chip.peak_flops("int8") == 491.52e12
    # one SKU, not the 910B range: no field is a Span, so validation needs no band for the 800I A2
    hbm = next(m for m in chip.memory if m.name == "hbm")
    assert hbm.capacity == 64 * 2**30 and not isinstance(hbm.bandwidth, Span)
    # l2_size = 176160768 B = 168 MiB; L2 rate 110 B/cycle/core * 20 cores * 1.5 GHz = 3.3 TB/s
    l2 = next(m for m in chip.memory if m.name == "l2")
    assert (l2.capacity, l2.bandwidth) == (176160768, 3.3e12)

"""MeshGEMM / MeshGEMV: the numpy grid simulation against np.matmul and against perfsim.cost.mesh's counts."""

import numpy as np
import pytest

from perfsim.cost.mesh import (
    MeshCounts,
    interleave,
    ktree_rounds,
    meshgemm_counts,
    meshgemv_counts,
    plain_ring_gemm_counts,
    ring_allreduce_counts,
    ring_gaps,
    summa_counts,
)
from perfsim.reference.mesh import check_mesh_gemm, check_mesh_gemv, mesh_gemm, mesh_gemv


@pytest.mark.parametrize("run", [check_mesh_gemm, check_mesh_gemv])
def test_checks_pass(run):
    outcome = run()
    assert outcome.passed, outcome.detail
    assert outcome.counts_match


@pytest.mark.parametrize("p", range(2, 17))
def test_interleave_is_a_permutation_with_ring_neighbours_at_most_two_hops_apart(p):
    order = interleave(p)
    assert sorted(order) == list(range(p))
    assert max(ring_gaps(order)) == min(2, p - 1)
    assert sum(ring_gaps(order)) == 2 * p - 2


def test_interleave_order():
    assert interleave(6) == [0, 2, 4, 5, 3, 1]
    assert interleave(5) == [0, 2, 4, 3, 1]


def test_plain_ring_wraps_over_p_minus_one_hops():
    # without the interleave, the shift from the last ring position back to the first crosses the whole row
    p = 5
    assert ring_gaps(list(range(p))) == [1, 1, 1, 1, p - 1]
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((p, p)), rng.standard_normal((p, p))
    c, grid = mesh_gemm(a, b, p, order=list(range(p)))
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)  # still right, but slow on a mesh:
    assert grid.counts().max_hops_per_message == p - 1
    assert grid.counts() != meshgemm_counts(p, p, p, p, bytes_per_element=8)


@pytest.mark.parametrize("p", [2, 3, 4, 5])
def test_plain_ring_counts_match_the_simulation(p):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2 * p, 3 * p)), rng.standard_normal((3 * p, p))
    _, grid = mesh_gemm(a, b, p, order=list(range(p)))
    assert grid.counts() == plain_ring_gemm_counts(p, 2 * p, p, 3 * p, bytes_per_element=8)


def test_ring_allreduce_counts_by_hand_p3():
    # P = 3, n = 9: 4 rounds (2 reduce-scatter, 2 all-gather); per column and round 3 messages over 1 + 1 + 2 hops;
    # 3 columns: 36 messages, 48 hops; every round waits for the 2-hop wrap: 8 critical hops; chunks of
    # ⌈⌈9/3⌉/3⌉ = 1 element of 2 bytes.
    want = MeshCounts(rounds=4, messages=36, max_hops_per_message=2, hops=48, critical_path_hops=8,
                      message_bytes=72, hop_bytes=96)
    assert ring_allreduce_counts(3, 9) == want


def test_summa_hops_grow_with_p_while_meshgemm_stays_within_two():
    summa = [summa_counts(p, 64, 64, 64).max_hops_per_message for p in range(2, 17)]
    assert summa == list(range(1, 16))
    assert all(meshgemm_counts(p, 64, 64, 64).max_hops_per_message <= 2 for p in range(2, 17))
    assert summa_counts(16, 64, 64, 64).critical_path_hops > 5 * meshgemm_counts(16, 64, 64, 64).critical_path_hops


@pytest.mark.parametrize("p", [1, 2, 3, 6, 7])
def test_summa_closed_forms_match_enumeration(p):
    counts = summa_counts(p, p, p, p, bytes_per_element=1)  # 1-byte 1×1 tiles: bytes count messages
    line = sum(abs(t - c) for t in range(p) for c in range(p))
    assert counts.hops == 2 * p * line
    assert counts.critical_path_hops == sum(max(t, p - 1 - t) for t in range(p))
    assert counts.hop_bytes == counts.hops and counts.message_bytes == counts.messages


def test_meshgemm_counts_by_hand_p3():
    # P = 3: interleave [0, 2, 1]; ring gaps 0→2: 2, 2→1: 1, 1→0: 1, so one ring spans 4 hops.
    # 2 shift rounds; each sends 9 A tiles and 9 B tiles (18 messages) over 3 rows × 4 + 3 columns × 4 = 24 hops.
    # m = n = k = 3 with 8-byte elements: 1×1 tiles of 8 bytes.
    want = MeshCounts(rounds=2, messages=36, max_hops_per_message=2, hops=48, critical_path_hops=4,
                      message_bytes=36 * 8, hop_bytes=48 * 8)
    assert meshgemm_counts(3, 3, 3, 3, bytes_per_element=8) == want
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    assert mesh_gemm(a, b, 3)[1].counts() == want


def test_meshgemv_counts_by_hand_p4():
    # P = 4, K = 2: groups of g = 2. Reduce along a column: round 0: 1→0, 3→2 (1 hop each); round 1: 2→0 (2 hops).
    # Per column 3 messages, 4 hops, farthest per round 1 + 2 = 3; the broadcast mirrors it; 4 columns.
    # n = 8 with 8-byte elements: each message carries 2 partial sums, 16 bytes.
    assert ktree_rounds(4, 2) == [[(1, 0), (3, 2)], [(2, 0)]]
    want = MeshCounts(rounds=4, messages=24, max_hops_per_message=2, hops=32, critical_path_hops=6,
                      message_bytes=24 * 16, hop_bytes=32 * 16)
    assert meshgemv_counts(4, 8, bytes_per_element=8) == want
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal(8), rng.standard_normal((8, 8))
    y, grid = mesh_gemv(x, w, 4)
    np.testing.assert_allclose(y, np.tile(x @ w, (4, 1)), rtol=1e-12)  # every core holds the sum
    assert grid.counts() == want


def test_ktree_p9_by_hand():
    # groups {0,1,2} {3,4,5} {6,7,8} reduce to their middles 1, 4, 7; then 1 and 7 send 3 hops each to 4
    assert ktree_rounds(9, 2) == [[(0, 1), (2, 1), (3, 4), (5, 4), (6, 7), (8, 7)], [(1, 4), (7, 4)]]


@pytest.mark.parametrize(("g", "k_tree"), [(2, 2), (3, 2), (4, 2), (2, 3), (3, 3)])
def test_meshgemv_closed_forms_for_perfect_powers(g, k_tree):
    p = g**k_tree
    counts = meshgemv_counts(p, p, bytes_per_element=1, k_tree=k_tree)
    assert counts.hops == 2 * p * k_tree * (g - 1) * g ** (k_tree - 1)
    assert counts.rounds == 2 * k_tree * (g // 2)
    assert counts.critical_path_hops == 2 * (g // 2) * (g**k_tree - 1) // (g - 1)
    assert counts.max_hops_per_message == g ** (k_tree - 1)


def test_ktree_needs_fewer_rounds_than_a_single_chain():
    assert meshgemv_counts(64, 64, k_tree=2).rounds == 2 * 2 * 4
    assert meshgemv_counts(64, 64, k_tree=1).rounds == 2 * 32
    assert meshgemv_counts(64, 64, k_tree=1).max_hops_per_message == 1


def test_bad_grid_is_rejected():
    with pytest.raises(ValueError, match="p must be at least 1"):
        meshgemm_counts(0, 8, 8, 8)
    with pytest.raises(ValueError, match="must divide"):
        mesh_gemm(np.ones((3, 3)), np.ones((3, 3)), 2)

"""What mesh GEMM and GEMV send on a P×P core grid (WaferLLM, arXiv 2502.04563): counts the cost model prices.

A message from core (r0, c0) to (r1, c1) crosses |r0 − r1| + |c0 − c1| hops (Manhattan distance); with a
constant per-hop latency α and a per-message cost β, a schedule of synchronous rounds costs about
α·critical_path_hops + β·rounds + bytes / link bandwidth. These functions only count. Tiles that do not
divide evenly are padded: a tile is ⌈m/P⌉ × ⌈k/P⌉ elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class MeshCounts:
    """The messages of one kernel on a P×P grid, sent in synchronous rounds.

    rounds: sequential message rounds; messages: point-to-point messages in all; max_hops_per_message:
    the farthest one message travels; hops: Σ hops over all messages; critical_path_hops: Σ over rounds
    of that round's farthest message (what the per-hop latency multiplies); message_bytes: Σ payload
    bytes; hop_bytes: Σ payload bytes × hops (bytes carried across links).
    """

    rounds: int
    messages: int
    max_hops_per_message: int
    hops: int
    critical_path_hops: int
    message_bytes: float
    hop_bytes: float


def _require(value: int, name: str) -> None:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def interleave(p: int) -> list[int]:
    """Physical index of each ring position: evens ascending, then odds descending (P = 6: 0, 2, 4, 5, 3, 1).

    Ring neighbours r and r + 1 (mod P) sit at most 2 apart; a plain ring 0 … P−1 wraps over P − 1 hops.
    """
    _require(p, "p")
    return list(range(0, p, 2)) + list(range(1, p, 2))[::-1]


def ring_gaps(order: list[int]) -> list[int]:
    """Hops from each ring position to the next one (wrapping) when position r sits at index order[r]."""
    return [abs(order[(r + 1) % len(order)] - order[r]) for r in range(len(order))]


def meshgemm_counts(p: int, m: int, n: int, k: int, bytes_per_element: float = 2.0) -> MeshCounts:
    """MeshGEMM: Cannon on the interleaved layout, the skew applied as tiles are loaded (no messages).

    P multiply steps with P − 1 shift rounds between them; each round every core sends its A tile
    (a = ⌈m/P⌉⌈k/P⌉·e bytes) to its row-ring neighbour and its B tile (b = ⌈k/P⌉⌈n/P⌉·e) to its
    column-ring neighbour. One interleaved ring spans 2P − 2 hops (two 1-hop gaps, the rest 2 hops):
      rounds = P − 1,  messages = 2P²(P − 1),  max hops = min(2, P − 1),  hops = 4P(P − 1)²,
      critical path hops = (P − 1)·min(2, P − 1),  bytes = P²(P − 1)(a + b),  hop bytes = 2P(P − 1)²(a + b).
    """
    _require(p, "p")
    a = _ceil_div(m, p) * _ceil_div(k, p) * bytes_per_element
    b = _ceil_div(k, p) * _ceil_div(n, p) * bytes_per_element
    farthest = min(2, p - 1)
    return MeshCounts(rounds=p - 1, messages=2 * p * p * (p - 1), max_hops_per_message=farthest,
                      hops=4 * p * (p - 1) ** 2, critical_path_hops=(p - 1) * farthest,
                      message_bytes=p * p * (p - 1) * (a + b), hop_bytes=2 * p * (p - 1) ** 2 * (a + b))


def plain_ring_gemm_counts(p: int, m: int, n: int, k: int, bytes_per_element: float = 2.0) -> MeshCounts:
    """Cannon without the interleave, the baseline MeshGEMM improves on: ring position r sits at index r.

    Each ring's wrap-around shift crosses the whole row or column (P − 1 hops), so every round waits for it;
    one ring still spans 2(P − 1) hops (P − 1 one-hop gaps and the wrap). With a, b as in meshgemm_counts:
      rounds = P − 1,  messages = 2P²(P − 1),  max hops = P − 1,  hops = 4P(P − 1)²,
      critical path hops = (P − 1)²,  bytes = P²(P − 1)(a + b),  hop bytes = 2P(P − 1)²(a + b).
    """
    mesh = meshgemm_counts(p, m, n, k, bytes_per_element)
    return MeshCounts(rounds=mesh.rounds, messages=mesh.messages, max_hops_per_message=p - 1, hops=mesh.hops,
                      critical_path_hops=(p - 1) ** 2, message_bytes=mesh.message_bytes, hop_bytes=mesh.hop_bytes)


def summa_counts(p: int, m: int, n: int, k: int, bytes_per_element: float = 2.0) -> MeshCounts:
    """SUMMA for contrast: in step t, column t's A tiles go to every core of their row, row t's B tiles down columns.

    Each broadcast is P − 1 messages from the owner, the farthest |t − c| ≤ P − 1 hops, so hops grow with P.
    Σ_t Σ_c |t − c| = (P³ − P)/3 per row; with a, b as in meshgemm_counts:
      rounds = P,  messages = 2P²(P − 1),  max hops = P − 1,  hops = 2P²(P² − 1)/3,
      critical path hops = Σ_t max(t, P − 1 − t) = ⌊(3P² − 2P)/4⌋,  bytes = P²(P − 1)(a + b),
      hop bytes = P²(P² − 1)(a + b)/3.
    """
    _require(p, "p")
    a = _ceil_div(m, p) * _ceil_div(k, p) * bytes_per_element
    b = _ceil_div(k, p) * _ceil_div(n, p) * bytes_per_element
    line = (p**3 - p) // 3  # Σ_t Σ_c |t − c| along one row or column
    return MeshCounts(rounds=p, messages=2 * p * p * (p - 1), max_hops_per_message=p - 1, hops=2 * p * line,
                      critical_path_hops=(3 * p * p - 2 * p) // 4, message_bytes=p * p * (p - 1) * (a + b),
                      hop_bytes=p * line * (a + b))


def ktree_group_size(p: int, k_tree: int) -> int:
    """g = ⌈P^(1/K)⌉, the smallest g with g^K ≥ P: K levels of groups of g cores reduce P to one."""
    _require(p, "p")
    _require(k_tree, "k_tree")
    g = 1
    while g**k_tree < p:
        g += 1
    return g


def ktree_rounds(p: int, k_tree: int = 2) -> list[list[tuple[int, int]]]:
    """The K-tree reduce along a line of P cores: rounds of (sender, receiver) positions.

    Each level splits its members into consecutive groups of g = ktree_group_size(p, k_tree); in a group
    of s members the root is member (s − 1)//2 and both sides pass partial sums towards it one neighbour
    per round (⌊s/2⌋ rounds); the roots are the next level's members. At most K levels.
    """
    g = ktree_group_size(p, k_tree)
    rounds: list[list[tuple[int, int]]] = []
    members = list(range(p))
    while len(members) > 1:
        groups = [members[i:i + g] for i in range(0, len(members), g)]
        level: list[list[tuple[int, int]]] = [[] for _ in range(max(len(group) // 2 for group in groups))]
        for group in groups:
            root, last = (len(group) - 1) // 2, len(group) - 1
            for i in range(root):
                level[i].append((group[i], group[i + 1]))
            for i in range(root + 1, len(group)):
                level[last - i].append((group[i], group[i - 1]))
        rounds += level
        members = [group[(len(group) - 1) // 2] for group in groups]
    return rounds


def meshgemv_counts(p: int, n: int, bytes_per_element: float = 2.0, k_tree: int = 2) -> MeshCounts:
    """MeshGEMV y[n] = x[k] @ W[k, n]: core (i, j) multiplies x block i by W tile (i, j), then each grid
    column all-reduces its partial sums (⌈n/P⌉·e bytes a message): a K-tree reduce (ktree_rounds) and the
    same tree mirrored to broadcast the sum back. K counts tree levels (WaferLLM's two-phase tree: K = 2).

    Per column the reduce sends P − 1 messages over H hops in R rounds whose farthest messages sum to C:
      rounds = 2R,  messages = 2P(P − 1),  hops = 2PH,  critical path hops = 2C,
      bytes = 2P(P − 1)·⌈n/P⌉·e,  hop bytes = 2PH·⌈n/P⌉·e.
    For P = g^K: H = K(g − 1)g^(K−1), R = K⌊g/2⌋, C = ⌊g/2⌋(g^K − 1)/(g − 1), max hops = g^(K−1);
    the ring all-reduce it replaces takes 2(P − 1) rounds.
    """
    rounds, line_hops, farthest, critical = _ktree_line(p, k_tree)
    message = _ceil_div(n, p) * bytes_per_element
    return MeshCounts(rounds=2 * rounds, messages=2 * p * (p - 1), max_hops_per_message=farthest,
                      hops=2 * p * line_hops, critical_path_hops=2 * critical, message_bytes=2 * p * (p - 1) * message,
                      hop_bytes=2 * p * line_hops * message)


@lru_cache(maxsize=4096)
def _ktree_line(p: int, k_tree: int) -> tuple[int, int, int, int]:
    """(rounds, hops, farthest message, Σ per-round farthest) of the K-tree reduce along one line of P cores."""
    gaps = [[abs(src - dst) for src, dst in pairs] for pairs in ktree_rounds(p, k_tree)]
    return (len(gaps), sum(sum(r) for r in gaps), max((max(r) for r in gaps), default=0),
            sum(max(r) for r in gaps))


def ring_allreduce_counts(p: int, n: int, bytes_per_element: float = 2.0) -> MeshCounts:
    """The GEMV baseline MeshGEMV improves on: each grid column all-reduces its partial y block (⌈n/P⌉ elements)
    by a plain ring — reduce-scatter then all-gather, P − 1 rounds each, every core sending a chunk of
    c = ⌈⌈n/P⌉/P⌉·e bytes to its ring successor; ring position r sits at index r, so the wrap crosses P − 1 hops.
    Per column a round sends P messages over 2(P − 1) hops:
      rounds = 2(P − 1),  messages = 2P²(P − 1),  max hops = P − 1,  hops = 4P(P − 1)²,
      critical path hops = 2(P − 1)²,  bytes = messages·c,  hop bytes = hops·c.
    """
    _require(p, "p")
    chunk = _ceil_div(_ceil_div(n, p), p) * bytes_per_element
    messages, hops = 2 * p * p * (p - 1), 4 * p * (p - 1) ** 2
    return MeshCounts(rounds=2 * (p - 1), messages=messages, max_hops_per_message=p - 1, hops=hops,
                      critical_path_hops=2 * (p - 1) ** 2, message_bytes=messages * chunk, hop_bytes=hops * chunk)

"""Reference kernels for the non-neural ops (perfsim.ops_classic): numpy on small random data, counting FLOPs
and bytes as they run, each checked against an independent formulation and the op's analytical counts."""

from __future__ import annotations

import numpy as np

from perfsim.ops_classic import LABEL_BYTES, NODE_INDEX_BYTES, DecisionTree, KMeans, Knn, NaiveBayes, RandomForest, Svm
from perfsim.reference.counter import Counter
from perfsim.reference.kernels import _rng, _width, counts_agree
from perfsim.reference.registry import Outcome, check


def tree_predict(x: np.ndarray, feature: np.ndarray, threshold: np.ndarray, leaf: np.ndarray, op: DecisionTree,
                 counter: Counter) -> np.ndarray:
    """Walk a complete binary tree stored heap-wise (children of node i at 2i+1, 2i+2): one compare a level."""
    node = np.zeros(len(x), dtype=int)
    for _ in range(op.depth):
        go_right = x[np.arange(len(x)), feature[node]] > threshold[node]
        counter.ops(len(x))
        node = 2 * node + 1 + go_right
    counter.read(x, _width(op.dtype))
    counter.read(op.nodes, _width(op.dtype) + NODE_INDEX_BYTES)
    counter.write(len(x), LABEL_BYTES)
    return leaf[node - op.nodes]


def _tree(depth: int, features: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nodes = 2**depth - 1
    return rng.integers(0, features, nodes), rng.normal(size=nodes), rng.integers(0, 3, nodes + 1)


def _tree_recursive(row: np.ndarray, feature: np.ndarray, threshold: np.ndarray, leaf: np.ndarray) -> int:
    node = 0
    while node < len(feature):
        node = 2 * node + (2 if row[feature[node]] > threshold[node] else 1)
    return int(leaf[node - len(feature)])


@check("decision-tree", op="decision_tree", variant="heap")
def _check_tree() -> Outcome:
    rng = _rng()
    op = DecisionTree(samples=20, features=5, depth=4)
    x = rng.normal(size=(20, 5))
    feature, threshold, leaf = _tree(4, 5, rng)
    counter = Counter()
    y = tree_predict(x, feature, threshold, leaf, op, counter)
    expected = np.array([_tree_recursive(row, feature, threshold, leaf) for row in x])
    return Outcome(float(np.abs(y - expected).max()), 0.0, counts_agree(op, counter), "vectorised vs row-by-row walk")


def forest_predict(x: np.ndarray, trees: list[tuple[np.ndarray, ...]], op: RandomForest,
                   counter: Counter) -> np.ndarray:
    """Each tree votes for its leaf's class (one add per tree), then an argmax over the classes."""
    votes = np.zeros((len(x), op.classes))
    tree_op = DecisionTree(samples=op.samples, features=op.features, depth=op.depth, dtype=op.dtype)
    for feature, threshold, leaf in trees:
        inner = Counter()
        label = tree_predict(x, feature, threshold, leaf, tree_op, inner)
        counter.ops(inner.flops)
        votes[np.arange(len(x)), label] += 1
        counter.ops(len(x))
    counter.ops(len(x) * (op.classes - 1))
    counter.read(x, _width(op.dtype))
    counter.read(op.trees * (2**op.depth - 1), _width(op.dtype) + NODE_INDEX_BYTES)
    counter.write(len(x), LABEL_BYTES)
    return votes.argmax(axis=1)


@check("random-forest", op="random_forest", variant="vote")
def _check_forest() -> Outcome:
    rng = _rng()
    op = RandomForest(samples=12, features=4, trees=5, depth=3, classes=3)
    x = rng.normal(size=(12, 4))
    trees = [_tree(3, 4, rng) for _ in range(5)]
    counter = Counter()
    y = forest_predict(x, trees, op, counter)
    votes = np.array([np.bincount([_tree_recursive(row, *t) for t in trees], minlength=3) for row in x])
    return Outcome(float(np.abs(y - votes.argmax(axis=1)).max()), 0.0, counts_agree(op, counter),
                   "vectorised trees vs row-by-row walks and bincount")


def svm_decision(x: np.ndarray, vectors: np.ndarray, alpha: np.ndarray, bias: float, gamma: float, op: Svm,
                 counter: Counter) -> np.ndarray:
    """sign(Σ α·K(x, s) + b) with a linear or RBF kernel."""
    diff_or_dot = x @ vectors.T if op.kernel == "linear" else ((x[:, None, :] - vectors[None]) ** 2).sum(axis=2)
    kernel = diff_or_dot if op.kernel == "linear" else np.exp(-gamma * diff_or_dot)
    counter.ops(op.samples * op.support_vectors * (op.kernel_flops + 2) + 2 * op.samples)
    counter.read(x, _width(op.dtype))
    counter.read(op.support_vectors * (op.features + 1), _width(op.dtype))
    counter.write(op.samples, LABEL_BYTES)
    return np.sign(kernel @ alpha + bias)


@check("svm-rbf", op="svm", variant="rbf")
def _check_svm() -> Outcome:
    rng = _rng()
    worst, counts = 0.0, True
    for kernel in ("linear", "rbf"):
        op = Svm(samples=7, features=6, support_vectors=9, kernel=kernel)
        x, s, alpha = rng.normal(size=(7, 6)), rng.normal(size=(9, 6)), rng.normal(size=9)
        counter = Counter()
        y = svm_decision(x, s, alpha, 0.1, 0.5, op, counter)
        loops = [sum(a * (row @ v if kernel == "linear" else np.exp(-0.5 * np.sum((row - v) ** 2)))
                     for a, v in zip(alpha, s, strict=True)) + 0.1 for row in x]
        worst = max(worst, float(np.abs(y - np.sign(loops)).max()))
        counts &= counts_agree(op, counter)
    return Outcome(worst, 0.0, counts, "vectorised vs looped kernel sums, linear and RBF")


def knn_predict(x: np.ndarray, points: np.ndarray, labels: np.ndarray, op: Knn, counter: Counter) -> np.ndarray:
    """Squared distances to every training point, the k nearest by selection, a majority vote."""
    distance = ((x[:, None, :] - points[None]) ** 2).sum(axis=2)
    nearest = np.argpartition(distance, op.k - 1, axis=1)[:, :op.k]
    votes = np.stack([np.bincount(labels[row], minlength=op.classes) for row in nearest])
    counter.ops(op.samples * (op.train * (3 * op.features + 1) + op.k + op.classes - 1))
    counter.read(x, _width(op.dtype))
    counter.read(op.train * op.features, _width(op.dtype))
    counter.read(op.train, LABEL_BYTES)
    counter.write(op.samples, LABEL_BYTES)
    return votes.argmax(axis=1)


@check("knn", op="knn", variant="select")
def _check_knn() -> Outcome:
    rng = _rng()
    op = Knn(samples=6, train=40, features=3, k=5, classes=3)
    x, points, labels = rng.normal(size=(6, 3)), rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    counter = Counter()
    y = knn_predict(x, points, labels, op, counter)
    order = [np.argsort(np.linalg.norm(points - row, axis=1))[:5] for row in x]
    expected = [np.bincount(labels[o], minlength=3).argmax() for o in order]
    return Outcome(float(np.abs(y - expected).max()), 0.0, counts_agree(op, counter), "selection vs full sort")


def kmeans_fit(x: np.ndarray, centroids: np.ndarray, op: KMeans, counter: Counter) -> np.ndarray:
    """Lloyd's iterations: assign each point to its nearest centroid, then move centroids to their means."""
    for _ in range(op.iterations):
        distance = ((x[:, None, :] - centroids[None]) ** 2).sum(axis=2)
        nearest = distance.argmin(axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, x)
        counts = np.bincount(nearest, minlength=op.clusters)[:, None]
        centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        counter.read(x, _width(op.dtype))
        counter.read(centroids, _width(op.dtype))
        counter.write(centroids, _width(op.dtype))
    counter.ops(op.flops)
    counter.write(op.samples, LABEL_BYTES)
    return centroids


@check("kmeans", op="kmeans", variant="lloyd")
def _check_kmeans() -> Outcome:
    rng = _rng()
    op = KMeans(samples=30, features=2, clusters=3, iterations=4)
    x = rng.normal(size=(30, 2))
    start = x[:3].copy()
    counter = Counter()
    fitted = kmeans_fit(x, start, op, counter)
    expected = start
    for _ in range(4):
        nearest = np.array([np.argmin([np.sum((p - c) ** 2) for c in expected]) for p in x])
        expected = np.array([x[nearest == j].mean(axis=0) if np.any(nearest == j) else expected[j] for j in range(3)])
    per_point = 3 * (3 * 2) + 2 + 2  # distances, compares, the add into the cluster sum
    flops = 4 * (30 * per_point + 3 * 2)
    return Outcome(float(np.abs(fitted - expected).max()), 1e-12, counts_agree(op, counter, flops=flops),
                   "vectorised vs looped Lloyd iterations; FLOPs counted by hand")


def naive_bayes_predict(x: np.ndarray, mean: np.ndarray, inv_two_var: np.ndarray, log_prior: np.ndarray,
                        op: NaiveBayes, counter: Counter) -> np.ndarray:
    """argmax over classes of log prior − Σ (x − μ)²·(1/2σ²) (the class-constant log-normaliser folded in)."""
    score = log_prior[None] - (((x[:, None, :] - mean[None]) ** 2) * inv_two_var[None]).sum(axis=2)
    counter.ops(op.samples * (op.classes * (4 * op.features + 1) + op.classes - 1))
    counter.read(x, _width(op.dtype))
    counter.read(op.classes * (2 * op.features + 1), _width(op.dtype))
    counter.write(op.samples, LABEL_BYTES)
    return score.argmax(axis=1)


@check("naive-bayes", op="naive_bayes", variant="gaussian")
def _check_naive_bayes() -> Outcome:
    rng = _rng()
    op = NaiveBayes(samples=8, features=4, classes=3)
    x, mean = rng.normal(size=(8, 4)), rng.normal(size=(3, 4))
    var = rng.uniform(0.5, 2.0, size=(3, 4))
    prior = np.array([0.2, 0.5, 0.3])
    counter = Counter()
    y = naive_bayes_predict(x, mean, 1 / (2 * var), np.log(prior) - 0.5 * np.log(var).sum(axis=1), op, counter)
    density = np.prod(np.exp(-((x[:, None, :] - mean) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var), axis=2)
    expected = (density * prior).argmax(axis=1)
    return Outcome(float(np.abs(y - expected).max()), 0.0, counts_agree(op, counter), "log-space vs density product")

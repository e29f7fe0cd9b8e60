"""Non-neural ML kernels as ops (Tabanelli et al., arXiv 2107.09448): decision tree, random forest, SVM,
kNN, k-means, Gaussian naive Bayes — inference on `samples` inputs of `features` features (k-means: fitting).

Counting conventions as in perfsim.ops (a multiply-add is 2 FLOP; compare, exp, divide 1 each), checked by
the numpy kernels in perfsim.reference.classic. Operands: the inputs x, the model's parameters (weights),
the outputs (one 4-byte label or score per sample; k-means: its centroids). `cores`: how many of the
cluster's cores the kernel is written to use (PULP kernels take the core count; default: all).
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from perfsim.ops import FormatName, OpBase, Operand, Size, _bytes

LABEL_BYTES = 4
"""An output label, vote or score: one 32-bit word."""
NODE_INDEX_BYTES = 4
"""A tree node's feature index and child offset: two 16-bit fields beside its threshold."""


class ClassicOp(OpBase):
    """Fields every non-neural kernel has."""

    samples: Size = 1
    features: Size
    dtype: FormatName = "fp32"
    cores: Size | None = None

    def _x(self) -> Operand:
        return Operand("x", _bytes(self.samples * self.features, self.dtype))

    def _y(self, count: float | None = None) -> Operand:
        return Operand("y", (self.samples if count is None else count) * LABEL_BYTES, reads=0, writes=1)


class DecisionTree(ClassicOp):
    """A complete binary tree of `depth` levels: one threshold compare per level per sample."""

    kind: Literal["decision_tree"] = "decision_tree"
    depth: Size

    @property
    def nodes(self) -> int:
        return 2**self.depth - 1

    @property
    def flops(self) -> float:
        return float(self.samples * self.depth)

    def operands(self) -> list[Operand]:
        tree = self.nodes * (_bytes(1, self.dtype) + NODE_INDEX_BYTES)
        return [self._x(), Operand("tree", tree, weight=True), self._y()]


class RandomForest(ClassicOp):
    """`trees` decision trees of `depth` levels voting among `classes`: per sample, depth compares and one
    vote per tree, then an argmax over the classes (classes − 1 compares)."""

    kind: Literal["random_forest"] = "random_forest"
    trees: Size
    depth: Size
    classes: Size = 2

    @property
    def flops(self) -> float:
        return float(self.samples * (self.trees * (self.depth + 1) + self.classes - 1))

    def operands(self) -> list[Operand]:
        tree = (2**self.depth - 1) * (_bytes(1, self.dtype) + NODE_INDEX_BYTES)
        return [self._x(), Operand("forest", self.trees * tree, weight=True), self._y()]


class Svm(ClassicOp):
    """A binary SVM over `support_vectors`: per sample and vector the kernel (linear: a dot product, 2F FLOP;
    rbf: exp(−γ‖x − s‖²), 3F + 2 FLOP), then α·K accumulated (2 FLOP); per sample a bias add and a sign
    compare (2 FLOP)."""

    kind: Literal["svm"] = "svm"
    support_vectors: Size
    kernel: Literal["linear", "rbf"] = "rbf"

    @property
    def kernel_flops(self) -> int:
        return 2 * self.features if self.kernel == "linear" else 3 * self.features + 2

    @property
    def flops(self) -> float:
        return float(self.samples * (self.support_vectors * (self.kernel_flops + 2) + 2))

    def operands(self) -> list[Operand]:
        vectors = _bytes(self.support_vectors * (self.features + 1), self.dtype)  # vectors and their α
        return [self._x(), Operand("support_vectors", vectors, weight=True), self._y()]


class Knn(ClassicOp):
    """k nearest neighbours among `train` points: per sample and point a squared distance (3F FLOP) and one
    compare against the current k-th best; then k votes and an argmax over the classes."""

    kind: Literal["knn"] = "knn"
    train: Size
    k: Size = 5
    classes: Size = 2

    @model_validator(mode="after")
    def _k(self) -> Knn:
        if self.k > self.train:
            raise ValueError(f"k ({self.k}) cannot exceed train ({self.train})")
        return self

    @property
    def flops(self) -> float:
        return float(self.samples * (self.train * (3 * self.features + 1) + self.k + self.classes - 1))

    def operands(self) -> list[Operand]:
        points = _bytes(self.train * self.features, self.dtype) + self.train * LABEL_BYTES
        return [self._x(), Operand("train", points, weight=True), self._y()]


class KMeans(ClassicOp):
    """Lloyd's k-means fitting `clusters` centroids to `samples` points for `iterations` iterations: per
    iteration and point a squared distance to each centroid (3F FLOP) and clusters − 1 compares, an add of
    the point into its cluster's sum (F FLOP); per iteration a divide per centroid coordinate."""

    kind: Literal["kmeans"] = "kmeans"
    clusters: Size
    iterations: Size = 1

    @property
    def flops(self) -> float:
        per_point = self.clusters * 3 * self.features + self.clusters - 1 + self.features
        return float(self.iterations * (self.samples * per_point + self.clusters * self.features))

    def operands(self) -> list[Operand]:
        centroids = _bytes(self.clusters * self.features, self.dtype)
        return [Operand("x", _bytes(self.samples * self.features, self.dtype), reads=self.iterations),
                Operand("centroids", centroids, reads=self.iterations, writes=self.iterations, weight=True),
                self._y()]


class NaiveBayes(ClassicOp):
    """Gaussian naive Bayes over `classes`: per sample, class and feature (x − μ)²·(1/2σ²) subtracted from the
    log-likelihood (4 FLOP); per class the log prior added (1 FLOP); an argmax (classes − 1 compares)."""

    kind: Literal["naive_bayes"] = "naive_bayes"
    classes: Size

    @property
    def flops(self) -> float:
        return float(self.samples * (self.classes * (4 * self.features + 1) + self.classes - 1))

    def operands(self) -> list[Operand]:
        params = _bytes(self.classes * (2 * self.features + 1), self.dtype)  # μ, 1/2σ² (log-normaliser folded)
        return [self._x(), Operand("params", params, weight=True), self._y()]


CLASSIC_OPS = (DecisionTree, RandomForest, Svm, Knn, KMeans, NaiveBayes)


"""Region merging in the spirit of eCognition's multiresolution segmentation.

Baatz and Schäpe (2000) grow objects by merging the pair of neighbours whose fusion raises the
heterogeneity least, as long as that increase stays below the square of a *scale* parameter.
Heterogeneity mixes a spectral part (size-weighted standard deviations of the bands, each with a
weight) and a shape part (*compactness*: outline length over the square root of the size, and
smoothness: outline length over the bounding box's), weighted by *shape*:

    f = (1 - shape) * h_colour + shape * (compactness * h_compact + (1 - compactness) * h_smooth)

Like eCognition, merging follows the *local mutual best fitting* heuristic: two objects merge
when each is the other's best (cheapest) neighbour. Every pass merges all mutual best pairs at
once, vectorised over the whole graph; the cheapest pair of a graph is always mutual, so each
pass merges at least one pair until no fusion is below the threshold. Merging starts from
superpixels instead of single pixels, so a scene of millions of pixels is a graph of thousands.
A coarser scale continues from the objects of the finer one, so levels nest: every object of a
fine level lies inside exactly one object of each coarser level.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from landslide_pipeline.labelling.regions import RegionGraph


@dataclass(frozen=True)
class MergeCriteria:
    """What a fusion costs and how much it may cost.

    Attributes:
        scale: Objects merge while the heterogeneity increase is below ``scale ** 2``.
        shape: Weight of shape against colour, 0..0.9 (as in eCognition).
        compactness: Weight of compactness against smoothness within shape, 0..1.
        weights: Weight of each channel of the graph in the colour criterion (0 leaves it out).
    """

    scale: float
    shape: float
    compactness: float
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"scale must be positive, got {self.scale}")
        if not 0.0 <= self.shape <= 0.9:
            raise ValueError(f"shape must be within 0..0.9, got {self.shape}")
        if not 0.0 <= self.compactness <= 1.0:
            raise ValueError(f"compactness must be within 0..1, got {self.compactness}")


def merge_regions(graph: RegionGraph, criteria: MergeCriteria) -> tuple[np.ndarray, RegionGraph]:
    """Merges regions by local mutual best fitting until no fusion is cheaper than ``scale**2``.

    Args:
        graph: The regions to merge.
        criteria: Scale, shape, compactness and channel weights; one weight per channel.

    Returns:
        (object id of every region, in 0..m-1; the graph of the m objects).
    """
    if len(criteria.weights) != len(graph.channels):
        raise ValueError(f"{len(criteria.weights)} weights for {len(graph.channels)} channels {graph.channels}")
    work = replace(graph, count=graph.count.copy(), sums=graph.sums.copy(), squares=graph.squares.copy(),
                   low=graph.low.copy(), high=graph.high.copy(), perimeter=graph.perimeter.copy(),
                   bbox=graph.bbox.copy())
    parent = np.arange(graph.n_regions)
    weights = np.asarray(criteria.weights, dtype=np.float64)
    used = np.flatnonzero(weights)
    threshold = criteria.scale**2
    while len(work.edges):
        merging = _mutual_best_edges(work, criteria, weights[used], used, threshold)
        if len(merging) == 0:
            break
        parent[work.edges[merging, 1]] = work.edges[merging, 0]
        work = _merge_edges(work, merging)
    return _compact(work, _resolve(parent))


def fusion_costs(graph: RegionGraph, criteria: MergeCriteria) -> np.ndarray:
    """Heterogeneity increase of merging the two regions of each of the graph's edges."""
    weights = np.asarray(criteria.weights, dtype=np.float64)
    used = np.flatnonzero(weights)
    return _cost(graph, criteria, weights[used], used)


def _cost(graph: RegionGraph, criteria: MergeCriteria, weights: np.ndarray, used: np.ndarray) -> np.ndarray:
    a, b = graph.edges[:, 0], graph.edges[:, 1]
    n1, n2 = graph.count[a], graph.count[b]
    n = n1 + n2
    colour = np.zeros(len(a))
    if len(used):
        s1, s2 = graph.sums[a][:, used], graph.sums[b][:, used]
        q1, q2 = graph.squares[a][:, used], graph.squares[b][:, used]
        merged = _spread(q1 + q2, s1 + s2, n)
        colour = ((n[:, None] * merged - n1[:, None] * _spread(q1, s1, n1) - n2[:, None] * _spread(q2, s2, n2))
                  @ weights)
    if criteria.shape == 0:
        return colour
    l1, l2 = graph.perimeter[a], graph.perimeter[b]
    length = l1 + l2 - 2 * graph.shared
    box1, box2 = _box_perimeter(graph.bbox[a]), _box_perimeter(graph.bbox[b])
    box = _box_perimeter(np.concatenate([np.minimum(graph.bbox[a][:, :2], graph.bbox[b][:, :2]),
                                         np.maximum(graph.bbox[a][:, 2:], graph.bbox[b][:, 2:])], axis=1))
    compact = length * np.sqrt(n) - (l1 * np.sqrt(n1) + l2 * np.sqrt(n2))
    smooth = n * length / box - (n1 * l1 / box1 + n2 * l2 / box2)
    shape = criteria.compactness * compact + (1 - criteria.compactness) * smooth
    return (1 - criteria.shape) * colour + criteria.shape * shape


def _spread(squares: np.ndarray, sums: np.ndarray, count: np.ndarray) -> np.ndarray:
    mean = sums / count[:, None]
    return np.sqrt(np.maximum(squares / count[:, None] - mean**2, 0.0))


def _box_perimeter(bbox: np.ndarray) -> np.ndarray:
    return 2.0 * ((bbox[:, 2] - bbox[:, 0] + 1) + (bbox[:, 3] - bbox[:, 1] + 1))


def _mutual_best_edges(graph: RegionGraph, criteria: MergeCriteria, weights: np.ndarray, used: np.ndarray,
                       threshold: float) -> np.ndarray:
    """Indices of the edges whose regions are each other's cheapest neighbour below the threshold."""
    a, b = graph.edges[:, 0], graph.edges[:, 1]
    cost = _cost(graph, criteria, weights, used)
    cheap = np.flatnonzero(cost < threshold)
    if len(cheap) == 0:
        return cheap
    nodes = np.concatenate([a[cheap], b[cheap]])
    edge = np.concatenate([cheap, cheap])
    # By node, then cost, then edge index: ties resolve the same way from both ends.
    order = np.lexsort((edge, cost[edge], nodes))
    nodes, edge = nodes[order], edge[order]
    first = np.r_[True, nodes[1:] != nodes[:-1]]
    best = np.full(graph.n_regions, -1, dtype=np.int64)
    best[nodes[first]] = edge[first]
    return cheap[(best[a[cheap]] == cheap) & (best[b[cheap]] == cheap)]


def _merge_edges(graph: RegionGraph, merging: np.ndarray) -> RegionGraph:
    """Merges the two regions of each given edge: the second's statistics go into the first.

    The edges form a matching (each region in at most one), so plain fancy indexing adds each
    statistic exactly once.
    """
    keep, gone = graph.edges[merging, 0], graph.edges[merging, 1]
    shared = graph.shared[merging]
    graph.count[keep] += graph.count[gone]
    graph.sums[keep] += graph.sums[gone]
    graph.squares[keep] += graph.squares[gone]
    graph.low[keep] = np.fmin(graph.low[keep], graph.low[gone])
    graph.high[keep] = np.fmax(graph.high[keep], graph.high[gone])
    graph.perimeter[keep] += graph.perimeter[gone] - 2 * shared
    graph.bbox[keep, :2] = np.minimum(graph.bbox[keep, :2], graph.bbox[gone, :2])
    graph.bbox[keep, 2:] = np.maximum(graph.bbox[keep, 2:], graph.bbox[gone, 2:])
    graph.count[gone] = 0
    target = np.arange(graph.n_regions)
    target[gone] = keep
    edges, lengths = _rewire(target[graph.edges], graph.shared, graph.n_regions)
    return replace(graph, edges=edges, shared=lengths)


def _rewire(edges: np.ndarray, shared: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Drops edges inside merged objects and sums the lengths of edges that became duplicates."""
    inner = edges[:, 0] != edges[:, 1]
    edges, shared = edges[inner], shared[inner]
    lo, hi = edges.min(axis=1), edges.max(axis=1)
    keys, inverse = np.unique(lo * n + hi, return_inverse=True)
    return np.stack([keys // n, keys % n], axis=1), np.bincount(inverse, shared)


def _resolve(parent: np.ndarray) -> np.ndarray:
    """Follows absorbed-into links to each region's final object (pointer jumping)."""
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def _compact(graph: RegionGraph, root: np.ndarray) -> tuple[np.ndarray, RegionGraph]:
    """Renumbers the surviving objects 0..m-1 and keeps only their statistics."""
    alive = np.flatnonzero(root == np.arange(len(root)))
    number = np.full(len(root), -1, dtype=np.int64)
    number[alive] = np.arange(len(alive))
    edges = number[graph.edges]
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    objects = RegionGraph(
        channels=graph.channels, count=graph.count[alive], sums=graph.sums[alive], squares=graph.squares[alive],
        low=graph.low[alive], high=graph.high[alive], perimeter=graph.perimeter[alive], bbox=graph.bbox[alive],
        edges=edges[order], shared=graph.shared[order],
    )
    return number[root], objects

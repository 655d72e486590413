import numpy as np
import pytest

from landslide_pipeline.labelling.merging import MergeCriteria, fusion_costs, merge_regions
from landslide_pipeline.labelling.regions import border_edges, concatenate, region_statistics

NAMES = ("red", "green", "blue")


def blocks(height: int, width: int, size: int) -> np.ndarray:
    """Square superpixels of ``size`` px, numbered row by row."""
    rows, cols = np.mgrid[0:height, 0:width]
    return (rows // size) * (-(-width // size)) + cols // size


def two_tone(height: int = 32, width: int = 48, split: int = 24, noise: float = 2.0) -> np.ndarray:
    """RGB with a dark left part and a bright right part, plus a little noise."""
    rng = np.random.default_rng(0)
    image = np.where(np.arange(width)[None, None, :] < split, 60.0, 180.0) + rng.normal(0, noise, (3, height, width))
    return image.astype(np.float32)


def graph_of(labels: np.ndarray, image: np.ndarray, elevation: np.ndarray | None = None):
    return region_statistics(labels, image, NAMES, int(labels.max()) + 1, elevation)


def test_statistics_of_a_hand_made_label_image():
    labels = np.array([[0, 0, 1],
                       [0, 0, 1],
                       [2, 2, -1]])
    image = np.stack([np.arange(9, dtype=np.float32).reshape(3, 3)] * 3)
    elevation = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.float32)
    graph = graph_of(labels, image, elevation)
    assert graph.count.tolist() == [4, 2, 2]
    assert graph.means()[:, 0].tolist() == [(0 + 1 + 3 + 4) / 4, (2 + 5) / 2, (6 + 7) / 2]
    assert graph.perimeter.tolist() == [8, 6, 6]  # nodata and the image border count as outline
    assert graph.edges.tolist() == [[0, 1], [0, 2]]
    assert graph.shared.tolist() == [2, 2]
    assert graph.bbox.tolist() == [[0, 0, 1, 1], [0, 2, 1, 2], [2, 0, 2, 1]]
    assert graph.low.tolist() == [1, 3, 7] and graph.high.tolist() == [5, 6, 8]


def test_windows_joined_at_their_borders_equal_the_whole_image():
    labels = blocks(20, 30, 4)
    image = two_tone(20, 30, 15)
    whole = graph_of(labels, image)
    # Cut into four windows whose region ids are already global, as segment_scene numbers them.
    graphs, borders = [], []
    for r0, r1 in ((0, 12), (12, 20)):
        for c0, c1 in ((0, 16), (16, 30)):
            window = labels[r0:r1, c0:c1]
            ids, local = np.unique(window, return_inverse=True)
            graph = region_statistics(local.reshape(window.shape), image[:, r0:r1, c0:c1], NAMES, len(ids), None,
                                      r0, c0)
            graph.edges = ids[graph.edges]
            graphs.append((ids, graph))
            if r0:
                borders.append(border_edges(labels[r0, c0:c1], labels[r0 - 1, c0:c1]))
            if c0:
                borders.append(border_edges(labels[r0:r1, c0], labels[r0:r1, c0 - 1]))
    # Regions cut by a window border are separate regions in the windowed graph, so compare the
    # windowed graph after merging each cut region back: counts, sums and outlines must add up.
    joined = concatenate([g for _, g in graphs], borders)
    owner = np.concatenate([ids for ids, _ in graphs])
    total = np.zeros(whole.n_regions)
    np.add.at(total, owner, joined.count)
    assert np.array_equal(total, whole.count)
    red = np.zeros(whole.n_regions)
    np.add.at(red, owner, joined.sums[:, 0])
    assert np.allclose(red, whole.sums[:, 0])


def test_merging_finds_the_two_halves_and_conserves_statistics():
    labels = blocks(32, 48, 4)
    image = two_tone()
    graph = graph_of(labels, image)
    objects, merged = merge_regions(graph, MergeCriteria(scale=60, shape=0.1, compactness=0.5,
                                                         weights=(1, 1, 1, 0, 0, 0)))
    assert merged.n_regions == 2
    pixel_objects = objects[labels]
    assert len(np.unique(pixel_objects[:, :24])) == 1 and len(np.unique(pixel_objects[:, 24:])) == 1
    # Merged statistics are exactly those of the merged pixels, outline and adjacency included.
    direct = graph_of(pixel_objects, image)
    assert np.allclose(merged.count, direct.count)
    assert np.allclose(merged.sums, direct.sums)
    assert np.allclose(merged.perimeter, direct.perimeter)
    assert merged.edges.tolist() == direct.edges.tolist() and np.allclose(merged.shared, direct.shared)
    assert merged.bbox.tolist() == direct.bbox.tolist()


def ramp(height: int = 32, width: int = 48) -> np.ndarray:
    """Brightness rising 5 per column: the larger the scale, the wider the objects."""
    return np.broadcast_to(5.0 * np.arange(width, dtype=np.float32), (3, height, width)).copy()


def test_small_scale_merges_nothing_and_coarser_scales_nest():
    labels = blocks(32, 48, 4)
    graph = graph_of(labels, ramp())
    weights = (1, 1, 1, 0, 0, 0)
    objects, same = merge_regions(graph, MergeCriteria(scale=0.01, shape=0.3, compactness=0.5, weights=weights))
    assert same.n_regions == graph.n_regions and len(np.unique(objects)) == graph.n_regions
    fine_of, fine = merge_regions(graph, MergeCriteria(scale=20, shape=0.3, compactness=0.5, weights=weights))
    coarse_of, coarse = merge_regions(fine, MergeCriteria(scale=60, shape=0.3, compactness=0.5, weights=weights))
    assert graph.n_regions > fine.n_regions > coarse.n_regions
    # Every fine object lies inside one coarse object: superpixels of a fine object share it.
    coarse_of_superpixel = coarse_of[fine_of]
    for fine_object in range(fine.n_regions):
        assert len(np.unique(coarse_of_superpixel[fine_of == fine_object])) == 1


def test_no_merge_costs_less_than_the_threshold_it_stopped_at():
    graph = graph_of(blocks(32, 48, 4), two_tone(noise=8.0))
    criteria = MergeCriteria(scale=20, shape=0.3, compactness=0.5, weights=(1, 1, 1, 0, 0, 0))
    _, merged = merge_regions(graph, criteria)
    assert (fusion_costs(merged, criteria) >= 20**2).all()


@pytest.mark.parametrize("bad", [dict(scale=0), dict(shape=0.95), dict(compactness=1.5)])
def test_invalid_criteria_are_refused(bad):
    with pytest.raises(ValueError):
        MergeCriteria(**{**dict(scale=10, shape=0.3, compactness=0.5, weights=()), **bad})


def test_weights_must_match_the_channels():
    graph = graph_of(blocks(8, 8, 4), two_tone(8, 8, 4))
    with pytest.raises(ValueError, match="weights"):
        merge_regions(graph, MergeCriteria(scale=10, shape=0.3, compactness=0.5, weights=(1, 1, 1)))

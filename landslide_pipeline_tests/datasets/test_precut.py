"""Pre-cut data sets made on the fly in every supported format and mask encoding."""

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from landslide_pipeline.datasets.adapter import load_adapter
from landslide_pipeline.datasets.precut import find_pairs, inspect_dataset, label_dataset, tile_dataset
from landslide_pipeline.datasets.readers import MAX_TILE_ELEMENTS, read_image
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.grid import TilingSpec
from landslide_pipeline.geo.rasters import open_raster
from landslide_pipeline.schemas import TileIndex


def write_plain(path: Path, array: np.ndarray, driver: str = "GTiff", alpha: bool = False) -> Path:
    """Writes a (bands, H, W) array without georeference, as PNG, JPEG or TIFF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver=driver, width=array.shape[2], height=array.shape[1],
                           count=array.shape[0], dtype=array.dtype) as dst:
            dst.write(array)
            if alpha:
                dst.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                                   rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha]
    return path


def adapter_file(tmp_path: Path, text: str):
    (tmp_path / "adapter.toml").write_text(text)
    return load_adapter(tmp_path / "adapter.toml")


def scene(height: int, width: int, bands: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 250, (bands, height, width), dtype=np.uint8)


def square_mask(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[10:40, 20:70] = 1
    return mask


def test_png_tiles_with_alpha_and_0_255_masks(tmp_path):
    root = tmp_path / "data"
    for i in (2, 10, 1):
        rgba = np.concatenate([scene(64, 64, seed=i), np.full((1, 64, 64), 255, np.uint8)])
        rgba[3, :40] = 0 if i == 10 else 255  # tile 10 is mostly transparent
        write_plain(root / "images" / f"image_{i}.png", rgba, "PNG", alpha=True)
        write_plain(root / "masks" / f"mask_{i}.png", (255 * square_mask(64, 64))[None], "PNG")
    adapter = adapter_file(tmp_path, '[image]\npattern = "images/image_*.png"\n'
                                     '[mask]\npattern = "masks/mask_*.png"\nencoding = "0/255"\n')
    assert [p.key for p in find_pairs(root, adapter)] == ["1", "2", "10"]  # natural order
    index = tile_dataset("png", root, adapter, tmp_path / "out", TilingSpec(64, max_nodata_fraction=0.5))
    TileIndex.validate(index)
    assert list(index.tile_id) == ["1", "2"]  # 40 of 64 rows transparent: 62 % nodata
    assert index.crs is None and (index.row_off == -1).all()
    with open_raster(tmp_path / "out" / "image" / "2.tif") as src:
        assert src.count == 3 and src.transform == rasterio.Affine(1, 0, 0, 0, -1, 0)
        np.testing.assert_array_equal(src.read(), scene(64, 64, seed=2))
    labelled = label_dataset(index, root, adapter, tmp_path / "out")
    assert labelled.landslide_fraction.tolist() == pytest.approx([30 * 44 / 64**2] * 2)


def test_tiles_that_are_not_tile_size_are_re_cut_with_the_snapping_grid(tmp_path):
    root = tmp_path / "data"
    write_plain(root / "img" / "a.tif", scene(96, 160))
    write_plain(root / "lbl" / "a.tif", (square_mask(96, 160) * np.array([[[0]], [[255]], [[0]]])).astype(np.uint8))
    adapter = adapter_file(tmp_path, '[image]\npattern = "img/*.tif"\n'
                                     '[mask]\npattern = "lbl/*.tif"\nencoding = "rgb"\ncolor = [0, 255, 0]\n')
    index = tile_dataset("tif", root, adapter, tmp_path / "out", TilingSpec(64))
    assert list(index.tile_id) == [f"a_r{r:04d}_c{c:04d}" for r in (0, 32) for c in (0, 64, 96)]
    assert list(zip(index.source_row_off, index.source_col_off)) == [(r, c) for r in (0, 32) for c in (0, 64, 96)]
    labelled = label_dataset(index, root, adapter, tmp_path / "out").set_index("tile_id")
    with open_raster(tmp_path / "out" / "masks" / "a_r0032_c0064.tif") as src:
        np.testing.assert_array_equal(src.read(1), square_mask(96, 160)[32:96, 64:128])
    assert labelled.loc["a_r0032_c0064", "landslide_fraction"] == pytest.approx(8 * 6 / 64**2)
    # The footprint is drawn in the source tile's pixel grid: x = column, y = -row.
    assert index.set_index("tile_id").loc["a_r0032_c0064"].geometry.bounds == (64, -96, 128, -32)


@pytest.mark.parametrize("axes", ["HWC", "CHW"])
def test_hdf5_tiles_in_either_axis_order(tmp_path, axes):
    root = tmp_path / "data"
    (root / "img").mkdir(parents=True)
    (root / "mask").mkdir()
    bands = np.random.default_rng(0).random((5, 32, 32))
    for key in ("x1", "x2"):
        with h5py.File(root / "img" / f"{key}.h5", "w") as handle:
            handle["img"] = bands.transpose(1, 2, 0) if axes == "HWC" else bands
        with h5py.File(root / "mask" / f"{key}.h5", "w") as handle:
            handle["mask"] = square_mask(32, 32)
    adapter = adapter_file(tmp_path, f'[image]\npattern = "img/*.h5"\nhdf5_key = "img"\naxes = "{axes}"\n'
                                     '[mask]\npattern = "mask/*.h5"\nhdf5_key = "mask"\n')
    summary = inspect_dataset(root, adapter)
    assert (summary.n_tiles, summary.bands, summary.dtype, summary.sizes) == (2, 5, "float64", ((32, 32),))
    tile_dataset("h5", root, adapter, tmp_path / "out", TilingSpec(32))
    with open_raster(tmp_path / "out" / "image" / "x1.tif") as src:
        np.testing.assert_array_equal(src.read(), bands)


def test_lossy_jpeg_masks_are_thresholded_and_strict_encodings_refuse_grey(tmp_path):
    root = tmp_path / "data"
    write_plain(root / "images" / "t_1.jpg", scene(64, 64), "JPEG")
    write_plain(root / "labels" / "t_1.jpg", (255 * square_mask(64, 64))[None], "JPEG")
    lossy = adapter_file(tmp_path, '[image]\npattern = "images/t_*.jpg"\n'
                                   '[mask]\npattern = "labels/t_*.jpg"\nencoding = "threshold"\nthreshold = 127\n')
    index = tile_dataset("jpg", root, lossy, tmp_path / "out", TilingSpec(64))
    labelled = label_dataset(index, root, lossy, tmp_path / "out")
    assert labelled.landslide_fraction.iloc[0] == pytest.approx(30 * 44 / 64**2, abs=0.01)
    strict = adapter_file(tmp_path, '[image]\npattern = "images/t_*.jpg"\n'
                                    '[mask]\npattern = "labels/t_*.jpg"\nencoding = "0/255"\n')
    with pytest.raises(SurveyInputError, match=r"t_1.jpg: mask values \[.*\] are not 0/255; use encoding"):
        label_dataset(index, root, strict, tmp_path / "out2")


def test_labelme_masks_for_pre_cut_tiles(tmp_path):
    root = tmp_path / "data"
    write_plain(root / "images" / "7.tif", scene(64, 64))
    (root / "labelme").mkdir()
    (root / "labelme" / "7.json").write_text(json.dumps({"imageHeight": 64, "imageWidth": 64, "shapes": [
        {"label": "landslide", "shape_type": "rectangle", "points": [[0, 0], [31, 15]]}]}))
    adapter = adapter_file(tmp_path, '[image]\npattern = "images/*.tif"\n[mask]\npattern = "labelme/*.json"\n'
                                     'encoding = "labelme"\n')
    index = tile_dataset("lm", root, adapter, tmp_path / "out", TilingSpec(64))
    assert label_dataset(index, root, adapter, tmp_path / "out").landslide_fraction.iloc[0] == 32 * 16 / 64**2


@pytest.mark.parametrize("problem", ["no mask", "size", "bands", "small", "dtype", "hdf5 key", "adapter"])
def test_bad_data_sets_name_the_file_and_the_problem(tmp_path, problem):
    root = tmp_path / "data"
    write_plain(root / "img" / "a.tif", scene(64, 64))
    write_plain(root / "msk" / "a.tif", square_mask(64, 64)[None])
    text = '[image]\npattern = "img/*.tif"\n[mask]\npattern = "msk/*.tif"\n'
    expected = {
        "no mask": ("b.tif", r"no mask for 1 image\(s\); expected msk/b.tif"),
        "size": ("msk/a.tif", "mask is 32x64 px but its image a.tif is 64x64 px"),
        "bands": ("b.tif", "has 2 band.* but a.tif has 3"),
        "small": ("a.tif", "64x64 px tile: .*smaller than the tile size 128"),
        "dtype": ("c.tif", "unsupported dtype int8"),
        "hdf5 key": ("h.h5", "has no HDF5 dataset 'img'; it holds \\['data'\\]"),
        "adapter": ("adapter.toml", "encoding = \"rgb\" needs color"),
    }[problem]
    if problem == "no mask":
        write_plain(root / "img" / "b.tif", scene(64, 64))
    elif problem == "size":
        write_plain(root / "msk" / "a.tif", square_mask(32, 64)[None])
    elif problem == "bands":
        write_plain(root / "img" / "b.tif", scene(64, 64, bands=2))
        write_plain(root / "msk" / "b.tif", square_mask(64, 64)[None])
    elif problem == "dtype":
        write_plain(root / "img" / "c.tif", scene(64, 64).astype(np.int8))
        text = '[image]\npattern = "img/c.tif"\n'
    elif problem == "hdf5 key":
        with h5py.File(root / "h.h5", "w") as handle:
            handle["data"] = np.zeros((8, 8))
        text = '[image]\npattern = "h.h5"\nhdf5_key = "img"\n'
    elif problem == "adapter":
        text = '[image]\npattern = "img/*.tif"\n[mask]\npattern = "msk/*.tif"\nencoding = "rgb"\n'
    with pytest.raises(SurveyInputError, match=expected[1]) as error:
        adapter = adapter_file(tmp_path, text)
        inspect_dataset(root, adapter)
        tile_dataset("bad", root, adapter, tmp_path / "out", TilingSpec(128 if problem == "small" else 64))
    assert str(error.value.path).endswith(expected[0])


def test_masks_without_an_image_are_refused(tmp_path):
    root = tmp_path / "data"
    write_plain(root / "img" / "a.tif", scene(64, 64))
    for key in ("a", "c", "b", "d"):
        write_plain(root / "msk" / f"{key}.tif", square_mask(64, 64)[None])
    adapter = adapter_file(tmp_path, '[image]\npattern = "img/*.tif"\n[mask]\npattern = "msk/*.tif"\n')
    with pytest.raises(SurveyInputError, match=r"msk/b.tif: no image for 3 mask\(s\); expected img/b.tif") as error:
        find_pairs(root, adapter)
    assert error.value.path.name == "b.tif"  # the first orphan in natural order


def test_a_huge_hdf5_tile_is_refused_naming_file_and_key_before_it_is_read(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    with h5py.File(root / "huge.h5", "w") as handle:  # declared 40,000^2 x 14 float32 (84 GiB), never written
        handle.create_dataset("img", shape=(40_000, 40_000, 14), dtype="float32", chunks=(256, 256, 14))
    assert (root / "huge.h5").stat().st_size < 2**20
    adapter = adapter_file(tmp_path, '[image]\npattern = "huge.h5"\nhdf5_key = "img"\naxes = "HWC"\n')
    message = (r"huge.h5: HDF5 dataset 'img' of shape \(40000, 40000, 14\) holds 22,400,000,000 values, above the "
               r"cap of 100,000,000 per tile \(readers.MAX_TILE_ELEMENTS\); cut it into smaller tiles")
    with pytest.raises(SurveyInputError, match=message) as error:
        inspect_dataset(root, adapter)
    assert error.value.path == root / "huge.h5"
    with pytest.raises(SurveyInputError, match=message):
        read_image(root / "huge.h5", adapter.image)
    assert MAX_TILE_ELEMENTS == 100_000_000


def test_a_huge_sparse_tiff_tile_is_refused_before_it_is_read(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    with warnings.catch_warnings():  # declared 20,000^2 x 3 px, never written
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        rasterio.open(root / "huge.tif", "w", driver="GTiff", width=20_000, height=20_000, count=3, dtype="uint8",
                      tiled=True, sparse_ok=True).close()
    adapter = adapter_file(tmp_path, '[image]\npattern = "huge.tif"\n')
    message = r"huge.tif: 20,000 x 20,000 px x 3 band\(s\) tile holds 1,200,000,000 values, above the cap"
    with pytest.raises(SurveyInputError, match=message):
        inspect_dataset(root, adapter)
    with pytest.raises(SurveyInputError, match=message):
        read_image(root / "huge.tif", adapter.image)


@pytest.mark.parametrize("kind", ["external storage", "external link", "virtual dataset"])
def test_hdf5_datasets_that_read_other_files_are_refused(tmp_path, kind):
    root = tmp_path / "data"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.write_bytes(bytes(range(64)))
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["img"] = np.full((8, 8), 99, np.uint8)
    with h5py.File(root / "tile.h5", "w") as handle:
        if kind == "external storage":
            handle.create_dataset("img", shape=(8, 8), dtype="uint8", external=[(str(outside), 0, 64)])
        elif kind == "external link":
            handle["img"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "img")
        else:
            layout = h5py.VirtualLayout(shape=(8, 8), dtype="uint8")
            layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "img", shape=(8, 8))
            handle.create_virtual_dataset("img", layout)
    adapter = adapter_file(tmp_path, '[image]\npattern = "tile.h5"\nhdf5_key = "img"\n')
    with pytest.raises(SurveyInputError, match="tile.h5: HDF5 dataset 'img' reads its data from other files"):
        read_image(root / "tile.h5", adapter.image)


def test_a_pre_cut_tile_holding_vrt_xml_is_refused(tmp_path):
    root = tmp_path / "data"
    write_plain(root / "img" / "a.png", scene(64, 64), "PNG")
    (root / "img" / "b.png").write_text('<VRTDataset rasterXSize="64" rasterYSize="64"></VRTDataset>')
    adapter = adapter_file(tmp_path, '[image]\npattern = "img/*.png"\n')
    with pytest.raises(SurveyInputError, match=r"b.png: cannot read raster: not a GeoTIFF, PNG or JPEG file "
                                               r"\(found VRT XML\)"):
        inspect_dataset(root, adapter)

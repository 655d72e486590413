"""Survey-level assets, one partition per survey: raw survey -> tiles -> manual labels."""

import json
from typing import Literal

import geopandas as gpd
from dagster import AssetExecutionContext, Config, DataVersion, MaterializeResult, MetadataValue, asset
from pydantic import Field

from landslide_pipeline.defs.automation_conditions import on_code_change, on_new_data
from landslide_pipeline.defs.concurrency import CPU_POOL, heavy_step_tags
from landslide_pipeline.defs.partitions import survey_partitions
from landslide_pipeline.defs.resources import DataStore
from landslide_pipeline.geo.grid import TilingSpec
from landslide_pipeline.geo.labels import drop_empty_tiles
from landslide_pipeline.layout import LABEL_INDEX, MASK_FOLDER, TILE_INDEX, LabelSource
from landslide_pipeline.progress import LogProgress
from landslide_pipeline.schemas import TileIndex
from landslide_pipeline.storage import atomic_directory, atomic_file, combined_version, remove_atomically
from landslide_pipeline.surveys import fingerprint, open_survey


@asset(partitions_def=survey_partitions, group_name="survey", kinds={"geotiff"}, code_version="2",
       automation_condition=on_code_change())
def raw_survey(context: AssetExecutionContext, data_store: DataStore) -> MaterializeResult:
    """The survey's inputs, validated: a scene's CRS, size, bands, DEM coverage and labels, or
    every image/mask pair of a pre-cut tile data set.

    Its data version is a hash of the files' contents (survey.toml included), so replacing a
    survey's files marks exactly that survey's downstream partitions stale, and re-ingesting the
    same files nothing. The metadata JSON records it, so the outputs made from the survey carry it
    into their own data versions.
    """
    layout = data_store.layout
    survey = open_survey(layout.raw_survey(context.partition_key))
    metadata = survey.inspect()
    labels = set(survey.label_files())
    version, scene_version = fingerprint(survey.files()), fingerprint(f for f in survey.files() if f not in labels)
    with atomic_file(layout.survey_metadata(context.partition_key)) as tmp:
        tmp.write_text(json.dumps({**metadata.to_dict(), "data_version": version, "scene_version": scene_version},
                                  indent=2))
    return MaterializeResult(
        metadata={**{k: str(v) for k, v in metadata.to_dict().items()},
                  "path": MetadataValue.path(str(survey.config.source))},
        data_version=DataVersion(version),
    )


class TilingConfig(Config):
    """Tile size, overlap, nodata filter and tile compression."""

    tile_size: int = Field(128, description="Tile side in pixels, a multiple of 32.")
    stride: int | None = Field(None, description="Step between tiles (<= tile_size); default tile_size.")
    max_nodata_fraction: float = Field(0.5, description="Tiles with more nodata than this are skipped.")
    compress: Literal["none", "deflate", "lzw", "zstd"] = Field(
        "none", description="Tile GeoTIFF compression; 'none' is the fast path.")


@asset(partitions_def=survey_partitions, group_name="survey", kinds={"geotiff", "parquet"},
       deps=[raw_survey], code_version="2", automation_condition=on_new_data(), pool=CPU_POOL, op_tags=heavy_step_tags())
def survey_tiles(context: AssetExecutionContext, config: TilingConfig, data_store: DataStore) -> MaterializeResult:
    """GeoTIFF tiles of the image (and of DEM terrain bands), with a GeoParquet tile index."""
    layout = data_store.layout
    survey_id = context.partition_key
    spec = TilingSpec(config.tile_size, config.stride, config.max_nodata_fraction, config.compress)
    survey = open_survey(layout.raw_survey(survey_id))
    with atomic_directory(layout.tiles(survey_id)) as staging:
        index = survey.tile(staging, spec, LogProgress(f"tiling {survey_id}", context.log.info, "tiles"))
        TileIndex.validate(index)
        index.to_parquet(staging / TILE_INDEX, index=False)
        # The scene's files (not its labels: a label edit leaves the tiles and the object-oriented
        # labels made from them as they are) and the tiling.
        scene_version = json.loads(layout.survey_metadata(survey_id).read_text())["scene_version"]
        version = DataVersion(combined_version(scene_version, fingerprint([staging / TILE_INDEX])))
    return MaterializeResult(data_version=version, metadata={
        "kind": survey.kind, "n_tiles": len(index), "tile_size": spec.tile_size, "stride": spec.step,
        "crs": str(index.crs), "nodata_fraction": float(index["nodata_fraction"].mean()),
        "path": MetadataValue.path(str(layout.tiles(survey_id))),
    })


class LabelConfig(Config):
    """The empty-tile filter of the labelled set (1.0 keeps every tile without landslide)."""

    min_landslide_fraction: float = Field(0.0, description="A tile with at most this landslide share is empty.")
    keep_empty_fraction: float = Field(1.0, description="Share of empty tiles kept for training (seeded).")
    seed: int = Field(0, description="Seed of the choice of empty tiles to keep.")


@asset(partitions_def=survey_partitions, group_name="labels", kinds={"geotiff", "parquet"},
       deps=[raw_survey, survey_tiles], code_version="2", automation_condition=on_new_data())
def manual_labels(context: AssetExecutionContext, config: LabelConfig, data_store: DataStore) -> MaterializeResult:
    """Landslide masks on every tile's grid: a scene's polygons rasterized (pixel centres inside;
    Labelme as Labelme draws), or a tile data set's masks decoded and cut like its images.

    A survey without labels is a survey to map, not to train on: it gets no label masks (those of
    an earlier run, when its labels were removed since, are deleted) and the training set leaves it out.
    """
    layout = data_store.layout
    survey_id = context.partition_key
    survey = open_survey(layout.raw_survey(survey_id))
    if not survey.has_labels:
        # Labels removed from the survey: its old masks go too, so it also leaves the training set.
        removed = remove_atomically(layout.labels(LabelSource.MANUAL, survey_id))
        context.log.warning(f"survey {survey_id} has no labels: no manual labels"
                            + (" (its earlier label masks were removed)" if removed else ""))
        return MaterializeResult(metadata={"labelled": False, "removed_earlier_labels": removed},
                                 data_version=DataVersion("unlabelled"))
    index = gpd.read_parquet(layout.tiles(survey_id) / TILE_INDEX)
    with atomic_directory(layout.labels(LabelSource.MANUAL, survey_id)) as staging:
        labelled = survey.label(index, staging)
        labelled = drop_empty_tiles(labelled, staging / MASK_FOLDER, config.min_landslide_fraction,
                                    config.keep_empty_fraction, config.seed)
        TileIndex.validate(labelled)
        labelled.to_parquet(staging / LABEL_INDEX, index=False)
        version = DataVersion(fingerprint([layout.survey_metadata(survey_id), layout.tiles(survey_id) / TILE_INDEX,
                                           staging / LABEL_INDEX]))
    return MaterializeResult(data_version=version, metadata={
        "labelled": True, "n_tiles": len(labelled), "dropped_empty_tiles": len(index) - len(labelled),
        "landslide_fraction": float(labelled["landslide_fraction"].mean()),
        "tiles_with_landslides": int((labelled["landslide_fraction"] > config.min_landslide_fraction).sum()),
    })

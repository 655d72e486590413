"""Survey-level assets, one partition per survey: raw survey -> tiles -> manual labels."""

import json

import geopandas as gpd
from dagster import AssetExecutionContext, Config, DataVersion, MaterializeResult, MetadataValue, asset

from landslide_pipeline.defs.partitions import survey_partitions
from landslide_pipeline.defs.resources import DataStore
from landslide_pipeline.geo.labels import read_label_polygons, write_label_masks
from landslide_pipeline.geo.survey import find_survey_files, inspect_survey, survey_fingerprint
from landslide_pipeline.geo.tiling import TilingSpec, tile_survey
from landslide_pipeline.schemas import TileIndex
from landslide_pipeline.storage import atomic_directory, atomic_file

TILE_INDEX = "tiles.parquet"
LABEL_INDEX = "labels.parquet"

@asset(partitions_def=survey_partitions, group_name="survey", kinds={"geotiff"}, code_version="1")
def raw_survey(context: AssetExecutionContext, data_store: DataStore) -> MaterializeResult:
    """The survey folder's files, validated: CRS, size, bands, resolution, DEM coverage, labels.

    Its data version is a hash of the files' contents, so replacing a survey's files marks
    exactly that survey's downstream partitions stale.
    """
    layout = data_store.layout
    files = find_survey_files(layout.raw_survey(context.partition_key))
    metadata = inspect_survey(context.partition_key, files)
    with atomic_file(layout.survey_metadata(context.partition_key)) as tmp:
        tmp.write_text(json.dumps(metadata.to_dict(), indent=2))
    return MaterializeResult(
        metadata={**{k: str(v) for k, v in metadata.to_dict().items()},
                  "path": MetadataValue.path(str(files.image.parent))},
        data_version=DataVersion(survey_fingerprint(files)),
    )

class TilingConfig(Config):
    """Tile size and overlap; ``stride`` defaults to the tile size (no overlap)."""

    tile_size: int = 128
    stride: int | None = None
    max_nodata_fraction: float = 0.5

@asset(partitions_def=survey_partitions, group_name="survey", kinds={"geotiff", "parquet"},
       deps=[raw_survey], code_version="1")
def survey_tiles(context: AssetExecutionContext, config: TilingConfig, data_store: DataStore) -> MaterializeResult:
    """GeoTIFF tiles of the image (and of DEM elevation + slope), with a GeoParquet tile index."""
    layout = data_store.layout
    survey_id = context.partition_key
    spec = TilingSpec(config.tile_size, config.stride, config.max_nodata_fraction)
    with atomic_directory(layout.tiles(survey_id)) as staging:
        index = tile_survey(survey_id, find_survey_files(layout.raw_survey(survey_id)), staging, spec)
        TileIndex.validate(index)
        index.to_parquet(staging / TILE_INDEX, index=False)
    return MaterializeResult(metadata={
        "n_tiles": len(index), "tile_size": spec.tile_size, "stride": spec.step, "crs": str(index.crs),
        "path": MetadataValue.path(str(layout.tiles(survey_id))),
    })

@asset(partitions_def=survey_partitions, group_name="labels", kinds={"geotiff", "parquet"},
       deps=[survey_tiles], code_version="1")
def manual_labels(context: AssetExecutionContext, data_store: DataStore) -> MaterializeResult:
    """Hand-drawn landslide polygons rasterized onto every tile's grid (pixel centres inside).

    A survey without ``landslides.gpkg`` is a survey to map, not to train on: it gets no label
    masks and the training set leaves it out.
    """
    layout = data_store.layout
    survey_id = context.partition_key
    files = find_survey_files(layout.raw_survey(survey_id))
    if files.labels is None:
        context.log.warning(f"survey {survey_id} has no landslides.gpkg: no manual labels")
        return MaterializeResult(metadata={"labelled": False})
    index = gpd.read_parquet(layout.tiles(survey_id) / TILE_INDEX)
    polygons = read_label_polygons(files.labels, index.crs)
    with atomic_directory(layout.labels("manual", survey_id)) as staging:
        labelled = write_label_masks(index, polygons, staging)
        labelled.to_parquet(staging / LABEL_INDEX, index=False)
    return MaterializeResult(metadata={
        "labelled": True, "n_polygons": len(polygons), "n_tiles": len(labelled),
        "landslide_fraction": float(labelled["landslide_fraction"].mean()),
        "tiles_with_landslides": int((labelled["landslide_fraction"] > 0).sum()),
    })

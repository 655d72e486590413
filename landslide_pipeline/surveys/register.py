"""Adding a survey that lies elsewhere, and the state of every survey: ``landslide survey add|list``.

``add_survey`` writes ``data/raw/<id>/survey.toml`` reading the image (and DEM, labels) in place,
checks that the survey opens and its image reads, then marks it ``READY`` (last, as
``surveys.arrivals`` asks): nothing is copied, and nothing is left behind when a check fails.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.layout import MAP_FACTS, SURVEY_CONFIG, DataLayout, LabelSource, validate_survey_id
from landslide_pipeline.reports.markdown import toml_document
from landslide_pipeline.storage import atomic_directory
from landslide_pipeline.surveys.arrivals import READY_MARKER, find_arrivals
from landslide_pipeline.surveys.registry import open_survey


@dataclass(frozen=True)
class NewSurvey:
    """What ``landslide survey add`` was given.

    Attributes:
        image: The orthomosaic GeoTIFF.
        dem: Its DEM, or None.
        labels: Landslide polygons (GeoPackage, GeoJSON, shapefile, Labelme JSON), or None.
        site: The site the survey shows (change detection compares a site's surveys by date).
        date: ISO date of the flight.
        role: ``train``, ``test`` or ``map``.
    """

    image: Path
    dem: Path | None = None
    labels: Path | None = None
    site: str | None = None
    date: str | None = None
    role: str = "train"

    def __post_init__(self) -> None:
        if self.date is not None:
            try:
                datetime.date.fromisoformat(self.date)
            except ValueError as err:
                raise ValueError(f"the date must be an ISO date like 2026-05-14, got {self.date!r}") from err
        if self.role not in ("train", "test", "map"):
            raise ValueError(f"the role must be train, test or map, got {self.role!r}")

    def toml(self) -> str:
        """The ``survey.toml`` text: the image's folder as ``source``, the other files relative to it."""
        source = self.image.resolve().parent

        def relative(path: Path) -> str:
            return os.path.relpath(path.resolve(), source)

        config: dict[str, Any] = {"source": str(source), "image": self.image.name, "role": self.role}
        if self.dem is not None:
            config["dem"] = relative(self.dem)
        if self.site is not None:
            config["site"] = self.site
        if self.date is not None:
            config["date"] = datetime.date.fromisoformat(self.date).isoformat()
        if self.labels is not None:
            config["labels"] = {"path": relative(self.labels)}
        return f"# written by `landslide survey add` on {datetime.date.today().isoformat()}\n" + toml_document(config)


def add_survey(layout: DataLayout, survey_id: str, survey: NewSurvey) -> Path:
    """Writes ``data/raw/<survey_id>`` for files that stay where they are, and marks it ready.

    Returns:
        The survey folder.

    Raises:
        InvalidSurveyIdError: the id is not a folder name.
        SurveyInputError: the folder exists, a file is missing, or the survey does not open or read.
        ValueError: ``date`` is not an ISO date.
    """
    folder = layout.raw_survey(validate_survey_id(survey_id))
    if folder.exists():
        raise SurveyInputError(folder, "already exists: pick another --id, or remove the folder first")
    for path in (survey.image, survey.dem, survey.labels):
        if path is not None and not path.is_file():
            raise SurveyInputError(path, "no such file")
    with atomic_directory(folder) as staging:
        (staging / SURVEY_CONFIG).write_text(survey.toml())
        opened = open_survey(staging, survey_id)
        opened.inspect()  # reads the image's header and checks the DEM covers it: a bad file fails here
    (folder / READY_MARKER).touch()  # last: the sensor reads only marked folders
    return folder


def survey_states(layout: DataLayout) -> pd.DataFrame:
    """One row per survey folder of ``data/raw``: ready or not (and why skipped), and which of its
    outputs exist (tiles, manual and object-oriented labels, map with its landslide count)."""
    arrivals = find_arrivals(layout.raw)
    folders = sorted(p.name for p in layout.raw.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if layout.raw.is_dir() else []
    rows = []
    for survey_id in folders:
        facts_file = layout.map(survey_id) / MAP_FACTS
        facts = json.loads(facts_file.read_text()) if facts_file.is_file() else {}
        state = "ready" if survey_id in arrivals.ready else arrivals.skipped.get(survey_id, "waiting for READY")
        rows.append({"survey": survey_id, "state": state,
                     "tiles": layout.tile_index(survey_id).exists(),
                     "manual_labels": layout.label_index(LabelSource.MANUAL, survey_id).exists(),
                     "obia_labels": layout.label_index(LabelSource.OBIA, survey_id).exists(),
                     "mapped": bool(facts), "landslides": facts.get("n_landslides"),
                     "model": f"{facts['alias']} v{facts['version']}" if facts else None})
    return pd.DataFrame(rows, columns=["survey", "state", "tiles", "manual_labels", "obia_labels", "mapped",
                                       "landslides", "model"])

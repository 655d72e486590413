"""Which survey folders under ``data/raw`` are complete and ready to be read.

A survey is copied into ``data/raw/<survey_id>/`` and announced by creating an empty file
``READY`` in that folder *last*, once every other file is in place. Without the marker the folder
is never read, so a half-copied survey cannot start a run. Touching ``READY`` again (a newer
modification time) announces replaced files: the survey is read again.
"""

from __future__ import annotations

from pathlib import Path

from landslide_pipeline.layout import InvalidSurveyIdError, validate_survey_id

READY_MARKER = "READY"


def ready_surveys(raw_dir: Path) -> dict[str, int]:
    """Survey id -> modification time (ns) of its READY marker, for every marked folder.

    Folders whose name is not a valid survey id are ignored (and cannot become partitions).
    """
    if not raw_dir.is_dir():
        return {}
    ready = {}
    for folder in sorted(raw_dir.iterdir()):
        marker = folder / READY_MARKER
        if not marker.is_file():
            continue
        try:
            validate_survey_id(folder.name)
        except InvalidSurveyIdError:
            continue
        ready[folder.name] = marker.stat().st_mtime_ns
    return ready


def surveys_to_run(ready: dict[str, int], seen: dict[str, int]) -> list[str]:
    """The ready surveys that are new or whose marker is newer than when last seen."""
    return [survey_id for survey_id, stamp in ready.items() if seen.get(survey_id) != stamp]

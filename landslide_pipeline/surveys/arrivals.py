"""Which survey folders under ``data/raw`` are complete and ready to be read.

A survey is copied into ``data/raw/<survey_id>/`` and announced by creating an empty file
``READY`` in that folder *last*, once every other file is in place. Without the marker the folder
is never read, so a half-copied survey cannot start a run. Touching ``READY`` again (a newer
modification time) announces replaced files: the survey is read again.

A marked folder is skipped, with the reason reported (the sensor logs it), when its name is not
a valid survey id, or when it is a symbolic link that leads out of ``data/raw``: a drop folder
shared with others must not let a link make the pipeline read (and hash, tile, copy) files from
elsewhere on the machine. Links between folders inside ``data/raw`` are followed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from landslide_pipeline.layout import InvalidSurveyIdError, validate_survey_id

READY_MARKER = "READY"


@dataclass(frozen=True)
class Arrivals:
    """What a look at ``data/raw`` found.

    Attributes:
        ready: Survey id -> modification time (ns) of its READY marker.
        skipped: Folder name -> why a marked folder is not read.
    """

    ready: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def find_arrivals(raw_dir: Path) -> Arrivals:
    """The marked survey folders of ``raw_dir``, and the marked folders skipped with why."""
    if not raw_dir.is_dir():
        return Arrivals()
    arrivals = Arrivals()
    for folder in sorted(raw_dir.iterdir()):
        marker = folder / READY_MARKER
        if not marker.is_file():
            continue
        reason = _why_skipped(folder, raw_dir)
        if reason is not None:
            arrivals.skipped[folder.name] = reason
        else:
            arrivals.ready[folder.name] = marker.stat().st_mtime_ns
    return arrivals


def ready_surveys(raw_dir: Path) -> dict[str, int]:
    """Survey id -> modification time (ns) of its READY marker, for every marked folder that is read."""
    return find_arrivals(raw_dir).ready


def surveys_to_run(ready: dict[str, int], seen: dict[str, int]) -> list[str]:
    """The ready surveys that are new or whose marker is newer than when last seen."""
    return [survey_id for survey_id, stamp in ready.items() if seen.get(survey_id) != stamp]


def _why_skipped(folder: Path, raw_dir: Path) -> str | None:
    try:
        validate_survey_id(folder.name)
    except InvalidSurveyIdError as err:
        return str(err)
    if folder.is_symlink() and not folder.resolve().is_relative_to(raw_dir.resolve()):
        return f"a symbolic link to {folder.resolve()}, outside {raw_dir}: copy the survey into {raw_dir} instead"
    return None

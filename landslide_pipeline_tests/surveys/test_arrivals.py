import os

from landslide_pipeline.surveys.arrivals import READY_MARKER, find_arrivals, ready_surveys, surveys_to_run


def test_only_folders_with_a_ready_marker_and_a_valid_id_are_ready(tmp_path):
    (tmp_path / "pit_2025").mkdir()
    (tmp_path / "pit_2025" / "image.tif").write_bytes(b"half copied")  # no marker yet
    (tmp_path / "pit_2024").mkdir()
    (tmp_path / "pit_2024" / READY_MARKER).touch()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / READY_MARKER).touch()
    assert list(ready_surveys(tmp_path)) == ["pit_2024"]
    assert ready_surveys(tmp_path / "absent") == {}


def test_a_survey_runs_when_new_and_again_when_its_marker_is_touched(tmp_path):
    (tmp_path / "pit").mkdir()
    marker = tmp_path / "pit" / READY_MARKER
    marker.touch()
    first = ready_surveys(tmp_path)
    assert surveys_to_run(first, {}) == ["pit"]
    assert surveys_to_run(first, first) == []
    stamp = first["pit"] + 10**9
    os.utime(marker, ns=(stamp, stamp))
    assert surveys_to_run(ready_surveys(tmp_path), first) == ["pit"]


def test_links_out_of_the_raw_folder_are_skipped_with_a_reason_links_inside_are_read(tmp_path):
    raw, outside = tmp_path / "raw", tmp_path / "secrets"
    for folder in (raw / "pit", outside):
        folder.mkdir(parents=True)
        (folder / READY_MARKER).touch()
    (raw / "escape").symlink_to(outside, target_is_directory=True)
    (raw / "alias").symlink_to(raw / "pit", target_is_directory=True)
    arrivals = find_arrivals(raw)
    assert sorted(arrivals.ready) == ["alias", "pit"]
    assert list(arrivals.skipped) == ["escape"] and "outside" in arrivals.skipped["escape"]

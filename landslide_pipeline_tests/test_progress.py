"""Progress of the long steps: the reporters, and tiling, object-oriented labelling and mapping calling them."""

from pathlib import Path

from landslide_pipeline.geo.scene import SceneFiles
from landslide_pipeline.geo.tiling import TilingSpec, tile_scene
from landslide_pipeline.labelling.obia import label_scene
from landslide_pipeline.mapping.predict import PredictionSpec, map_scene
from landslide_pipeline.progress import LogProgress, stage
from landslide_pipeline.synthetic import SyntheticSurveySpec, build_scene, generate_survey
from landslide_pipeline_tests.labelling.conftest import PIT_SPEC, array_source
from landslide_pipeline_tests.labelling.test_obia import with_window
from landslide_pipeline_tests.test_cli_product import saved_model


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))


def check_complete(calls: list[tuple[int, int]]) -> None:
    """Counts that only grow, one total, and a last call at the end."""
    assert calls, "no progress reported"
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and len({t for _, t in calls}) == 1
    assert calls[-1][0] == calls[-1][1] > 0


def test_log_progress_writes_a_line_per_tenth_with_rate_and_eta():
    lines, now = [], [0.0]
    report = LogProgress("mapping pit", lines.append, "strips", clock=lambda: now[0])
    for done in range(1, 101):
        now[0] = done * 0.5  # two strips a second
        report(done, 100)
    assert len(lines) == 10
    assert lines[0] == "mapping pit: 10/100 strips (10 %), 2.0 strips/s, about 45 s left"
    assert lines[-1].endswith("(100 %), 2.0 strips/s, done")


def test_log_progress_reports_the_end_of_a_short_job_once():
    lines = []
    report = LogProgress("tiling", lines.append, "tiles", clock=lambda: 1.0)
    report(3, 3)
    assert len(lines) == 1 and "3/3 tiles (100 %)" in lines[0]


def test_stages_share_out_the_whole():
    recorder = Recorder()
    stage(recorder, 0, 2)(5, 10)
    stage(recorder, 1, 2)(10, 10)
    assert recorder.calls == [(5, 20), (20, 20)]


def test_tiling_reports_every_tile_position(tmp_path):
    survey = generate_survey(tmp_path / "pit", SyntheticSurveySpec(size_px=256, seed=1))

    recorder = Recorder()
    tile_scene("pit", SceneFiles((survey.image,), survey.dem), tmp_path / "tiles", TilingSpec(64), progress=recorder)
    check_complete(recorder.calls)
    assert recorder.calls[-1] == (16, 16) and len(recorder.calls) == 4  # 4 x 4 tiles, a row at a time


def test_object_oriented_labelling_reports_both_passes_over_the_windows():
    recorder = Recorder()
    with label_scene(array_source(build_scene(PIT_SPEC)), with_window(256), progress=recorder):
        pass
    check_complete(recorder.calls)
    assert recorder.calls[-1] == (8, 8)  # 4 windows of 256 px, twice
    assert (4, 8) in recorder.calls  # the first pass ends half way


def test_mapping_reports_each_strip_of_windows(tmp_path):
    survey = generate_survey(tmp_path / "pit", SyntheticSurveySpec(size_px=256, seed=2))

    model = saved_model(tmp_path / "model", ["red", "green", "blue"])
    recorder = Recorder()
    map_scene(SceneFiles((survey.image,)), Path(model), tmp_path / "map", PredictionSpec(window=128, overlap=32),
              progress=recorder)
    check_complete(recorder.calls)
    assert recorder.calls[0] == (0, recorder.calls[-1][1])

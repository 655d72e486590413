import pytest

from landslide_pipeline.storage import atomic_directory, atomic_file


def test_directory_replaced_only_on_success(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "a.txt").write_text("half")
            raise RuntimeError("boom")
    assert (target / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_file_written_atomically(tmp_path):
    target = tmp_path / "meta.json"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("{")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_file(target) as tmp:
        assert tmp.suffix == ".json"
        tmp.write_text("{}")
    assert target.read_text() == "{}"


def test_survey_ids_cannot_escape_the_data_folder(tmp_path):
    from landslide_pipeline.layout import DataLayout, InvalidSurveyIdError

    layout = DataLayout(tmp_path)
    for bad in ["../etc", "a/b", "..", ".hidden", "a\\b", ""]:
        with pytest.raises(InvalidSurveyIdError):
            layout.raw_survey(bad)
    assert layout.raw_survey("mine_2024-05.v2") == tmp_path / "raw" / "mine_2024-05.v2"

import inspect
from pathlib import Path

from landslide_pipeline.layout import DataLayout


def test_every_output_path_lies_in_a_generated_folder_or_raw():
    """``landslide clean`` (make clean-data) removes ``GENERATED``: a new output folder must join it."""
    layout = DataLayout(Path("/data"))
    arguments = {"survey_id": "s", "source": "manual", "architecture": "unet", "fold": 0, "run_key": "k", "site": "pit", "name": "cv",
                 "experiment": "e"}
    tops = set()
    for name, member in inspect.getmembers(DataLayout):
        if name.startswith("_") or name == "generated":
            continue
        if isinstance(member, property):
            path = getattr(layout, name)
        elif inspect.isfunction(member):
            parameters = list(inspect.signature(member).parameters)[1:]
            path = member(layout, *(arguments[p] for p in parameters))
        else:
            continue
        if isinstance(path, Path) and path != layout.root:
            tops.add(path.relative_to(layout.root).parts[0])
    assert tops - {"raw"} <= set(DataLayout.GENERATED) and len(tops) > 10

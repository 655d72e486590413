from landslide_pipeline.defs import build_definitions
from landslide_pipeline.defs.configuration import DOC, asset_configs, configuration_markdown
from landslide_pipeline.settings import PipelineSettings


def test_the_committed_configuration_page_is_what_the_code_says():
    assert DOC.read_text() == configuration_markdown(build_definitions(PipelineSettings())), \
        "docs/configuration.md is out of date: run `make docs`"


def test_every_config_field_is_documented_and_every_configurable_asset_listed():
    configs = asset_configs(build_definitions(PipelineSettings()))
    names = {name for names, _ in configs for name in names}
    assert {"survey_tiles", "training_set", "trained_model", "fold_ensembles", "champion_model",
            "landslide_map", "band_comparison"} <= names
    undocumented = [f"{config.__name__}.{field}" for _, config in configs
                    for field, info in config.model_fields.items() if not info.description]
    assert undocumented == []

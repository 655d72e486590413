"""The configuration reference, ``docs/configuration.md``, generated from the code so it cannot drift.

``python -m landslide_pipeline.defs.configuration`` (``make docs``) writes it; ``--check`` exits 1
when the committed page differs from what the code says (a test runs the same comparison). Every
asset's run config comes from its ``dagster.Config`` class: field, type, default and description,
as the Dagster launchpad shows them; the environment variables from ``settings.ENVIRONMENT``.
"""

import argparse
import inspect
import sys
import typing
from pathlib import Path

from dagster import AssetsDefinition, Config, ConfigurableResource, Definitions
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from landslide_pipeline.settings import ENVIRONMENT, PipelineSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
HEADER = """# Configuration

Generated from the code by `python -m landslide_pipeline.defs.configuration` (`make docs`); a test
fails when this page and the code disagree. Run config is edited per run in the Dagster launchpad,
or passed by `landslide train`, `make demo` and the benchmarks.
"""


def asset_configs(defs: Definitions) -> list[tuple[list[str], type[Config]]]:
    """Each ``Config`` class that an asset takes, with the names of the assets that take it, in
    the order the assets were defined."""
    found: dict[type[Config], list[str]] = {}
    for asset_def in defs.assets or []:
        if not isinstance(asset_def, AssetsDefinition):
            continue
        compute_fn = asset_def.op.compute_fn
        # An @asset's op holds its function in a (not callable) DecoratedOpFunction; a bare op holds the function.
        function = compute_fn if callable(compute_fn) else compute_fn.decorated_fn
        for parameter in inspect.signature(function).parameters.values():
            annotation = parameter.annotation
            if inspect.isclass(annotation) and issubclass(annotation, Config) \
                    and not issubclass(annotation, ConfigurableResource):
                found.setdefault(annotation, []).append(asset_def.key.to_user_string())
    return [(names, config) for config, names in found.items()]


def _type_name(annotation: object) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{v}`" for v in typing.get_args(annotation))
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    text = text or str(annotation).replace("typing.", "")
    return text.replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        return "(required)"
    return f"`{field.default}`"


def config_table(config: type[Config]) -> str:
    """A Markdown table of a Config class's fields."""
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, field in config.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
    return "\n".join(rows)


def configuration_markdown(defs: Definitions) -> str:
    """The whole page: environment variables, then each asset's run config."""
    lines = [HEADER, "## Environment", "",
             "Read when the code location loads; they shape the asset graph (partitions).", "",
             "| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | `{default}` | {meaning} |" for name, (default, meaning) in ENVIRONMENT.items()]
    lines += ["", "## Resources", "", "Where the data and the MLflow store live (set in `defs.build_definitions`).", ""]
    for name, resource in sorted((defs.resources or {}).items()):
        lines += [f"### `{name}`", "", inspect.cleandoc(type(resource).__doc__ or ""), "", config_table(type(resource)), ""]
    lines += ["## Run config of the assets", ""]
    for names, config in asset_configs(defs):
        title = ", ".join(f"`{n}`" for n in names)
        lines += [f"### {title}", "", inspect.cleandoc(config.__doc__ or ""), "", config_table(config), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Writes docs/configuration.md, or with --check exits 1 when it is out of date."""
    parser = argparse.ArgumentParser(description="Write (or check) docs/configuration.md.")
    parser.add_argument("--check", action="store_true", help="exit 1 when the page is out of date")
    args = parser.parse_args(argv)
    from landslide_pipeline.defs import build_definitions

    text = configuration_markdown(build_definitions(PipelineSettings()))
    if args.check:
        current = DOC.read_text() if DOC.is_file() else ""
        if current != text:
            print(f"{DOC} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

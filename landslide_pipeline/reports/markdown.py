"""Markdown reports of an experiment: tables, plots, the config that produced them and links to
the MLflow runs.

A report is assembled with ``MarkdownReport`` and written atomically; image links are written
relative to the report's folder, so the folder can be moved or published as a whole.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from landslide_pipeline.storage import atomic_file

#: Where ``mlflow ui`` serves by default (the README's ``make mlflow-ui``).
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class MlflowLinks:
    """Builds links into the MLflow UI for the runs of one experiment.

    A tracking server (``http(s)://`` tracking URI) serves its own UI; a SQLite or file store
    has none, so its runs are linked on ``ui_base_url``, where ``mlflow ui`` is expected to run.

    Attributes:
        tracking_uri: The tracking URI the runs were logged to.
        experiment_id: The MLflow experiment holding the runs.
        ui_base_url: The UI's address; default: the tracking server, else ``DEFAULT_MLFLOW_UI``.
    """

    tracking_uri: str
    experiment_id: str
    ui_base_url: str | None = None

    @property
    def base_url(self) -> str:
        """The address of the MLflow UI, without a trailing slash."""
        if self.ui_base_url:
            return self.ui_base_url.rstrip("/")
        if self.tracking_uri.startswith(("http://", "https://")):
            return self.tracking_uri.rstrip("/")
        return DEFAULT_MLFLOW_UI

    def run_url(self, run_id: str) -> str:
        """``<base url>/#/experiments/<experiment id>/runs/<run id>``."""
        if not run_id:
            raise ValueError("an empty run id has no MLflow page")
        return f"{self.base_url}/#/experiments/{quote(str(self.experiment_id))}/runs/{quote(run_id)}"


def runs_from_table(table: pd.DataFrame,
                    label_columns: Sequence[str] = ("label_source", "architecture", "fold")) -> dict[str, str]:
    """The MLflow run of each model in an evaluation table, labelled by ``label_columns``.

    A model's validation and test rows share one run and give one entry; rows without a run id
    (models trained without MLflow) give none.

    Args:
        table: Rows with an ``mlflow_run_id`` column and the ``label_columns``.
        label_columns: Columns joined (with spaces) into each run's label, e.g. "manual unet 0".

    Returns:
        Label -> run id, in the table's order.
    """
    missing = [c for c in ["mlflow_run_id", *label_columns] if c not in table.columns]
    if missing:
        raise ValueError(f"runs_from_table: the table lacks column(s) {', '.join(map(repr, missing))}")
    runs: dict[str, str] = {}
    for row in table.drop_duplicates("mlflow_run_id").itertuples(index=False):
        run_id = str(row.mlflow_run_id)
        if run_id:
            runs[" ".join(str(getattr(row, c)) for c in label_columns)] = run_id
    return runs


def plain(value: Any) -> Any:
    """Paths as text and numpy scalars as Python ones; anything else unsupported is a TypeError
    (used as ``json.dumps``'s ``default``)."""
    if isinstance(value, (os.PathLike, PurePath)):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} cannot be written to a config block")


def toml_key(key: Any) -> str:
    """A TOML key: bare when it can be, else a quoted string."""
    if not isinstance(key, str):
        raise TypeError(f"config keys must be strings, got {key!r}")
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that TOML also forbids raw DEL."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007F")


def toml_value(value: Any, where: str) -> str:
    """One TOML value (inline tables inside arrays); ``where`` names the key in errors."""
    if value is None:
        raise TypeError(f"{where}: TOML has no null; leave the key out or render the config as JSON")
    if isinstance(value, (os.PathLike, PurePath, np.generic)):
        value = plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if np.isnan(value):
            return "nan"
        return repr(value) if np.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{toml_key(k)} = {toml_value(v, f'{where}.{k}')}" for k, v in value.items())
        return f"{{ {items} }}" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v, f"{where}[{i}]") for i, v in enumerate(value)) + "]"
    raise TypeError(f"{where}: {type(value).__name__} {value!r} cannot be written as TOML")


def toml_document(config: Mapping[str, Any]) -> str:
    """A TOML document of a config: scalars and arrays first, then one ``[table]`` per nested
    mapping (TOML requires that order).

    Raises:
        TypeError: a key is not a string, or a value is None or of an unsupported type.
    """
    lines: list[str] = []
    _toml_table(config, [], lines)
    return "\n".join(lines).strip("\n") + "\n"


def _toml_table(table: Mapping[str, Any], prefix: list[str], lines: list[str]) -> None:
    values = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if prefix and (values or not tables):
        lines += ["", f"[{'.'.join(toml_key(k) for k in prefix)}]"]
    for key, value in values.items():
        lines.append(f"{toml_key(key)} = {toml_value(value, '.'.join([*prefix, str(key)]))}")
    for key, value in tables.items():
        _toml_table(value, [*prefix, key], lines)


def escape_cell(value: Any) -> Any:
    """Text that stays inside one Markdown table cell (pipes escaped, line breaks flattened)."""
    if isinstance(value, str):
        return value.replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")
    return value


def link_target(path: Path, directory: Path) -> str:
    """``path`` as a URL relative to ``directory``: absolute paths are made relative, relative
    ones are taken as relative to the report already."""
    path = Path(path)
    relative = Path(os.path.relpath(path, directory)) if path.is_absolute() else path
    return quote(relative.as_posix())


class MarkdownReport:
    """A Markdown report, built block by block and written atomically.

    Example::

        report = MarkdownReport("Architectures")
        report.heading("Scores").table(summary).image(plot_path, "scores per architecture")
        report.config(config).run_links(MlflowLinks(uri, experiment_id), runs_from_table(table))
        report.write(reports_dir / "architectures.md")
    """

    def __init__(self, title: str) -> None:
        self.title = title
        # Blocks render against the report's folder, which is known only when it is written.
        self._blocks: list[Callable[[Path], str]] = []

    def _add(self, block: Callable[[Path], str]) -> MarkdownReport:
        self._blocks.append(block)
        return self

    def heading(self, text: str, level: int = 2) -> MarkdownReport:
        """A section heading (level 2 by default; the title is level 1)."""
        if not 1 <= level <= 6:
            raise ValueError(f"heading level must be 1..6, got {level}")
        return self._add(lambda _: f"{'#' * level} {text}")

    def paragraph(self, text: str) -> MarkdownReport:
        """A paragraph of Markdown text, written as given."""
        return self._add(lambda _: text.strip())

    def table(self, frame: pd.DataFrame, index: bool = False, floatfmt: str = ".3f") -> MarkdownReport:
        """A table (``DataFrame.to_markdown``), floats formatted with ``floatfmt``."""
        if frame.empty:
            return self._add(lambda _: "_(no rows)_")
        text = frame.map(escape_cell).to_markdown(index=index, floatfmt=floatfmt)
        return self._add(lambda _: text)

    def image(self, path: Path, alt: str) -> MarkdownReport:
        """An embedded image, linked relative to the report's folder (see ``link_target``)."""
        alt_text = alt.replace("[", "\\[").replace("]", "\\]")
        return self._add(lambda directory: f"![{alt_text}]({link_target(path, directory)})")

    def config(self, config: Mapping[str, Any], fmt: str = "toml") -> MarkdownReport:
        """The config that produced the results, as a fenced TOML or JSON block."""
        if fmt == "toml":
            text = toml_document(config)
        elif fmt == "json":
            text = json.dumps(config, indent=2, default=plain) + "\n"
        else:
            raise ValueError(f"config format must be 'toml' or 'json', got {fmt!r}")
        return self._add(lambda _: f"```{fmt}\n{text}```")

    def run_links(self, links: MlflowLinks, runs: Mapping[str, str]) -> MarkdownReport:
        """A table of MLflow run links, one per labelled run (see ``runs_from_table``)."""
        if not runs:
            return self._add(lambda _: "_(no MLflow runs)_")
        rows = [f"| {escape_cell(label)} | [{run_id}]({links.run_url(run_id)}) |" for label, run_id in runs.items()]
        return self._add(lambda _: "\n".join(["| model | MLflow run |", "|:---|:---|", *rows]))

    def render(self, directory: Path) -> str:
        """The report's Markdown, with image links relative to ``directory``."""
        blocks = [f"# {self.title}", *(block(Path(directory)) for block in self._blocks)]
        return "\n\n".join(blocks) + "\n"

    def write(self, path: Path) -> Path:
        """Writes the report to ``path`` atomically and returns the path."""
        path = Path(path)
        text = self.render(path.parent.resolve())
        with atomic_file(path) as staging:
            staging.write_text(text, encoding="utf-8")
        return path

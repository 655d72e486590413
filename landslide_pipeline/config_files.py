"""Strict reading of the project's TOML config files (survey.toml, data set adapters, OBIA rules).

Each TOML table is a pydantic model deriving from ``TomlTable``: unknown keys, wrong types and
wrong values are refused, and every problem becomes a ``SurveyInputError`` that names the file and
the key, ``[table].key`` (``[labels].names``, ``[classes[0].conditions[1]].op``) or a top-level
``key``, then what is wrong::

    survey.toml: [labels].nmaes: unknown key; bands[0]: Input should be a valid integer, got 'x'
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StrictInt, StrictStr, ValidationError
from pydantic_core import ErrorDetails

from landslide_pipeline.geo.errors import SurveyInputError

Table = TypeVar("Table", bound="TomlTable")
Location = tuple[int | str, ...]

_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_MISSING = ("missing", "missing_argument")
_NOT_A_TABLE = ("model_type", "model_attributes_type", "dataclass_type", "dict_type")


class TomlTable(BaseModel):
    """A TOML table: immutable, and refusing keys it does not define."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_or_many(value: Any) -> Any:
    return value if isinstance(value, list | tuple) else [value]


#: ``Annotated[tuple[...], ONE_OR_MANY]``: a single value counts as a list of one.
ONE_OR_MANY = BeforeValidator(_one_or_many)


def _one_based(bands: tuple[int, ...]) -> tuple[int, ...] | None:
    if bands and min(bands) < 1:
        raise ValueError(f"must be 1-based band numbers, got {list(bands)}")
    return bands or None


#: Strings, or a single string.
Names = Annotated[tuple[StrictStr, ...], ONE_OR_MANY]
#: 1-based band numbers, or a single one; an empty list is None (every band).
BandNumbers = Annotated[tuple[StrictInt, ...], ONE_OR_MANY, AfterValidator(_one_based)]


def read_toml(path: Path) -> dict[str, Any]:
    """Parses a TOML file; syntax errors name the file and the line.

    Raises:
        SurveyInputError: the file is not valid (UTF-8) TOML.
    """
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SurveyInputError(path, f"invalid TOML ({err})") from err


def validate(model: type[Table], data: Mapping[str, Any], path: Path | str, where: Location = ()) -> Table:
    """``data`` as a ``model``; ``where`` is the location of its table in the file (top level: empty).

    Raises:
        SurveyInputError: every problem, each with its key path.
    """
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise SurveyInputError(path, describe(err, where)) from err


def load(model: type[Table], path: Path) -> Table:
    """Reads a TOML file as a ``model`` (see ``read_toml`` and ``validate``)."""
    return validate(model, read_toml(path), path)


def describe(error: ValidationError, where: Location = ()) -> str:
    """Every problem of a validation error as ``key path: problem``, joined by semicolons."""
    return "; ".join(_describe_one(problem, where) for problem in error.errors())


def key_path(location: Location) -> str:
    """``("labels", "names", 0)`` -> ``[labels].names[0]``: the table in brackets, then the key."""
    last = max((i for i, part in enumerate(location) if isinstance(part, str)), default=0)
    table, key = _dotted(location[:last]), _dotted(location[last:])
    return f"[{table}].{key}" if table else key


def _dotted(location: Location) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")


def _describe_one(error: ErrorDetails, where: Location) -> str:
    where_key = key_path(where + tuple(error["loc"]))
    problem = _problem(error)
    return f"{where_key}: {problem}" if where_key else problem


def _problem(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind in _UNKNOWN:
        return "unknown key"
    if kind in _MISSING:
        return "missing (required)"
    if kind == "value_error":
        return error["msg"].removeprefix("Value error, ")
    if kind in _NOT_A_TABLE:
        text = "must be a table"
    elif kind == "literal_error":
        text = f"must be {error.get('ctx', {}).get('expected')}"
    else:
        text = error["msg"]
    return f"{text}, got {error['input']!r}"

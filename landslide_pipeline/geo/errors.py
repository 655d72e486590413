"""Errors raised for bad survey input; each names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class SurveyInputError(ValueError):
    """A survey file is missing, unreadable or inconsistent with the rest of the survey."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem

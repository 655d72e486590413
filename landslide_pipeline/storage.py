"""Atomic writes: an output is either complete or absent, never half-written.

Every asset writes into a temporary sibling (same folder, so the final rename stays on one
file system) and renames it into place only once it is complete. A failure midway removes the
temporary path and leaves any earlier complete output untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yields a temporary folder that replaces ``target`` when the block succeeds.

    Args:
        target: The folder to create or replace.

    Yields:
        An empty temporary folder beside ``target`` to write into.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        if target.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, trash / target.name)
            os.replace(staging, target)
            shutil.rmtree(trash)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yields a temporary file path that replaces ``target`` when the block succeeds.

    The temporary name keeps ``target``'s suffix so that writers which pick a format from the
    extension (GDAL, pandas) still do so.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.tmp-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    staging = Path(name)
    try:
        yield staging
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)

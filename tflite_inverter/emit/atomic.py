"""Atomic output: write into a temporary sibling, then rename into place.

An existing output is never replaced unless ``overwrite`` is true; a failed write leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputExistsError


def refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")


@contextlib.contextmanager
def atomic_path(path: Path, *, overwrite: bool, directory: bool) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it to ``path``."""
    path = Path(path)
    refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_root = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    temp = temp_root / path.name
    try:
        if directory:
            temp.mkdir()
        yield temp
        refuse_existing(path, overwrite)
        if path.exists():
            trash = temp_root / ".replaced"
            os.replace(path, trash)
            os.replace(temp, path)
        else:
            os.replace(temp, path)
    finally:
        shutil.rmtree(temp_root, ignore_errors=True)


def write_bytes_atomic(path: Path, data: bytes, *, overwrite: bool) -> Path:
    with atomic_path(path, overwrite=overwrite, directory=False) as temp:
        temp.write_bytes(data)
    return Path(path)

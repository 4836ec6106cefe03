"""SavedModel emitter: a module's variables plus one serving signature per TFLite signature."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf

from .atomic import atomic_path


def save_saved_model(module: tf.Module, signatures: Mapping[str, Any], path: Path, *, overwrite: bool = False) -> Path:
    """Write ``module`` with ``signatures`` (key -> concrete function) to ``path``, atomically."""
    with atomic_path(path, overwrite=overwrite, directory=True) as temp:
        tf.saved_model.save(module, str(temp), signatures=dict(signatures))
    return path

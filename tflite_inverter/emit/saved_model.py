"""SavedModel emitter: the module's variables plus one serving signature per TFLite signature."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

from .atomic import atomic_path

if TYPE_CHECKING:
    from ..inverted import InvertedModel


def save_saved_model(inverted: "InvertedModel", path: Path, *, overwrite: bool = False) -> Path:
    signatures = dict(inverted.concrete_functions)
    with atomic_path(path, overwrite=overwrite, directory=True) as temp:
        tf.saved_model.save(inverted.module, str(temp), signatures=signatures)
    return path

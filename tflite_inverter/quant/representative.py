"""Calibration (representative) data for re-quantization, from arrays, ``.npy`` files, image folders
or callables, shaped for the model's float inputs.

Every source becomes a list of samples; a sample is a list of arrays in input order, each with a
batch dimension of 1. Images are resized to the input's height and width and normalised as
``(pixel - mean) / std`` with the numbers the user gives (no eval'd strings), or, when the user
gives none, with the ones the model's TFLite metadata states (:func:`image_normalization`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TfliteInverterError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
Sample = list  # one array per model input, in input order


def load_images(folder: str | os.PathLike, height: int, width: int, *, mean: float | Sequence[float] = 0.0,
                std: float | Sequence[float] = 1.0, limit: int | None = None) -> np.ndarray:
    """Images of ``folder`` (sorted by name) as float32 ``[N, height, width, 3]``, normalised."""
    from PIL import Image

    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise TfliteInverterError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    paths = paths[:limit] if limit else paths
    images = []
    for path in paths:
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((width, height), Image.BILINEAR)
            images.append(np.asarray(resized, dtype=np.float32))
    batch = np.stack(images)
    return ((batch - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


def _batch_of_one(value: np.ndarray, shape: Sequence[int | None]) -> np.ndarray:
    value = np.asarray(value, dtype=np.float32)
    if value.ndim == len(shape) and (shape[0] in (None, 1)) and value.shape[0] == 1:
        return value
    if value.ndim == len(shape) - 1:
        return value[None]
    raise TfliteInverterError(f"a calibration sample of shape {value.shape} does not fit an input of shape {list(shape)}")


def _split(array: np.ndarray, shape: Sequence[int | None]) -> list[np.ndarray]:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == len(shape) - 1:
        return [array[None]]
    if array.ndim != len(shape):
        raise TfliteInverterError(f"calibration data of shape {array.shape} does not fit an input of shape {list(shape)}")
    return [array[i : i + 1] for i in range(array.shape[0])]


def make_samples(source: Any, inputs: Sequence[tuple[str, Sequence[int | None]]], *,
                 mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0,
                 limit: int | None = None) -> list[Sample]:
    """Calibration samples for inputs ``[(name, shape), ...]`` from ``source``:

    - a numpy array ``[N, ...]`` (one input) or a ``.npy`` file holding one;
    - a mapping ``{input name: array [N, ...]}`` for models with several inputs;
    - a folder of images (one image input, NHWC), normalised with ``mean`` and ``std``;
    - a callable returning an iterable of samples (each an array, a list in input order, or a dict by name).
    """
    names = [name for name, _ in inputs]
    shapes = [shape for _, shape in inputs]
    if callable(source) and not isinstance(source, (str, os.PathLike)):
        samples = []
        for item in source():
            if isinstance(item, Mapping):
                item = [item[name] for name in names]
            elif not isinstance(item, (list, tuple)):
                item = [item]
            samples.append([_batch_of_one(v, s) for v, s in zip(item, shapes)])
            if limit and len(samples) >= limit:
                break
        return samples
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            if len(inputs) != 1 or len(shapes[0]) != 4:
                raise TfliteInverterError("an image folder calibrates a model with one NHWC image input")
            _, height, width, _ = shapes[0]
            if height is None or width is None:
                raise TfliteInverterError("the image input has a dynamic height or width: give arrays instead")
            source = load_images(path, height, width, mean=mean, std=std, limit=limit)
        elif path.suffix == ".npy":
            source = np.load(path)
        elif path.suffix == ".npz":
            with np.load(path) as data:
                source = {key: data[key] for key in data.files}
        else:
            raise TfliteInverterError(f"{path}: calibration data must be a folder of images, a .npy or a .npz file")
    if isinstance(source, Mapping):
        missing = [name for name in names if name not in source]
        if missing:
            raise TfliteInverterError(f"calibration data lacks inputs {missing} (has {sorted(source)})")
        per_input = [_split(source[name], shape) for name, shape in inputs]
        samples = [list(group) for group in zip(*per_input)]
    else:
        if len(inputs) != 1:
            raise TfliteInverterError(f"the model has {len(inputs)} inputs {names}: give a mapping from input name to data")
        samples = [[value] for value in _split(np.asarray(source), shapes[0])]
    return samples[:limit] if limit else samples


def metadata_of(source: Any) -> Any:
    """The TFLite metadata (``ModelDescription``) of a model source: an ``ir.Model``, an inverted
    model (its ``.model``), a ``.tflite`` path or bytes; None for anything else or without metadata."""
    model = getattr(source, "model", source)
    if hasattr(model, "tflite_metadata"):
        return model.tflite_metadata
    if isinstance(source, (bytes, bytearray)) or (isinstance(source, (str, os.PathLike)) and Path(source).is_file()):
        from ..reader import load

        try:
            return load(source).tflite_metadata
        except TfliteInverterError:
            return None
    return None


def image_normalization(described: Any, source: Any, mean: Any = None, std: Any = None
                        ) -> tuple[Any, Any, str | None]:
    """``(mean, std, note)`` for normalising the images of ``source``. A ``mean`` or ``std`` given
    (not None) is used as given; one not given comes from the TFLite metadata ``described`` (a
    ``ModelDescription`` or None) when its one input states a normalization, else is 0 / 1. The
    note says when the metadata supplied the numbers (and is None otherwise, and for sources that
    are not image folders, which are not normalised)."""
    stated = None
    if described is not None and not described.error and len(described.inputs) == 1:
        stated = described.inputs[0]
    is_folder = isinstance(source, (str, os.PathLike)) and Path(source).is_dir()
    note = None
    if is_folder and stated is not None and ((mean is None and stated.mean) or (std is None and stated.std)):
        taken = [flag for flag, given, value in (("mean", mean, stated.mean), ("std", std, stated.std))
                 if given is None and value]
        mean = list(stated.mean) if mean is None and stated.mean else mean
        std = list(stated.std) if std is None and stated.std else std
        note = (f"images normalised as (pixel - {_numbers(mean if mean is not None else 0.0)}) / "
                f"{_numbers(std if std is not None else 1.0)}: {' and '.join(taken)} from the model's TFLite metadata")
    return (0.0 if mean is None else mean), (1.0 if std is None else std), note


def _numbers(value: Any) -> str:
    values = [float(v) for v in np.atleast_1d(np.asarray(value, np.float64))]
    return f"{values[0]:g}" if len(values) == 1 else "[" + ", ".join(f"{v:g}" for v in values) + "]"


def as_generator(samples: Sequence[Sample], progress: bool = True, description: str = "calibrating") -> Callable[[], Iterable[Sample]]:
    """A representative-dataset function for the TFLite converter, with a progress bar."""

    def generate():
        iterator: Iterable = samples
        if progress:
            from ..logs import progress as progress_bar

            iterator = progress_bar(samples, description=description, unit="sample")
        for sample in iterator:
            yield [np.asarray(value, np.float32) for value in sample]

    return generate

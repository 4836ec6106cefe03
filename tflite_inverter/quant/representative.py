"""Calibration (representative) data for re-quantization, from arrays, ``.npy`` files, image folders
or callables, shaped for the model's float inputs.

Every source becomes a list of samples; a sample is a list of arrays in input order, each with a
batch dimension of 1. Images are resized to the input's height and width and normalised as
``(pixel - mean) / std`` with the numbers the user gives (no eval'd strings).
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

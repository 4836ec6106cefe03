"""Resident memory of the mapped file: pages a consumer has copied can be handed back.

The reader maps the ``.tflite`` file and constants are numpy views on it. Copying a weight into
TensorFlow (a ``tf.Variable``) faults its pages in, and Linux counts them in the process's resident
set for as long as the mapping lives: a 300 MB model would hold its weights twice. The mapping is
read-only and shared, so dropping its pages (``MADV_DONTNEED``) loses nothing: a later read of the
view faults them in again from the page cache.
"""

from __future__ import annotations

import mmap

import numpy as np

_PAGE = mmap.PAGESIZE


def _mapping(array: np.ndarray) -> mmap.mmap | None:
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return base


def _byte_bounds(array: np.ndarray) -> tuple[int, int]:
    """First and one-past-last byte address an array's elements occupy (any strides)."""
    low = high = array.__array_interface__["data"][0]
    for size, stride in zip(array.shape, array.strides):
        if stride < 0:
            low += (size - 1) * stride
        else:
            high += (size - 1) * stride
    return low, high + array.itemsize


def release_pages(array: np.ndarray, minimum: int = 1 << 20) -> bool:
    """Drop the resident pages under ``array`` if it is a view of at least ``minimum`` bytes on a
    read-only file mapping (True when it was); anything else is left alone."""
    if not isinstance(array, np.ndarray) or array.nbytes < minimum:
        return False
    mapping = _mapping(array)
    if mapping is None or not hasattr(mapping, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return False
    start = np.frombuffer(mapping, np.uint8, count=1).ctypes.data
    low, high = _byte_bounds(array)
    first = (low - start) // _PAGE * _PAGE
    last = min(-(-(high - start) // _PAGE) * _PAGE, len(mapping))
    if first < 0 or last <= first:
        return False
    try:
        mapping.madvise(mmap.MADV_DONTNEED, first, last - first)
    except (OSError, ValueError):
        return False
    return True

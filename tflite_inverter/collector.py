"""Python's cyclic garbage collector kept out of the way of a conversion.

TensorFlow's import leaves about 290,000 objects tracked by the collector, and building and saving a
model creates tens of thousands more (graph operations, function specs, trackables). Those
allocations set off collections, several of them full ones that walk every tracked object: on
palm_detection_full 59 collections took 0.22-0.39 s of a 1.1-1.3 s conversion (measured with
``gc.callbacks``). The heavy steps (building, saving, re-quantizing) therefore run with the
collector paused. Reference counting still frees everything that is not in a cycle at once; the
cyclic garbage a step leaves is collected by the first collection after it (0.03 s on that model).
A pause nests, and leaves the collector as it found it (a caller that disabled it keeps it disabled).
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

_lock = threading.Lock()
_depth = 0
_resume = False  # whether the collector was enabled when the outermost pause began

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def paused() -> Iterator[None]:
    """The collector disabled for the duration (reentrant; restored as found)."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()


def pausing(function: F) -> F:
    """``function`` run inside :func:`paused`."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with paused():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

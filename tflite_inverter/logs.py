"""Quiet by default: TensorFlow's and absl's log lines hidden, progress bars only where a person sees them.

``set_verbosity(0)`` (the default) hides TensorFlow's C++ start-up and converter chatter and sets
the ``tensorflow`` and ``absl`` Python loggers to ERROR; ``1`` shows warnings; ``2`` shows everything.
The C++ log level (``TF_CPP_MIN_LOG_LEVEL``) is read once, when TensorFlow is first imported: set the
verbosity before the first ``invert``/``verify``/``requantize`` to see its start-up lines.

Progress bars use ``tqdm.auto``: a widget in a notebook (with ipywidgets), a bar on a terminal, and
nothing when stderr is a pipe or a file. ``set_verbosity(-1)`` turns them off too.

This module imports neither TensorFlow nor the rest of the package.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

_LEVELS = {"quiet": 0, "warnings": 1, "info": 2, "debug": 2, "silent": -1}
_verbosity = 0
_visible_stderr: list = []  # while fd 2 is hidden: a stream on the real stderr, for progress bars


def set_verbosity(level: int | str) -> None:
    """``0``/``"quiet"`` (default), ``1``/``"warnings"``, ``2``/``"info"``; ``-1``/``"silent"`` also hides progress bars."""
    global _verbosity
    if isinstance(level, str):
        if level not in _LEVELS:
            from .errors import TfliteInverterError

            raise TfliteInverterError(f"set_verbosity: {level!r} is not one of {sorted(_LEVELS)} or -1, 0, 1, 2")
        level = _LEVELS[level]
    _verbosity = max(-1, min(2, int(level)))
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = {-1: "3", 0: "3", 1: "1", 2: "0"}[_verbosity]
    _configure_python_loggers()


def verbosity() -> int:
    return _verbosity


def default_environment() -> None:
    """Set TensorFlow's C++ log level before it is imported, unless the user set one."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if _verbosity <= 0 else "1")


def _configure_python_loggers() -> None:
    level = {-1: logging.ERROR, 0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}[_verbosity]
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(level)
    if "absl.logging" in sys.modules:
        sys.modules["absl.logging"].set_verbosity({logging.ERROR: "error", logging.WARNING: "warning",
                                                   logging.INFO: "info"}[level])


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hide what C++ code writes to file descriptor 2 (absl's pre-initialisation lines, oneDNN,
    the converter's MLIR passes) while quiet; Python exceptions still carry their messages."""
    if _verbosity > 0:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (some embedded interpreters)
        yield
        return
    visible = open(saved, "w", closefd=False)
    _visible_stderr.append(visible)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        _visible_stderr.remove(visible)
        visible.close()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow(*, without_keras: bool = False) -> Any:
    """TensorFlow, imported (once) with its start-up chatter hidden and its loggers set to the verbosity.

    ``without_keras``: TensorFlow's import also imports all of Keras 3 eagerly (``keras.src.optimizers``,
    for Keras's SavedModel registrations; Keras in turn imports matplotlib, pandas and IPython), about
    2.5 of its 6.5 s on the 2-core machine, though nothing here uses Keras. For the project's own
    processes (the CLI, batch workers) Keras is held back during the import: ``sys.modules["keras"]``
    is None for that time, TensorFlow's ``try: import keras.src.optimizers`` gives up, and the entry is
    removed again, so ``tf.keras`` still imports Keras lazily on first use. A process that has
    imported Keras already is unchanged; the library's API never does this (a notebook's Keras stays
    as TensorFlow sets it up).
    """
    default_environment()
    if "tensorflow" not in sys.modules:
        held_back = without_keras and "keras" not in sys.modules
        if held_back:
            sys.modules["keras"] = None  # type: ignore[assignment]
        try:
            with quiet_stderr():
                import tensorflow  # noqa: F401
        finally:
            if held_back and "keras" in sys.modules and sys.modules["keras"] is None:
                del sys.modules["keras"]
    _configure_python_loggers()
    return sys.modules["tensorflow"]


def progress(iterable: Iterable | None = None, *, description: str, total: int | None = None, unit: str = "it") -> Any:
    """A tqdm bar (widget in notebooks, bar on a terminal, nothing in pipes; off at verbosity -1)."""
    from tqdm.auto import tqdm

    stream = _visible_stderr[-1] if _visible_stderr else sys.stderr
    return tqdm(iterable, desc=description, total=total, unit=unit, leave=False, file=stream,
                disable=True if _verbosity < 0 else None)

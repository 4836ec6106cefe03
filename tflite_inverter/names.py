"""Names in the inverted graph, made from TFLite tensor and signature names (no TensorFlow).

The one place for name sanitising: ``build/`` names nodes and weights with :func:`sanitize_name`,
``build/inverted.py`` names function arguments with :func:`python_identifier`, and
``passes/validate.py`` checks that a signature's input names stay distinct arguments after both.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence

_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-/]")


def sanitize_name(name: str) -> str:
    """A TensorFlow-safe node name for a TFLite tensor name (``a:0`` -> ``a_0``)."""
    clean = _INVALID_NAME_CHARS.sub("_", name).strip("/")
    clean = re.sub(r"/+", "/", clean)
    if not clean or not re.match(r"[A-Za-z0-9.]", clean[0]):
        clean = "t_" + clean
    return clean


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with later duplicates suffixed ``_1``, ``_2``, ... so that every name is distinct."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        candidate = name
        while candidate in seen:
            seen[name] += 1
            candidate = f"{name}_{seen[name]}"
        seen[candidate] = 0
        out.append(candidate)
    return out


def python_identifier(name: str) -> str:
    """A tf.function argument name: ASCII letters, digits and ``_``, starting with a letter
    (TensorFlow renames an argument such as ``_`` or ``_a``, and then cannot bind it by name)."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not re.match(r"[A-Za-z]", ident) or keyword.iskeyword(ident):
        ident = "x_" + ident
    return ident

"""Names: TFLite tensor names made safe for TensorFlow nodes and Python arguments (no TensorFlow)."""

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
    """A valid Python argument name for a signature input name."""
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit() or keyword.iskeyword(ident):
        ident = "x_" + ident
    return ident

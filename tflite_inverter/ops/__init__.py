"""Op builders, one module per family. Importing this package registers them all: every module
in this folder is imported (a new family needs no edit here), except the registry itself and the
generated-docs table."""

import importlib
import pkgutil

from .registry import OpSpec, lookup, register, register_custom, supported_ops, unregister

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    if _module not in ("registry", "table"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["OpSpec", "lookup", "register", "register_custom", "supported_ops", "unregister"]

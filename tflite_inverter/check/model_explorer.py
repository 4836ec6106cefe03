"""A per-tensor verification as a node-data overlay for Google's Model Explorer
(``ai-edge-model-explorer``), so the per-layer error can be seen on the graph.

Model Explorer's node-data file (its ``node_data_builder.ModelNodeData``) is JSON of the form
``{graph id: {"results": {node id: {"value": number, "bgColor": css colour}}, "thresholds": [...]}}``.
Its TFLite flatbuffer adapter names each operator node by the operator's index in its subgraph
(``"0"``, ``"1"``, ...) and each subgraph by its name, or, when the subgraph has none, by its
signature key (newer adapters) or ``"main"`` (older ones, and models without a signature): the file
carries the main subgraph's data under each of the ids that may apply (:func:`graph_ids`), so it
loads with either adapter.

A node's value is its largest output error over its tolerance (1 = at the tolerance): green up to
1, red beyond. Load the ``.tflite`` in Model Explorer, then this file as node data
(``model-explorer model.tflite --node_data_paths=overlay.json``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..emit.atomic import write_bytes_atomic
from ..errors import TfliteInverterError

PASSED, FAILED = "#a5d6a7", "#ef9a9a"
_CAP = 1e12  # errors without a tolerance (a shape mismatch): JSON has no infinity


def graph_ids(model: Any) -> list[str]:
    """The ids Model Explorer's TFLite adapters give the main subgraph of ``model`` (an ``ir.Model``).
    The reader names an unnamed main subgraph "main", as older adapters do, so a subgraph called
    "main" may have had no name, and newer adapters then call it by its signature key: both are given."""
    name = model.main.name
    keys = [s.key for s in model.signatures if s.subgraph_index == 0 and s.key]
    return [name] + ([keys[0]] if name == "main" and keys and keys[0] != name else [])


def node_data(report: Any, model: Any) -> dict:
    """The node-data mapping of a per-tensor ``report`` (a ``VerifyReport``) on ``model``'s main subgraph."""
    if not report.tensors:
        raise TfliteInverterError("a Model Explorer overlay shows the per-tensor comparison: verify with per_tensor=True")
    operators = len(model.main.operators)
    values: dict[int, float] = {}
    for tensor in report.tensors:
        if not 0 <= tensor.operator < operators:
            raise TfliteInverterError(f"per-tensor row of operator {tensor.operator}: the model's main subgraph has "
                                      f"{operators} operators (is the report of another model?)")
        ratio = tensor.max_abs_error / tensor.tolerance if tensor.tolerance else (0.0 if tensor.passed else _CAP)
        ratio = _CAP if not math.isfinite(ratio) else min(ratio, _CAP)
        values[tensor.operator] = max(values.get(tensor.operator, 0.0), ratio)
    failed = {t.operator for t in report.tensors if not t.passed}
    results = {str(index): {"value": value, "bgColor": FAILED if index in failed else PASSED}
               for index, value in sorted(values.items())}
    graph = {"results": results, "thresholds": [{"value": 1.0, "bgColor": PASSED}, {"value": _CAP, "bgColor": FAILED}]}
    return {graph_id: graph for graph_id in graph_ids(model)}


def write_node_data(report: Any, path: str | os.PathLike, model: Any = None, *, overwrite: bool = True) -> Path:
    """Write :func:`node_data` of ``report`` to ``path`` (atomic); ``model`` (an ``ir.Model`` or a
    path) defaults to the report's ``.tflite``."""
    from ..reader import load

    if model is None or isinstance(model, (str, os.PathLike, bytes)):
        source = model if model is not None else report.model
        if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
            raise TfliteInverterError(f"{source}: give the verified .tflite (model=) to key the overlay by its operators")
        model = load(source)
    data = json.dumps(node_data(report, model), indent=1) + "\n"
    return write_bytes_atomic(Path(path), data.encode(), overwrite=overwrite)

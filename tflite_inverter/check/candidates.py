"""Running a verification's candidate on one draw of inputs: an :class:`InvertedModel` in memory, a
SavedModel directory, or a frozen ``.pb`` with its JSON sidecar (state carried from call to call)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import ir
from ..errors import VerificationError


def _adapt_inputs(values: list[np.ndarray], tensors: Sequence[ir.Tensor], dtypes: Sequence[str]) -> list[np.ndarray]:
    """Dequantize integer inputs for a candidate that takes real values (``io="float"``)."""
    from ..quant.grids import dequantize_array

    adapted = []
    for value, tensor, dtype in zip(values, tensors, dtypes):
        if np.issubdtype(value.dtype, np.integer) and dtype.startswith("float") and tensor.quantization is not None:
            value = dequantize_array(value, tensor.quantization)
        adapted.append(value)
    return adapted


def _candidate_runner(candidate: Any, model: ir.Model, info: Any
                      ) -> tuple[str, Callable[[list[np.ndarray]], list[np.ndarray]], Callable[[], None] | None]:
    """A function mapping one draw's inputs (in signature order) to outputs (in signature order),
    and one that resets the candidate's state (``None`` when it keeps none)."""
    from ..build.inverted import InvertedModel
    from ..names import python_identifier

    input_keys = [python_identifier(n) for n in info.input_names]
    sg = model.subgraphs[info.subgraph_index]
    tensors = [sg.tensors[i] for i in info.input_tensors]
    if isinstance(candidate, InvertedModel):
        dtypes = [spec.dtype for spec in candidate.inputs(info.key)]

        def run_inverted(values):
            out = candidate.run(dict(zip(input_keys, _adapt_inputs(values, tensors, dtypes))), signature=info.key)
            return [out[name] for name in info.output_names]

        return "inverted model (in memory)", run_inverted, candidate.reset_state if candidate.stateful else None
    path = Path(candidate)
    if path.is_dir():
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        if info.key not in loaded.signatures:
            raise VerificationError(f"{path}: SavedModel has no signature {info.key!r} (has {sorted(loaded.signatures)})")
        function = loaded.signatures[info.key]
        specs = function.structured_input_signature[1]
        dtypes = [specs[k].dtype.name for k in input_keys]

        def run_saved_model(values):
            out = function(**{k: tf.constant(v) for k, v in zip(input_keys, _adapt_inputs(values, tensors, dtypes))})
            return [out[name].numpy() for name in info.output_names]

        def reset():
            loaded.reset_state()  # through ``loaded``: its variables live as long as it does

        reset = reset if hasattr(loaded, "reset_state") else None
        return f"SavedModel {path}", run_saved_model, reset
    if path.suffix == ".pb":
        return (f"frozen graph {path}", *_frozen_pb_runner(path, tensors))
    raise VerificationError(f"{path}: not a SavedModel directory, a .pb file or a .tflite file")


def _frozen_pb_runner(path: Path, tensors: Sequence[ir.Tensor]
                      ) -> tuple[Callable[[list[np.ndarray]], list[np.ndarray]], Callable[[], None] | None]:
    """The runner of a frozen pb and its reset. A stateful pb takes its states as inputs and returns
    them as outputs (the sidecar's ``state``): the runner feeds each call what the last one wrote."""
    import tensorflow as tf

    from ..emit.frozen_pb import sidecar_path

    sidecar = sidecar_path(path)
    if not sidecar.exists():
        raise VerificationError(f"{path}: its sidecar {sidecar.name} (input and output node names) is missing")
    description = json.loads(sidecar.read_text())
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    feeds = [graph.get_tensor_by_name(i["tensor"]) for i in description["inputs"]]
    fetches = [graph.get_tensor_by_name(o["tensor"]) for o in description["outputs"]]

    dtypes = [i["dtype"] for i in description["inputs"]]
    states = description.get("state", [])
    state_feeds = [graph.get_tensor_by_name(s["input"]["tensor"]) for s in states]
    state_fetches = [graph.get_tensor_by_name(s["output"]["tensor"]) for s in states]

    def initial(state: dict) -> np.ndarray:
        if state["initial"] == "zeros":
            return np.zeros(state["shape"], state["dtype"])
        return np.asarray(state["initial"], state["dtype"])

    current = [initial(s) for s in states]

    def run_frozen(values):
        feed = dict(zip(feeds, _adapt_inputs(values, tensors, dtypes)))
        feed.update(zip(state_feeds, current))
        results = session.run(fetches + state_fetches, feed)
        current[:] = results[len(fetches):]
        return results[:len(fetches)]

    def reset():
        current[:] = [initial(s) for s in states]

    return run_frozen, reset if states else None

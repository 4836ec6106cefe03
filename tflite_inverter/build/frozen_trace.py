"""The traces :mod:`tflite_inverter.emit.frozen_pb` writes: a signature's concrete function with
the graph nodes that stand for each weight, and the states a stateful frozen graph takes as inputs
and returns as outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..logs import import_tensorflow

tf = import_tensorflow()  # TensorFlow's start-up lines hidden unless ti.set_verbosity(...)


class FrozenTrace:
    """The frozen-graph methods of :class:`~tflite_inverter.build.inverted.InvertedModel`, which
    provides what they read: ``model``, ``module``, ``concrete_functions``, ``_frozen_states``,
    ``default_signature``, ``_info()``, ``_signature_body()`` and ``_input_specs()``."""

    def frozen_concrete_function(self, signature: str | None = None):
        """A concrete function of the signature and the map from the graph's nodes that stand for a
        weight to :attr:`module.weights` names (``None``: a node to drop), for
        :mod:`tflite_inverter.emit.frozen_pb`. The traced function is reused when each weight enters
        its graph only through ``ReadVariableOp`` s (replaced by Const nodes); otherwise (a weight read
        inside a control-flow body) the signature is traced again with a placeholder per weight."""
        info = self._info(signature)
        concrete = self.concrete_functions[info.key]
        reads = _weight_reads(concrete.graph, self.module.weights)
        if reads is not None:
            return concrete, reads
        with self.module.frozen() as placeholders:
            function = tf.function(self._signature_body(info, frozen=True), input_signature=self._input_specs(info),
                                   autograph=False)
            concrete = function.get_concrete_function()
            read, _ = self.module.frozen_state_io()
            states = []
            for key, placeholder in read.items():
                name = self.module.state_keys[key]
                initial = self.module.state_initial_value(name)
                output = concrete.structured_outputs[name]
                if output.op.type == "Identity" and output.op.inputs[0].op.name.endswith("/next"):
                    output = output.op.inputs[0]  # the node named after the state, not the function's copy
                states.append({
                    "tflite_tensor": self.model.subgraphs[key[0]].tensors[key[1]].name,
                    "input": {"node": placeholder.op.name, "tensor": placeholder.name},
                    "output": {"key": name, "node": output.name.split(":")[0], "tensor": output.name},
                    "shape": list(initial.shape), "dtype": str(initial.dtype),
                    "initial": "zeros" if not initial.any() else initial.tolist(),
                })
            self._frozen_states[info.key] = states
            return concrete, dict(placeholders)

    def frozen_states(self, signature: str | None = None) -> list[dict]:
        """The states of the last frozen trace of ``signature`` (:meth:`frozen_concrete_function`):
        for each, the graph input it is read from, the output holding what the call wrote into it
        (feed it back as the next call's input), and the value to feed the first call."""
        return list(self._frozen_states.get(signature or self.default_signature, []))


def _weight_reads(graph: Any, weights: Mapping[str, tf.Variable]) -> dict[str, str | None] | None:
    """In a traced graph: each ``ReadVariableOp`` of a weight -> the weight's name, and each captured
    weight handle -> ``None``; ``None`` when any captured resource is used otherwise (or is not a weight)."""
    by_handle = {id(variable.handle): name for name, variable in weights.items()}
    handles: dict[str, str] = {}
    for external, internal in graph.captures:
        name = by_handle.get(id(external))
        if name is not None:
            handles[internal.op.name] = name
        elif internal.dtype == tf.resource:
            return None  # module state (a resource variable, a hash table): the frozen pb refuses it anyway
    mapping: dict[str, str | None] = dict.fromkeys(handles)
    for operation in graph.get_operations():
        for tensor in operation.inputs:
            if tensor.op.name in handles:
                if operation.type != "ReadVariableOp":
                    return None
                mapping[operation.name] = handles[tensor.op.name]
    return mapping

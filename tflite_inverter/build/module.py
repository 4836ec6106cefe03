"""The inverted module: weights as ``tf.Variable`` s and the walk that traces a subgraph.

Operators are walked in file order (TFLite stores them topologically sorted); each is built by
the builder registered for its opcode, then the fused activation is applied, the output checked
against the file's dtype and shape and bound to its tensor. This module knows no single op's
semantics, and the IR it walks is already prepared by the passes (:mod:`tflite_inverter.passes`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from .. import ir
from .. import ops  # noqa: F401  (registers the builders)
from ..errors import BuildError, TfliteInverterError, with_cause
from ..names import sanitize_name
from ..ops import registry
from ..reader.mapped import release_pages
from ..quant.grids import (HYBRID_INPUTS, HYBRID_WEIGHT_DTYPES, INT16X8_REDUCED_MULTIPLIER_OPS, dequantize_array, fake_quantize,
                           fake_quantize_dynamic, int16x8_requantization_factor, integer_range, is_quantized_activation)
from .context import BuildContext, apply_fused_activation, graph_dtype, output_name
from .passthrough import Passthrough
from .state import initial_value, state_tensors
from .weight_variable import new_weight

QUANTIZED_MODES = ("fake_quant", "dequantize")
# Ops whose TFLite kernels may take inputs on other grids than the output's, which the TFLite
# converter's same-scale rule refuses (see InvertedModule._on_output_grid).
_SAME_SCALE_OPS = frozenset({"CONCATENATION"})


def _constants(sg: ir.Subgraph) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """A subgraph's constants as stored and as consumed, by tensor index. A variable tensor (an
    RNN/LSTM state) is here with its initial value (its buffer, or zeros): a constant when the
    module is stateless or no operator writes it, else the starting value of its module state."""
    stored: dict[int, np.ndarray] = {}
    consumed: dict[int, np.ndarray] = {}
    for t in sg.tensors:
        if t.is_variable:
            if t.data is None and t.dtype in ir.NUMPY_DTYPES and all(d >= 0 for d in t.shape):
                # LiteRT's reset value: zero bytes, or the zero point of an int8 tensor (real 0)
                fill = t.quantization.zero_points[0] if t.dtype == "int8" and t.quantization is not None else 0
                stored[t.index] = np.full(t.shape, fill, ir.NUMPY_DTYPES[t.dtype])
            elif t.data is not None:
                stored[t.index] = t.data
            else:
                continue
            value = stored[t.index]
            quantized = t.quantization is not None and np.asarray(value).dtype.kind in "iu"
            consumed[t.index] = dequantize_array(np.asarray(value), t.quantization) if quantized else value
        elif t.data is not None:
            stored[t.index], consumed[t.index] = t.data, t.value
    return stored, consumed


def _content_key(value: np.ndarray) -> tuple:
    """What identifies a weight's value: dtype, shape and a digest of its bytes."""
    array = np.ascontiguousarray(value)
    return array.dtype.str, array.shape, hashlib.blake2b(memoryview(array).cast("B"), digest_size=16).digest()


class _Tables:
    """Constants and weight names per subgraph (kept out of ``tf.Module`` attribute tracking)."""

    def __init__(self) -> None:
        # Per subgraph: constants as the file stores them (BuildContext.constant) and as operators
        # consume them (real values of quantized constants, equalized weights), by tensor index.
        self.stored: dict[int, dict[int, np.ndarray]] = {}
        self.consumed: dict[int, dict[int, np.ndarray]] = {}
        # (subgraph, tensor, layout) -> weight name; several keys may name one weight (dedupe by content)
        self.weight_keys: dict[tuple[int, int, int], str] = {}
        self.weight_by_content: dict[tuple, list[str]] = {}  # _content_key -> weight names
        self.weight_subgraphs: dict[str, set[int]] = {}  # weight name -> the subgraphs that read it
        self.weights_as_constants = False  # set while tracing the frozen graph
        self.frozen_placeholders: dict[str, str] = {}  # placeholder node name -> weight name
        self.progress: Any = None  # a progress bar that counts traced operators, while InvertedModel builds
        # Variable tensors kept across calls: (subgraph, tensor) -> name in InvertedModule.states,
        # their initial values, and, while tracing the frozen graph, the state read (a placeholder)
        # and the state written of each.
        self.state_keys: dict[tuple[int, int], str] = {}
        self.state_initial: dict[str, np.ndarray] = {}
        self.frozen_state_inputs: dict[tuple[int, int], tf.Tensor] = {}
        self.frozen_state_outputs: dict[tuple[int, int], tf.Tensor] = {}
        self.pending_writes: dict[tuple[int, int], tf.Tensor] = {}


class InvertedModule(tf.Module):
    """Weights as variables plus the machinery to trace a subgraph into TensorFlow ops.

    ``model`` is the prepared IR (:func:`tflite_inverter.passes.pipeline.prepare`): constants
    folded and dequantized, equalized if asked; this class only walks operators."""

    def __init__(self, model: ir.Model, name: str = "inverted", quantized: str = "fake_quant",
                 check_static_shapes: bool = True, passthrough: Passthrough | None = None, stateless: bool = False,
                 integer_rescale: bool = False):
        super().__init__(name=name)
        if quantized not in QUANTIZED_MODES:
            raise TfliteInverterError(f"quantized must be one of {QUANTIZED_MODES}, not {quantized!r}")
        self._model = model
        self.quantized_mode = quantized
        self.integer_rescale = integer_rescale  # ops/integer_rescale.py: exact 8-bit rescaling (opt-in)
        self.check_static_shapes = check_static_shapes
        self._tables = _Tables()  # plain Python state, invisible to TensorFlow's tracking
        self.weights: dict[str, tf.Variable] = {}
        self.resources: dict[str, Any] = {}  # TFLite resource variables and hash tables, by key
        # Variable tensors the kernels write back into (LSTM/RNN/SVDF states), by name; none if stateless.
        self.states: dict[str, tf.Variable] = {}
        self.stateless = stateless
        self.passthrough = passthrough
        # (subgraph, tensor) -> a calibrated uint8 grid, applied by on_grid when traced.
        self.activation_grids: dict[tuple[int, int], ir.QuantParams] = {}
        for sg in model.subgraphs:
            self._tables.stored[sg.index], self._tables.consumed[sg.index] = _constants(sg)
        for sg in model.subgraphs:
            self._create_weights(sg)
        if not stateless:
            self._create_states()
        for sg in model.subgraphs:
            for op in sg.operators:
                spec = registry.lookup(op.opcode)
                if spec is not None and spec.resource_factory is not None:
                    ctx = BuildContext(model, sg, op, self._tables.stored[sg.index])
                    try:
                        key, make = spec.resource_factory(ctx)
                        if key not in self.resources:
                            self.resources[key] = make()
                    except TfliteInverterError:
                        raise
                    except Exception as exc:  # the state of a malformed op must fail named, like a builder
                        raise with_cause(ctx.fail(f"making its state failed: {type(exc).__name__}: {exc}"), exc) from None

    def _spec(self, op: ir.Operator) -> "registry.OpSpec | None":
        """The builder spec of an operator: the passthrough one for an opaque custom op."""
        if self.passthrough is not None and self.passthrough.covers(op):
            return self.passthrough.spec
        return registry.lookup(op.opcode)

    # -- constants and weights -------------------------------------------------------------
    def weight_variable(self, subgraph_index: int, tensor_index: int) -> tf.Variable | None:
        """The variable holding a constant tensor's value, if it became one."""
        for (subgraph, index, _), name in self._tables.weight_keys.items():
            if subgraph == subgraph_index and index == tensor_index:
                return self.weights[name]
        return None

    def _create_weights(self, sg: ir.Subgraph) -> None:
        constants, consumed = self._tables.stored[sg.index], self._tables.consumed[sg.index]
        names = {}
        for op in sg.operators:
            spec = self._spec(op)
            for position, index in enumerate(op.inputs):
                if index is None or index not in constants:
                    continue
                value = consumed[index]
                layout = spec.weight_layouts.get(position) if spec else None
                if layout is not None:
                    ctx = BuildContext(self._model, sg, op, constants)
                    try:
                        value = np.asarray(layout(value, ctx, np))
                    except TfliteInverterError:
                        raise
                    except Exception as exc:  # a weight the op's layout cannot take
                        raise with_cause(ctx.fail(f"input {position} ({sg.tensors[index].name!r}): {type(exc).__name__}: "
                                                  f"{exc}"), exc) from None
                if value.dtype.kind != "f" or value.size <= 1 or sg.tensors[index].is_variable:
                    continue
                key = (sg.index, index, id(layout) if layout else 0)
                if key in self._tables.weight_keys:
                    continue
                shared = self._shared_weight(value, sg.index) if len(self._model.subgraphs) > 1 else None
                if shared is not None:  # the same weight in another signature's subgraph: one variable
                    self._tables.weight_keys[key] = shared
                    continue
                base = sanitize_name(sg.tensors[index].name)
                if sg.index:
                    base = f"{sanitize_name(sg.name)}/{base}"
                name = base
                while name in names:
                    names[base] = names.get(base, 0) + 1
                    name = f"{base}_{names[base]}"
                names[name] = 0
                # np.array copies: TensorFlow may alias a numpy buffer, and this one is the mapped file.
                # Once copied, the file's pages under it leave the resident set (read again if needed),
                # before TensorFlow makes its own copy.
                copy = np.array(value)
                release_pages(value)
                release_pages(sg.tensors[index].data)
                self.weights[name] = new_weight(copy, name)
                del copy
                self._tables.weight_keys[key] = name
                if len(self._model.subgraphs) > 1:  # a single subgraph shares no weights: no digests
                    self._tables.weight_by_content.setdefault(_content_key(value), []).append(name)
                    self._tables.weight_subgraphs[name] = {sg.index}

    def _shared_weight(self, value: np.ndarray, subgraph: int) -> str | None:
        """The name of a weight of another subgraph with exactly this value (dtype, shape and bytes)
        that this subgraph does not use yet. Multi-signature models (an LLM's prefill and decode)
        hold one subgraph per signature; their weights are the same constants, in one buffer or in
        several, and become one variable. Within a subgraph, equal constants (zero biases) stay
        separate variables, as the file has them as separate tensors."""
        for name in self._tables.weight_by_content.get(_content_key(value), ()):
            users = self._tables.weight_subgraphs[name]
            if subgraph not in users and np.array_equal(self.weights[name].numpy(), value):  # a digest match, checked
                users.add(subgraph)
                return name
        return None

    def _create_states(self) -> None:
        taken: set[str] = set()
        for key, state in state_tensors(self._model).items():
            base = "state/" + sanitize_name(state.tensor.name)
            if state.subgraph:
                base = f"state/{sanitize_name(self._model.subgraphs[state.subgraph].name)}/{sanitize_name(state.tensor.name)}"
            name, suffix = base, 0
            while name in taken:
                suffix += 1
                name = f"{base}_{suffix}"
            taken.add(name)
            initial = initial_value(state.tensor, self._tables.consumed[state.subgraph][state.tensor.index])
            self._tables.state_keys[key] = name
            self._tables.state_initial[name] = initial
            self.states[name] = tf.Variable(initial, name=name.replace("/", "_"), trainable=False)

    def reset_states(self) -> None:
        """Every state back to its initial value (LiteRT's ``reset_all_variables()``)."""
        for name, variable in self.states.items():
            variable.assign(self._tables.state_initial[name])

    def state_initial_value(self, name: str) -> np.ndarray:
        return self._tables.state_initial[name]

    @property
    def state_keys(self) -> Mapping[tuple[int, int], str]:
        """(subgraph, tensor index) -> name in :attr:`states`."""
        return dict(self._tables.state_keys)

    def _read_state(self, sg: ir.Subgraph, index: int) -> tf.Tensor:
        key = (sg.index, index)
        name = self._tables.state_keys[key]
        if not self._tables.weights_as_constants:
            return self.states[name].read_value()
        # Frozen graph: the state is an input of the graph, named after the tensor.
        tensor = sg.tensors[index]
        placeholder = tf.raw_ops.Placeholder(dtype=graph_dtype(tensor), shape=self.states[name].shape, name=name)
        self._tables.frozen_state_inputs[key] = placeholder
        return placeholder

    def write_variable(self, ctx: BuildContext, position: int, value: tf.Tensor) -> None:
        """A builder hands over what its kernel writes into variable input ``position``."""
        spec = self._spec(ctx.op)
        if spec is None or position not in spec.written_inputs(ctx.op.options):
            raise ctx.fail(f"writes input {position}, which its spec does not declare (writes_inputs)")
        index = ctx.op.inputs[position]
        if index is None:
            return
        key = (ctx.subgraph.index, index)
        if key in self._tables.state_keys:
            self._tables.pending_writes[key] = value

    def _commit_writes(self, sg: ir.Subgraph, op: ir.Operator, spec: "registry.OpSpec", values: dict,
                       ctx: BuildContext) -> None:
        """After an operator: each state it writes takes its new value, seen by later readers in
        this call and kept for the next (assigned to the variable, or a frozen graph's output)."""
        pending, self._tables.pending_writes = self._tables.pending_writes, {}
        for position in spec.written_inputs(op.options):
            index = op.inputs[position] if position < len(op.inputs) else None
            key = (sg.index, index)
            if index is None or key not in self._tables.state_keys:
                continue
            if key not in pending:
                raise ctx.fail(f"the builder did not write the state in input {position} ({sg.tensors[index].name!r})")
            tensor = sg.tensors[index]
            variable = self.states[self._tables.state_keys[key]]
            value = tf.ensure_shape(self.on_grid(tensor, pending[key], sg.index), variable.shape)
            if value.dtype != variable.dtype:
                raise ctx.fail(f"state {tensor.name!r} written as {value.dtype.name}, it is {variable.dtype.name}")
            if self._tables.weights_as_constants:
                self._tables.frozen_state_outputs[key] = value
            else:
                variable.assign(value)
            values[index] = value

    def _input_value(self, sg: ir.Subgraph, op: ir.Operator, position: int, values: dict, ctx: BuildContext):
        index = op.inputs[position]
        if index is None:
            return None
        spec = self._spec(op)
        layout = spec.weight_layouts.get(position) if spec else None
        if (sg.index, index) in self._tables.state_keys and index not in values:
            values[index] = self._read_state(sg, index)  # once per call; later readers see writes
        if index in values:
            value = values[index]
            return layout(value, ctx, tf) if layout is not None else value
        consumed = self._tables.consumed[sg.index]
        if index in consumed:
            key = (sg.index, index, id(layout) if layout else 0)
            if key in self._tables.weight_keys:
                weight = self.weights[self._tables.weight_keys[key]]
                if not self._tables.weights_as_constants:
                    return weight
                # Frozen graph: a placeholder the pb emitter replaces with a Const node holding the
                # variable's current value, streamed to the file one weight at a time.
                placeholder = tf.raw_ops.Placeholder(
                    dtype=weight.dtype, shape=weight.shape, name="frozen_weight_" + sanitize_name(weight.name.split(":")[0]).replace("/", "_")
                )
                self._tables.frozen_placeholders[placeholder.op.name] = self._tables.weight_keys[key]
                return placeholder
            value = consumed[index]
            if layout is not None:
                value = np.asarray(layout(value, ctx, np))
            return _constant(value, sg.tensors[index])
        tensor = sg.tensors[index]
        raise ctx.fail(f"input {position} ({tensor.name!r}) is neither computed before the operator nor constant")

    @contextlib.contextmanager
    def frozen(self):
        """While active, traced functions read each weight from a placeholder node; yields the map
        placeholder node name -> weight name, which the frozen-pb emitter turns into Const nodes."""
        self._tables.weights_as_constants = True
        self._tables.frozen_placeholders = {}
        self._tables.frozen_state_inputs = {}
        self._tables.frozen_state_outputs = {}
        try:
            yield self._tables.frozen_placeholders
        finally:
            self._tables.weights_as_constants = False

    def frozen_state_io(self) -> tuple[dict[tuple[int, int], tf.Tensor], dict[tuple[int, int], tf.Tensor]]:
        """During a frozen trace: the placeholder each state is read from and the value written to it."""
        return dict(self._tables.frozen_state_inputs), dict(self._tables.frozen_state_outputs)

    def _hybrid_inputs(self, sg: ir.Subgraph, op: ir.Operator, inputs: list) -> list:
        """In ``fake_quant`` mode, a hybrid op (float input, int8 constant weights) sees its float input
        quantized on the fly, as TFLite's hybrid kernel does; ``dequantize`` mode computes in float."""
        if self.quantized_mode != "fake_quant" or op.opcode not in HYBRID_INPUTS:
            return inputs
        position, granularity, asymmetry = HYBRID_INPUTS[op.opcode]
        if callable(granularity):
            granularity = granularity(op.options)
        data = sg.tensors[op.inputs[position]] if op.inputs[position] is not None else None
        constants = self._tables.stored[sg.index]
        weights = [sg.tensors[i] for i in op.inputs
                   if i is not None and sg.tensors[i].dtype in HYBRID_WEIGHT_DTYPES and sg.tensors[i].quantization is not None
                   and i in constants]
        if data is None or data.dtype != "float32" or not weights:
            return inputs
        quant = weights[0].quantization
        if weights[0].dtype != "int8" or quant.blockwise or (quant.per_channel and op.opcode == "FULLY_CONNECTED"):
            asymmetric = True  # XNNPACK takes these weights, and quantizes inputs asymmetrically
        elif asymmetry == "option":
            asymmetric = bool(op.options.get("asymmetric_quantize_inputs", False))
        else:
            asymmetric = weights[0].quantization.per_channel
        with tf.name_scope("hybrid_input"):
            quantized = fake_quantize_dynamic(inputs[position], granularity, asymmetric)
        return [*inputs[:position], quantized, *inputs[position + 1:]]

    def _int16x8_requantization(self, sg: ir.Subgraph, op: ir.Operator, outputs: list) -> list:
        """In ``fake_quant`` mode, an int16x8 CONV_2D / DEPTHWISE_CONV_2D output scaled by
        the kernel's 15-bit requantization multiplier over the exact one (before its fused activation)."""
        data, weights = INT16X8_REDUCED_MULTIPLIER_OPS[op.opcode]
        ctx = BuildContext(self._model, sg, op, {})
        factor = int16x8_requantization_factor(ctx.input_tensor(data), ctx.input_tensor(weights), ctx.output_tensor(0))
        if factor is None:
            return outputs
        with tf.name_scope("int16x8_requantization"):
            return [outputs[0] * tf.constant(factor if factor.size > 1 else factor.reshape(())), *outputs[1:]]

    def _on_output_grid(self, sg: ir.Subgraph, op: ir.Operator, inputs: list) -> list:
        """In ``fake_quant`` mode, a CONCATENATION input on another grid than the output's (uint8
        models of the TF1 converter have them; LiteRT's kernel rescales them) passes through
        ``minimum(x, top of its grid)``, which changes no value. The TFLite converter demands one scale
        for a concatenation's inputs and output: fed the FakeQuant'd input directly, it gives the
        input's producer the output's scale (dropping the input grid's clamp), and a second FakeQuant
        with the output's range is dropped; after the MINIMUM, which keeps the input's scale, it
        writes a requantizing QUANTIZE onto the output's grid, as the original kernel computes."""
        if self.quantized_mode != "fake_quant" or op.opcode not in _SAME_SCALE_OPS or op.outputs[0] is None:
            return inputs
        output = sg.tensors[op.outputs[0]]
        if not is_quantized_activation(output) or output.quantization.per_channel:
            return inputs
        grid = (float(output.quantization.scales[0]), int(output.quantization.zero_points[0]), output.dtype)
        rescaled = list(inputs)
        for position, index in enumerate(op.inputs):
            tensor = sg.tensors[index] if index is not None else None
            if tensor is None or inputs[position] is None or not is_quantized_activation(tensor) or tensor.quantization.per_channel:
                continue
            scale, zero_point = float(tensor.quantization.scales[0]), int(tensor.quantization.zero_points[0])
            if (scale, zero_point, tensor.dtype) != grid:
                top = (integer_range(tensor.dtype)[1] - zero_point) * scale
                with tf.name_scope("onto_output_grid"):
                    rescaled[position] = tf.minimum(inputs[position], top)
        return rescaled

    def on_grid(self, tensor: ir.Tensor, value: tf.Tensor, subgraph_index: int = 0) -> tf.Tensor:
        """In ``fake_quant`` mode, snap a quantized activation to its integer grid (the one place).
        A tensor with a calibrated uint8 grid (:attr:`activation_grids`) gets a FakeQuant node for
        it in any mode: how a float graph is given new ranges for the TF1 converter."""
        calibrated = self.activation_grids.get((subgraph_index, tensor.index))
        if calibrated is not None and value.dtype == tf.float32:
            with tf.name_scope("fake_quant"):
                return fake_quantize(value, calibrated, "uint8")
        if self.quantized_mode == "fake_quant" and is_quantized_activation(tensor):
            with tf.name_scope("fake_quant"):
                return fake_quantize(value, tensor.quantization, tensor.dtype)
        return value

    def constant_tensor(self, subgraph_index: int, index: int) -> tf.Tensor:
        """A subgraph output that no operator computes (a constant)."""
        return _constant_or_fail(self, subgraph_index, index)

    # -- tracing -----------------------------------------------------------------------------
    def run_subgraph(self, subgraph_index: int, feeds: Mapping[int, tf.Tensor],
                     operators: frozenset[int] | None = None) -> dict[int, tf.Tensor]:
        """Trace the operators of a subgraph (only ``operators`` when given); returns the tensor map."""
        sg = self._model.subgraphs[subgraph_index]
        constants = self._tables.stored[subgraph_index]
        values: dict[int, tf.Tensor] = dict(feeds)
        for op in sg.operators:
            if operators is not None and op.index not in operators:
                continue
            spec = self._spec(op)
            ctx = BuildContext(self._model, sg, op, constants, runtime=self)
            if spec is None:
                raise ctx.fail("no builder registered")
            inputs = [self._input_value(sg, op, p, values, ctx) for p in range(len(op.inputs))]
            inputs = _enforce_ranks(spec, inputs)
            inputs = self._hybrid_inputs(sg, op, inputs)
            inputs = self._on_output_grid(sg, op, inputs)
            scope = sanitize_name(output_name(sg, op))
            self._tables.pending_writes = {}
            try:
                with tf.name_scope(scope):
                    outputs = spec.builder(ctx, op, inputs)
                    if self.quantized_mode == "fake_quant" and op.opcode in INT16X8_REDUCED_MULTIPLIER_OPS:
                        outputs = self._int16x8_requantization(sg, op, outputs)
                    activation = op.options.get("fused_activation_function")
                    if op.activation_clip is not None:  # set by cross-layer equalization
                        outputs = [tf.minimum(tf.nn.relu(outputs[0]), op.activation_clip), *outputs[1:]]
                    elif activation is not None and spec.fused_activation:
                        outputs = [apply_fused_activation(outputs[0], activation), *outputs[1:]]
            except TfliteInverterError:
                raise
            except Exception as exc:
                raise with_cause(ctx.fail(f"{type(exc).__name__}: {exc}"), exc) from None
            if len(outputs) != len(op.outputs):
                raise ctx.fail(f"builder returned {len(outputs)} outputs, the operator has {len(op.outputs)}")
            self._commit_writes(sg, op, spec, values, ctx)
            for position, (index, value) in enumerate(zip(op.outputs, outputs)):
                if index is None:
                    continue
                _check_output(ctx, position, value, spec.check_shape, self.check_static_shapes)
                values[index] = self.on_grid(sg.tensors[index], value, subgraph_index)
            if self._tables.progress is not None:
                self._tables.progress.update()
        return values


def _enforce_ranks(spec: "registry.OpSpec", inputs: list) -> list:
    """An input of unknown rank gets the exact rank the op's signature declares, checked when run:
    TensorFlow's kernels abort the process on some ranks they do not take (Conv2D on a scalar)."""
    ranks = spec.signature.ranks if getattr(spec, "signature", None) is not None else {}
    out = list(inputs)
    for position, (low, high) in ranks.items():
        value = out[position] if position < len(out) else None
        if low == high and isinstance(value, tf.Tensor) and value.shape.rank is None:
            out[position] = tf.ensure_shape(value, [None] * low)
    return out


def _constant_or_fail(module: "InvertedModule", subgraph_index: int, index: int) -> tf.Tensor:
    consumed = module._tables.consumed[subgraph_index]
    tensor = module._model.subgraphs[subgraph_index].tensors[index]
    if index not in consumed:
        raise BuildError(f"{module._model.source}: subgraph {subgraph_index}: output {tensor.name!r} is never computed")
    return _constant(consumed[index], tensor)


def _constant(value: np.ndarray, tensor: ir.Tensor) -> tf.Tensor:
    if tensor.dtype == "string":
        return tf.constant(value.tolist() if value.ndim else value.item(), dtype=tf.string)
    return tf.constant(np.array(value))  # a copy: never let TensorFlow alias the mapped file


def _check_output(ctx: BuildContext, position: int, value: tf.Tensor, check_shape: bool = True,
                  static_dims: bool = True) -> None:
    """Every built tensor must have the dtype and the static shape the file records."""
    tensor = ctx.output_tensor(position)
    expected_dtype = graph_dtype(tensor)
    if value.dtype != expected_dtype:
        raise ctx.fail(f"output {position} is {value.dtype.name}, the file says {tensor.dtype}")
    if not check_shape or not tensor.has_rank or not tensor.shape_signature and not tensor.shape or tensor.dtype in ("resource", "variant"):
        return  # TFLite gives resource handles shape [1]; TensorFlow's are scalars
    static = value.shape
    if static.rank is not None and static.rank != len(tensor.shape_signature) and tensor.shape:
        raise ctx.fail(f"output {position} has rank {static.rank}, the file says shape {list(tensor.shape_signature)}")
    if static.rank is not None and tensor.shape and static_dims:
        for built, recorded in zip(static.as_list(), tensor.shape_signature):
            if built is not None and recorded >= 0 and built != recorded:
                raise ctx.fail(f"output {position} has shape {static.as_list()}, the file says {list(tensor.shape_signature)}")

"""Building TensorFlow from the IR: the tensor map, constants, fused activations, signatures.

``invert(model)`` returns an :class:`InvertedModel`: a ``tf.Module`` holding the weights as
``tf.Variable`` s and one ``tf.function`` per signature. Operators are walked in file order
(TFLite stores them topologically sorted); each is built by the builder registered for its
opcode. This module knows no single op's semantics.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from . import ir
from .errors import BuildError, TfliteInverterError, UnsupportedOp, UnsupportedOpsError, with_cause
from . import ops  # noqa: F401  (registers the builders)
from .ops import registry
from .quantization import HYBRID_INPUTS, dequantize_array, fake_quantize, fake_quantize_dynamic, is_quantized_activation
from .names import sanitize_name  # also imported from graph by comparison.py and tests
from .passthrough import Passthrough
from .sparsity import densify

QUANTIZED_MODES = ("fake_quant", "dequantize")

TF_DTYPES: dict[str, tf.DType] = {
    "float32": tf.float32, "float16": tf.float16, "float64": tf.float64, "bfloat16": tf.bfloat16,
    "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "uint16": tf.uint16,
    "int32": tf.int32, "uint32": tf.uint32, "int64": tf.int64, "uint64": tf.uint64,
    "bool": tf.bool, "string": tf.string, "complex64": tf.complex64, "complex128": tf.complex128,
    "resource": tf.resource, "variant": tf.variant, "int4": tf.int8, "uint4": tf.uint8, "int2": tf.int8,
}

_ACTIVATIONS = {
    "NONE": lambda x: x,
    "RELU": tf.nn.relu,
    "RELU_N1_TO_1": lambda x: tf.clip_by_value(x, -1.0, 1.0),
    "RELU6": tf.nn.relu6,
    "TANH": tf.math.tanh,
}


def apply_fused_activation(x: tf.Tensor, activation: str) -> tf.Tensor:
    """The one place fused activations are applied; an unknown activation raises."""
    try:
        function = _ACTIVATIONS[activation]
    except KeyError:
        raise TfliteInverterError(f"unsupported fused activation {activation!r}") from None
    return function(x)


def _unique(names: Sequence[str]) -> list[str]:
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


def check_supported(model: ir.Model, *, strict: bool = False, main_operators: frozenset[int] | None = None,
                    passthrough: "Passthrough | None" = None) -> None:
    """Raise one :class:`UnsupportedOpsError` listing every unsupported op, before building
    (in the main subgraph, only ``main_operators`` when the model is cut). Custom ops that
    ``passthrough`` covers are not unsupported: they become opaque nodes."""
    problems: dict[str, UnsupportedOp] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            if sg.index == 0 and main_operators is not None and op.index not in main_operators:
                continue
            spec = registry.lookup(op.opcode)
            location = f"subgraph {sg.index} operator {op.index}, output {_output_name(sg, op)!r}"
            if passthrough is not None and passthrough.covers(op):
                if (refusal := passthrough.refusal(sg, op)) is not None:
                    problems.setdefault(op.opcode, UnsupportedOp(location, refusal)).count += 1
                continue
            if spec is None:
                key, reason = op.opcode, "no builder registered"
                if op.is_custom:
                    reason = "custom operator with no registered builder (see tflite_inverter.register_custom)"
            elif spec.validator is not None and (refusal := spec.validator(op)) is not None:
                key, reason = op.opcode, refusal
            elif op.version > spec.max_version:
                key = f"{op.opcode} v{op.version}"
                reason = f"op version {op.version} is above the highest tested version {spec.max_version}"
                if not strict:
                    warnings.warn(f"{model.source}: {location}: {op.opcode} {reason}", stacklevel=3)
                    continue
            else:
                continue
            problems.setdefault(key, UnsupportedOp(location, reason)).count += 1
        foldable = {
            i for op in sg.operators if (spec := registry.lookup(op.opcode)) is not None and spec.folder is not None
            and all(x is None or sg.tensors[x].data is not None for x in op.inputs) for i in op.outputs
        }
        for tensor in sg.tensors:
            if tensor.index in foldable:
                continue
            if is_quantized_activation(tensor) and tensor.quantization.per_channel:
                key = "per-channel quantized activations"
                reason = "an activation quantized per channel (TFLite kernels quantize activations per tensor)"
                problems.setdefault(key, UnsupportedOp(f"subgraph {sg.index} tensor {tensor.name!r}", reason)).count += 1
    if problems:
        raise UnsupportedOpsError(model.source, problems)


def graph_dtype(tensor: ir.Tensor) -> tf.DType:
    """The dtype a tensor has in the inverted graph: quantized activations are carried as their
    real (float32) values; everything else keeps its TFLite type."""
    return tf.float32 if is_quantized_activation(tensor) else TF_DTYPES[tensor.dtype]


def _output_name(sg: ir.Subgraph, op: ir.Operator) -> str:
    return sg.tensors[op.outputs[0]].name if op.outputs and op.outputs[0] is not None else "?"


class BuildContext:
    """What a builder (or folder) may know about its operator, without touching files."""

    def __init__(self, model: ir.Model, subgraph: ir.Subgraph, op: ir.Operator, constants: Mapping[int, np.ndarray],
                 runtime: "InvertedModule | None" = None):
        self.model = model
        self.subgraph = subgraph
        self.op = op
        self._constants = constants
        self._runtime = runtime

    @property
    def options(self) -> Mapping[str, Any]:
        return self.op.options

    def input_tensor(self, position: int) -> ir.Tensor | None:
        if position >= len(self.op.inputs) or self.op.inputs[position] is None:
            return None
        return self.subgraph.tensors[self.op.inputs[position]]

    def output_tensor(self, position: int) -> ir.Tensor:
        return self.subgraph.tensors[self.op.outputs[position]]

    def constant(self, position: int) -> np.ndarray | None:
        """Input ``position`` as numpy if it is constant (after folding), in TFLite layout."""
        if position >= len(self.op.inputs) or self.op.inputs[position] is None:
            return None
        return self._constants.get(self.op.inputs[position])

    def output_dtype(self, position: int = 0) -> tf.DType:
        """The dtype output ``position`` has in the graph (float32 for a quantized activation)."""
        return graph_dtype(self.output_tensor(position))

    def output_shape(self, position: int = 0) -> list[int | None]:
        """Static output shape from the file, ``None`` where the dimension is dynamic."""
        return [None if d < 0 else d for d in self.output_tensor(position).shape_signature]

    def run_subgraph(self, index: int, inputs: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """Trace subgraph ``index`` on ``inputs`` (in its input order); its outputs in order.
        For control flow (WHILE, IF, CALL_ONCE): the builder decides where the trace happens."""
        if self._runtime is None or not 0 <= index < len(self.model.subgraphs):
            raise self.fail(f"cannot run subgraph {index}")
        sg = self.model.subgraphs[index]
        if len(inputs) != len(sg.inputs):
            raise self.fail(f"subgraph {index} takes {len(sg.inputs)} inputs, got {len(inputs)}")
        values = self._runtime.run_subgraph(index, dict(zip(sg.inputs, inputs)))
        return [values[i] if i in values else self._runtime.constant_tensor(index, i) for i in sg.outputs]

    @property
    def quantized_mode(self) -> str:
        """``fake_quant`` or ``dequantize``: how the inversion treats quantized models."""
        return self._runtime.quantized_mode if self._runtime is not None else "fake_quant"

    def resource(self, key: str):
        """The module-level state object (tf.Variable, hash table) for a TFLite resource key."""
        if self._runtime is None or key not in self._runtime.resources:
            raise self.fail(f"no resource {key!r}")
        return self._runtime.resources[key]

    def fail(self, message: str) -> BuildError:
        return BuildError(
            f"{self.model.source}: subgraph {self.subgraph.index} operator {self.op.index} {self.op.opcode} "
            f"(output {_output_name(self.subgraph, self.op)!r}): {message}"
        )


def fold_constants(model: ir.Model, subgraph: ir.Subgraph) -> tuple[dict[int, np.ndarray], set[int]]:
    """Constant values of a subgraph, including outputs of foldable ops (DEQUANTIZE, DENSIFY)."""
    constants: dict[int, np.ndarray] = {}
    produced = {i for op in subgraph.operators for i in op.outputs if i is not None} | set(subgraph.inputs)
    for t in subgraph.tensors:
        if t.is_variable:
            # A variable tensor (an RNN/LSTM state) starts every invocation from its buffer, or zeros:
            # the inverted function is stateless, like an interpreter whose variables are reset.
            if t.data is None and t.dtype in ir.NUMPY_DTYPES and all(d >= 0 for d in t.shape):
                constants[t.index] = np.zeros(t.shape, ir.NUMPY_DTYPES[t.dtype])
            elif t.data is not None:
                constants[t.index] = t.data
            continue
        if t.data is not None and t.sparsity is not None:
            # Sparse constants are densified once, here, whoever consumes them (DENSIFY, DEQUANTIZE,
            # or a FULLY_CONNECTED that takes block-sparse weights directly).
            where = f"{model.source}: subgraph {subgraph.index} tensor {t.name!r}"
            constants[t.index] = densify(np.asarray(t.data), t.shape, t.sparsity, where)
        elif t.data is not None:
            constants[t.index] = t.data
        elif t.index not in produced and t.shape and 0 in t.shape and t.dtype in ir.NUMPY_DTYPES:
            constants[t.index] = np.zeros(t.shape, ir.NUMPY_DTYPES[t.dtype])  # an empty constant has no buffer
    folded: set[int] = set()
    for op in subgraph.operators:
        spec = registry.lookup(op.opcode)
        if spec is None or spec.folder is None:
            continue
        present = [i for i in op.inputs if i is not None]
        if not present or not all(i in constants for i in present):
            continue
        ctx = BuildContext(model, subgraph, op, constants)
        values = [None if i is None else constants[i] for i in op.inputs]
        try:
            outputs = spec.folder(ctx, op, values)
        except TfliteInverterError:
            raise
        except Exception as exc:  # a folder bug must name the operator
            raise with_cause(ctx.fail(f"folding constants failed: {type(exc).__name__}: {exc}"), exc) from None
        for index, value in zip(op.outputs, outputs):
            constants[index] = value
        folded.add(op.index)
    return constants, folded


def consumable_constant(subgraph: ir.Subgraph, index: int, constants: Mapping[int, np.ndarray]) -> np.ndarray:
    """A constant as an operator consumes it: quantized integer constants (int8 weights of
    hybrid or integer models, int32 biases) are dequantized here, once, at load."""
    value = constants[index]
    tensor = subgraph.tensors[index]
    if np.asarray(value).dtype.kind == "f":
        return value  # already real (for example rewritten by cross-layer equalization)
    if tensor.quantization is not None and tensor.dtype in ("int8", "uint8", "int16", "int32", "int4", "int64"):
        return dequantize_array(np.asarray(value), tensor.quantization)
    return value


@dataclass(frozen=True)
class SignatureInfo:
    key: str
    subgraph_index: int
    input_names: tuple[str, ...]
    input_tensors: tuple[int, ...]
    output_names: tuple[str, ...]
    output_tensors: tuple[int, ...]
    operators: frozenset[int] | None = None  # a cut model builds only these operators of its subgraph


def needed_operators(subgraph: ir.Subgraph, outputs: Sequence[int], inputs: Sequence[int]) -> frozenset[int]:
    """The operators that compute ``outputs`` from ``inputs`` (and the constants): walking back
    from the outputs, stopping at the given inputs."""
    producer = {out: op for op in subgraph.operators for out in op.outputs if out is not None}
    needed: set[int] = set()
    stack, seen, stop = list(outputs), set(), set(inputs)
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor in stop:
            continue
        seen.add(tensor)
        op = producer.get(tensor)
        if op is not None and op.index not in needed:
            needed.add(op.index)
            stack.extend(i for i in op.inputs if i is not None)
    return frozenset(needed)


def cut_signature(model: ir.Model, inputs: Sequence[str] | None, outputs: Sequence[str] | None) -> SignatureInfo:
    """A ``serving_default`` over the main subgraph that starts at ``inputs`` and ends at ``outputs``
    (tensor names; default: the model's own)."""
    sg = model.main
    by_name = {t.name: t.index for t in sg.tensors}
    for name in [*(inputs or []), *(outputs or [])]:
        if name not in by_name:
            close = [n for n in by_name if name.lower() in n.lower()][:5]
            raise TfliteInverterError(f"{model.source}: no tensor named {name!r} in the main subgraph"
                                      + (f" (similar: {close})" if close else ""))
    input_tensors = tuple(by_name[n] for n in inputs) if inputs else tuple(sg.inputs)
    output_tensors = tuple(by_name[n] for n in outputs) if outputs else tuple(sg.outputs)
    operators = needed_operators(sg, output_tensors, input_tensors)
    produced = {out for i in operators for out in sg.operators[i].outputs}
    constants = {t.index for t in sg.tensors if t.data is not None}
    missing = {i for op in operators for i in sg.operators[op].inputs
               if i is not None and i not in produced and i not in input_tensors and i not in constants}
    if missing:
        raise TfliteInverterError(f"{model.source}: the outputs need tensors the inputs do not give: "
                                  f"{sorted(sg.tensors[i].name for i in missing)[:5]}")
    return SignatureInfo(
        "serving_default", 0,
        tuple(_unique([sanitize_name(sg.tensors[i].name) for i in input_tensors])), input_tensors,
        tuple(_unique([sanitize_name(sg.tensors[i].name) for i in output_tensors])), output_tensors,
        operators,
    )


def model_signatures(model: ir.Model) -> list[SignatureInfo]:
    """The model's SignatureDefs, or one ``serving_default`` over the main subgraph."""
    if model.signatures:
        return [
            SignatureInfo(
                sig.key, sig.subgraph_index,
                tuple(_unique([sanitize_name(n) for n in sig.inputs])), tuple(sig.inputs.values()),
                tuple(_unique([sanitize_name(n) for n in sig.outputs])), tuple(sig.outputs.values()),
            )
            for sig in model.signatures
        ]
    sg = model.main
    return [
        SignatureInfo(
            "serving_default", 0,
            tuple(_unique([sanitize_name(sg.tensors[i].name) for i in sg.inputs])), sg.inputs,
            tuple(_unique([sanitize_name(sg.tensors[i].name) for i in sg.outputs])), sg.outputs,
        )
    ]


class _Tables:
    """Constants and weight names per subgraph (kept out of ``tf.Module`` attribute tracking)."""

    def __init__(self) -> None:
        self.folded: dict[int, tuple[dict[int, np.ndarray], set[int]]] = {}
        self.weight_keys: dict[tuple[int, int, int], str] = {}
        self.weights_as_constants = False  # set while tracing the frozen graph
        self.frozen_placeholders: dict[str, str] = {}  # placeholder node name -> weight name


class InvertedModule(tf.Module):
    """Weights as variables plus the machinery to trace a subgraph into TensorFlow ops."""

    def __init__(self, model: ir.Model, name: str = "inverted", quantized: str = "fake_quant",
                 check_static_shapes: bool = True, passthrough: Passthrough | None = None, equalize: bool = False):
        super().__init__(name=name)
        if quantized not in QUANTIZED_MODES:
            raise TfliteInverterError(f"quantized must be one of {QUANTIZED_MODES}, not {quantized!r}")
        self._model = model
        self.quantized_mode = quantized
        self.check_static_shapes = check_static_shapes
        self._tables = _Tables()  # plain Python state, invisible to TensorFlow's tracking
        self.weights: dict[str, tf.Variable] = {}
        self.resources: dict[str, Any] = {}  # TFLite resource variables and hash tables, by key
        self.passthrough = passthrough
        # (subgraph, operator) -> per-channel upper bound that replaces the fused RELU/RELU6 after
        # cross-layer equalization rescaled the operator's output channels.
        self.activation_clips: dict[tuple[int, int], np.ndarray] = {}
        # (subgraph, tensor) -> a calibrated uint8 grid, applied by on_grid when traced.
        self.activation_grids: dict[tuple[int, int], ir.QuantParams] = {}
        for sg in model.subgraphs:
            self._tables.folded[sg.index] = fold_constants(model, sg)
        if equalize:
            from .equalize import equalize_constants

            self.activation_clips = equalize_constants(model, self._tables.folded)
        for sg in model.subgraphs:
            self._create_weights(sg)
        for sg in model.subgraphs:
            for op in sg.operators:
                spec = registry.lookup(op.opcode)
                if spec is not None and spec.resource_factory is not None:
                    ctx = BuildContext(model, sg, op, self._tables.folded[sg.index][0])
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
    def folded_constants(self, subgraph_index: int) -> tuple[dict[int, np.ndarray], set[int]]:
        """A subgraph's constants by tensor index (TFLite layout) and the operators folded into them."""
        return self._tables.folded[subgraph_index]

    def weight_variable(self, subgraph_index: int, tensor_index: int) -> tf.Variable | None:
        """The variable holding a constant tensor's value, if it became one."""
        for (subgraph, index, _), name in self._tables.weight_keys.items():
            if subgraph == subgraph_index and index == tensor_index:
                return self.weights[name]
        return None

    def _create_weights(self, sg: ir.Subgraph) -> None:
        constants, folded = self._tables.folded[sg.index]
        names = {}
        for op in sg.operators:
            if op.index in folded:
                continue
            spec = self._spec(op)
            for position, index in enumerate(op.inputs):
                if index is None or index not in constants:
                    continue
                layout = spec.weight_layouts.get(position) if spec else None
                ctx = BuildContext(self._model, sg, op, constants)
                try:
                    value = consumable_constant(sg, index, constants)
                    if layout is not None:
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
                base = sanitize_name(sg.tensors[index].name)
                if sg.index:
                    base = f"{sanitize_name(sg.name)}/{base}"
                name = base
                while name in names:
                    names[base] = names.get(base, 0) + 1
                    name = f"{base}_{names[base]}"
                names[name] = 0
                # np.array copies: TensorFlow may alias a numpy buffer, and this one is the mapped file.
                self.weights[name] = tf.Variable(np.array(value), name=name, trainable=True)
                self._tables.weight_keys[key] = name

    def _input_value(self, sg: ir.Subgraph, op: ir.Operator, position: int, values: dict, ctx: BuildContext):
        index = op.inputs[position]
        if index is None:
            return None
        spec = self._spec(op)
        layout = spec.weight_layouts.get(position) if spec else None
        if index in values:
            value = values[index]
            return layout(value, ctx, tf) if layout is not None else value
        constants, _ = self._tables.folded[sg.index]
        if index in constants:
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
            value = consumable_constant(sg, index, constants)
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
        try:
            yield self._tables.frozen_placeholders
        finally:
            self._tables.weights_as_constants = False

    def _hybrid_inputs(self, sg: ir.Subgraph, op: ir.Operator, inputs: list) -> list:
        """In ``fake_quant`` mode, a hybrid op (float input, int8 constant weights) sees its float input
        quantized on the fly, as TFLite's hybrid kernel does; ``dequantize`` mode computes in float."""
        if self.quantized_mode != "fake_quant" or op.opcode not in HYBRID_INPUTS:
            return inputs
        position, granularity, asymmetry = HYBRID_INPUTS[op.opcode]
        if callable(granularity):
            granularity = granularity(op.options)
        data = sg.tensors[op.inputs[position]] if op.inputs[position] is not None else None
        constants, _ = self._tables.folded[sg.index]
        weights = [sg.tensors[i] for i in op.inputs
                   if i is not None and sg.tensors[i].dtype == "int8" and sg.tensors[i].quantization is not None and i in constants]
        if data is None or data.dtype != "float32" or not weights:
            return inputs
        if asymmetry == "option":
            asymmetric = bool(op.options.get("asymmetric_quantize_inputs", False))
        else:
            asymmetric = weights[0].quantization.per_channel
        with tf.name_scope("hybrid_input"):
            quantized = fake_quantize_dynamic(inputs[position], granularity, asymmetric)
        return [*inputs[:position], quantized, *inputs[position + 1:]]

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
        constants, folded = self._tables.folded[subgraph_index]
        values: dict[int, tf.Tensor] = dict(feeds)
        for op in sg.operators:
            if op.index in folded or (operators is not None and op.index not in operators):
                continue
            spec = self._spec(op)
            ctx = BuildContext(self._model, sg, op, constants, runtime=self)
            if spec is None:
                raise ctx.fail("no builder registered")
            inputs = [self._input_value(sg, op, p, values, ctx) for p in range(len(op.inputs))]
            inputs = _enforce_ranks(spec, inputs)
            inputs = self._hybrid_inputs(sg, op, inputs)
            scope = sanitize_name(_output_name(sg, op))
            try:
                with tf.name_scope(scope):
                    outputs = spec.builder(ctx, op, inputs)
                    activation = op.options.get("fused_activation_function")
                    clip = self.activation_clips.get((subgraph_index, op.index))
                    if clip is not None:
                        outputs = [tf.minimum(tf.nn.relu(outputs[0]), clip), *outputs[1:]]
                    elif activation is not None and spec.fused_activation:
                        outputs = [apply_fused_activation(outputs[0], activation), *outputs[1:]]
            except TfliteInverterError:
                raise
            except Exception as exc:
                raise with_cause(ctx.fail(f"{type(exc).__name__}: {exc}"), exc) from None
            if len(outputs) != len(op.outputs):
                raise ctx.fail(f"builder returned {len(outputs)} outputs, the operator has {len(op.outputs)}")
            for position, (index, value) in enumerate(zip(op.outputs, outputs)):
                if index is None:
                    continue
                _check_output(ctx, position, value, spec.check_shape, self.check_static_shapes)
                values[index] = self.on_grid(sg.tensors[index], value, subgraph_index)
        return values


def _enforce_ranks(spec: "registry.OpSpec", inputs: list) -> list:
    """An input of unknown rank gets the exact rank the op's signature declares, checked when run:
    TensorFlow's kernels abort the process on some ranks they do not take (Conv2D on a scalar)."""
    ranks = spec.signature.ranks if spec.signature is not None else {}
    out = list(inputs)
    for position, (low, high) in ranks.items():
        value = out[position] if position < len(out) else None
        if low == high and isinstance(value, tf.Tensor) and value.shape.rank is None:
            out[position] = tf.ensure_shape(value, [None] * low)
    return out


def _constant_or_fail(module: "InvertedModule", subgraph_index: int, index: int) -> tf.Tensor:
    constants, _ = module._tables.folded[subgraph_index]
    tensor = module._model.subgraphs[subgraph_index].tensors[index]
    if index not in constants:
        raise BuildError(f"{module._model.source}: subgraph {subgraph_index}: output {tensor.name!r} is never computed")
    return _constant(constants[index], tensor)


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

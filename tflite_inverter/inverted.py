"""The public result of inversion: a TensorFlow module with one function per signature."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from . import ir
from .errors import RunError, TfliteInverterError, with_cause
from .graph import TF_DTYPES, InvertedModule, SignatureInfo, check_supported, cut_signature, model_signatures
from .names import python_identifier
from .passes.validate import validate
from .passthrough import Passthrough
from .quantization import dequantize_tensor, is_quantized_activation, quantize_tensor


IO_MODES = ("native", "float")


@dataclass(frozen=True)
class IOSpec:
    """One input or output of a signature, with the tensor it comes from.

    ``dtype`` is what the inverted model takes or returns: the TFLite type with ``io="native"``,
    ``float32`` for a quantized input/output with ``io="float"``.
    """

    name: str  # the key in the SavedModel signature
    tensor: ir.Tensor
    dtype: str

    @property
    def shape(self) -> list[int | None]:
        return [None if d < 0 else d for d in self.tensor.shape_signature]

    @property
    def quantized(self) -> bool:
        return is_quantized_activation(self.tensor)


class InvertedModel:
    """A ``.tflite`` model rebuilt in TensorFlow.

    ``module`` is a ``tf.Module`` whose weights are ``tf.Variable`` s; ``functions`` maps each
    signature key to a ``tf.function``. Call :meth:`run` with numpy inputs, or save with
    :meth:`save_saved_model` and :meth:`save_frozen_pb`.
    """

    def __init__(self, model: ir.Model, *, strict: bool = False, quantized: str = "fake_quant", io: str = "native",
                 input_shapes: Mapping[str, Sequence[int | None]] | None = None,
                 inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
                 passthrough: bool | Sequence[str] = False, equalize: bool = False):
        validate(model)  # an untrusted file fails here, named, before any TensorFlow op is made
        if io not in IO_MODES:
            raise TfliteInverterError(f"io must be one of {IO_MODES}, not {io!r}")
        if equalize and quantized == "fake_quant" and any(is_quantized_activation(t) for t in model.main.tensors):
            raise TfliteInverterError("equalize rescales activations, so the FakeQuant ranges of a quantized model no "
                                      "longer hold: use quantized='dequantize' and calibrate again")
        self.cut = (tuple(inputs or ()), tuple(outputs or ())) if inputs or outputs else None
        self.passthrough = Passthrough.of(passthrough)
        if self.cut:
            signatures = [cut_signature(model, inputs, outputs)]
            check_supported(model, strict=strict, main_operators=signatures[0].operators, passthrough=self.passthrough)
        else:
            check_supported(model, strict=strict, passthrough=self.passthrough)
            signatures = model_signatures(model)
        self.model = model
        self.io = io
        self.signatures: dict[str, SignatureInfo] = {s.key: s for s in signatures}
        self.input_shapes = self._resolve_input_shapes(input_shapes or {})
        # With new input shapes, the file's static shapes of later tensors no longer hold: builders
        # follow the inputs, and an op that hard-codes a shape fails, named, when it is traced.
        self.module = InvertedModule(model, quantized=quantized, check_static_shapes=not self.input_shapes,
                                     passthrough=self.passthrough, equalize=equalize)
        self.functions: dict[str, tf.types.experimental.PolymorphicFunction] = {}
        self._debug_functions: dict[str, Any] = {}
        for info in self.signatures.values():
            function = tf.function(self._signature_body(info), input_signature=self._input_specs(info), autograph=False)
            setattr(self.module, f"signature_{python_identifier(info.key)}", function)
            self.functions[info.key] = function
        # Trace now so that an op that cannot be built fails here, not at save time.
        self.concrete_functions = {key: fn.get_concrete_function() for key, fn in self.functions.items()}

    # -- description ---------------------------------------------------------------------------
    def inputs(self, signature: str | None = None) -> list[IOSpec]:
        info = self._info(signature)
        sg = self.model.subgraphs[info.subgraph_index]
        return [IOSpec(python_identifier(n), sg.tensors[i], self._io_dtype(sg.tensors[i]))
                for n, i in zip(info.input_names, info.input_tensors)]

    def outputs(self, signature: str | None = None) -> list[IOSpec]:
        info = self._info(signature)
        sg = self.model.subgraphs[info.subgraph_index]
        return [IOSpec(n, sg.tensors[i], self._io_dtype(sg.tensors[i])) for n, i in zip(info.output_names, info.output_tensors)]

    @property
    def quantized_mode(self) -> str:
        return self.module.quantized_mode

    def _io_dtype(self, tensor: ir.Tensor) -> str:
        return "float32" if self.io == "float" and is_quantized_activation(tensor) else tensor.dtype

    @property
    def default_signature(self) -> str:
        return "serving_default" if "serving_default" in self.signatures else next(iter(self.signatures))

    def _info(self, signature: str | None) -> SignatureInfo:
        key = signature or self.default_signature
        if key not in self.signatures:
            raise TfliteInverterError(f"no signature {key!r}; the model has {sorted(self.signatures)}")
        return self.signatures[key]

    # -- running --------------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, np.ndarray] | list[np.ndarray], signature: str | None = None) -> dict[str, np.ndarray]:
        """Run one signature on numpy inputs (by name, or a list in input order)."""
        specs = self.inputs(signature)
        if not isinstance(inputs, Mapping):
            inputs = {spec.name: value for spec, value in zip(specs, inputs)}
        missing = [s.name for s in specs if s.name not in inputs]
        if missing:
            raise TfliteInverterError(f"missing inputs {missing}; expected {[s.name for s in specs]}")
        self._refuse_passthrough(self._info(signature))
        function = self.functions[signature or self.default_signature]
        try:
            result = function(**{s.name: tf.convert_to_tensor(inputs[s.name], TF_DTYPES[s.dtype]) for s in specs})
        except (tf.errors.OpError, TypeError, ValueError) as exc:
            # TensorFlow's message ends with what went wrong, after the traceback of the op's creation.
            lines = [line.strip() for line in str(getattr(exc, "message", exc)).splitlines()]
            lines = [line for line in lines if line and not line.startswith(("[[", "File ", "Detected at node"))]
            raise with_cause(RunError(f"{self.model.source}: running signature {signature or self.default_signature!r} failed: "
                                      f"{type(exc).__name__}: {lines[-1] if lines else ''}"), exc) from None
        return {name: value.numpy() for name, value in result.items()}

    def tensor_values(self, inputs: Mapping[str, np.ndarray] | list[np.ndarray], signature: str | None = None) -> dict[int, np.ndarray]:
        """Every tensor the signature's subgraph computes, by TFLite tensor index (for per-tensor
        verification). Quantized activations come back as real values."""
        info = self._info(signature)
        self._refuse_passthrough(info)
        specs = self.inputs(info.key)
        if not isinstance(inputs, Mapping):
            inputs = {spec.name: value for spec, value in zip(specs, inputs)}
        if info.key not in self._debug_functions:
            body = self._signature_body(info, every_tensor=True)
            self._debug_functions[info.key] = tf.function(body, input_signature=self._input_specs(info), autograph=False)
        result = self._debug_functions[info.key](**{s.name: tf.convert_to_tensor(inputs[s.name], TF_DTYPES[s.dtype]) for s in specs})
        return {int(key): value.numpy() for key, value in result.items()}

    def frozen_concrete_function(self, signature: str | None = None):
        """The signature traced with a placeholder for each weight, and the map from those placeholder
        node names to :attr:`module.weights` names (see :mod:`tflite_inverter.emit.frozen_pb`)."""
        info = self._info(signature)
        with self.module.frozen() as placeholders:
            function = tf.function(self._signature_body(info), input_signature=self._input_specs(info), autograph=False)
            concrete = function.get_concrete_function()
            return concrete, dict(placeholders)

    # -- saving -----------------------------------------------------------------------------------
    def save_saved_model(self, path: str | Path, *, overwrite: bool = False) -> Path:
        from .emit.saved_model import save_saved_model

        return save_saved_model(self, Path(path), overwrite=overwrite)

    def save_frozen_pb(self, path: str | Path, *, overwrite: bool = False, signature: str | None = None) -> Path:
        from .emit.frozen_pb import save_frozen_pb

        return save_frozen_pb(self, Path(path), overwrite=overwrite, signature=signature)

    # -- internals --------------------------------------------------------------------------------
    def _refuse_passthrough(self, info: SignatureInfo) -> None:
        from .passthrough import custom_code, passthrough_ops

        if info.subgraph_index != 0:
            return
        opaque = [op for op in passthrough_ops(self.model, self.passthrough) if info.operators is None or op.index in info.operators]
        if opaque:
            listed = ", ".join(f"operator {op.index} {custom_code(op)!r}" for op in opaque)
            raise TfliteInverterError(
                f"{self.model.source}: cannot run: {listed} passed through as opaque nodes, which TensorFlow cannot "
                "compute. Re-convert the frozen pb (or the SavedModel) to .tflite with allow_custom_ops, or cut the "
                "model before them with outputs=")

    def _resolve_input_shapes(self, requested: Mapping[str, Sequence[int | None]]) -> dict[tuple[str, int], list[int | None]]:
        """Map user names (signature input names, their identifier form, or tensor names) to inputs."""
        resolved: dict[tuple[str, int], list[int | None]] = {}
        unknown = set(requested)
        for info in self.signatures.values():
            sg = self.model.subgraphs[info.subgraph_index]
            for name, index in zip(info.input_names, info.input_tensors):
                tensor = sg.tensors[index]
                for candidate in (name, python_identifier(name), tensor.name):
                    if candidate in requested:
                        shape = [None if d is None or d < 0 else int(d) for d in requested[candidate]]
                        if tensor.has_rank and len(shape) != len(tensor.shape_signature):
                            raise TfliteInverterError(f"input {name!r} has rank {len(tensor.shape_signature)}; "
                                                      f"the shape given has rank {len(shape)}")
                        resolved[(info.key, index)] = shape
                        unknown.discard(candidate)
        if unknown:
            names = sorted({n for info in self.signatures.values() for n in info.input_names})
            raise TfliteInverterError(f"input_shapes names unknown inputs {sorted(unknown)}; the inputs are {names}")
        return resolved

    def _input_specs(self, info: SignatureInfo) -> list[tf.TensorSpec]:
        sg = self.model.subgraphs[info.subgraph_index]
        specs = []
        for name, index in zip(info.input_names, info.input_tensors):
            tensor = sg.tensors[index]
            shape = [None if d < 0 else d for d in tensor.shape_signature] if tensor.has_rank else None
            shape = self.input_shapes.get((info.key, index), shape)
            specs.append(tf.TensorSpec(shape, TF_DTYPES[self._io_dtype(tensor)], name=name))
        return specs

    def _signature_body(self, info: SignatureInfo, every_tensor: bool = False):
        module = self.module
        sg = self.model.subgraphs[info.subgraph_index]
        native_io = self.io == "native"

        parameter_names = [python_identifier(n) for n in info.input_names]

        def graph_input(index: int, value: tf.Tensor) -> tf.Tensor:
            """Quantized inputs enter the graph as real values (dequantized, or snapped to the grid)."""
            tensor = sg.tensors[index]
            if not is_quantized_activation(tensor):
                return module.on_grid(tensor, value, info.subgraph_index)  # a calibrated range, if any
            return dequantize_tensor(value, tensor.quantization) if native_io else module.on_grid(tensor, value)

        def graph_output(index: int, value: tf.Tensor) -> tf.Tensor:
            tensor = sg.tensors[index]
            if native_io and is_quantized_activation(tensor):
                return quantize_tensor(value, tensor.quantization, tensor.dtype)
            return value

        def body(*args: tf.Tensor, **kwargs: tf.Tensor) -> dict[str, tf.Tensor]:
            args = args + tuple(kwargs[name] for name in parameter_names[len(args):])
            feeds = {index: graph_input(index, value) for index, value in zip(info.input_tensors, args)}
            values = module.run_subgraph(info.subgraph_index, feeds, info.operators)
            if every_tensor:
                return {str(i): v for i, v in values.items() if isinstance(v, tf.Tensor) and v.dtype not in (tf.resource, tf.variant)}
            outputs = {}
            for name, index in zip(info.output_names, info.output_tensors):
                if index not in values:  # an output that is an input or a constant
                    values[index] = module.constant_tensor(info.subgraph_index, index)
                outputs[name] = tf.identity(graph_output(index, values[index]), name=name.replace("/", "_"))
            return outputs

        body.__name__ = python_identifier(info.key)
        body.__signature__ = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in parameter_names]
        )
        return body


def invert(model: ir.Model | str | Path | bytes, *, strict: bool = False, quantized: str = "fake_quant",
           io: str = "native", input_shapes: Mapping[str, Sequence[int | None]] | None = None,
           inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
           passthrough: bool | Sequence[str] = False, equalize: bool = False) -> InvertedModel:
    """Rebuild a TFLite model (IR, path or bytes) as TensorFlow.

    ``quantized``: for integer-quantized models, ``"fake_quant"`` (default) snaps every quantized
    activation to its grid with FakeQuant ops, so the float graph computes what the integer model
    computes and re-converts without calibration; ``"dequantize"`` gives the plain float graph.
    ``io``: ``"native"`` (default) takes and returns what the original does (uint8 in, uint8 out);
    ``"float"`` takes and returns real values, the (de)quantization folded in.
    ``strict``: fail on op versions above those the tests cover (default: warn).
    ``input_shapes``: ``{input name: shape}`` fixes dynamic dimensions or changes static ones (batch,
    resolution; ``None`` for dynamic) where the graph allows; an op that hard-codes a shape fails
    with an error naming it.
    ``outputs`` / ``inputs``: tensor names at which to cut the main subgraph (drop post-processing
    for an accelerator, or start after pre-processing); only the operators between are built.
    ``passthrough``: ``True`` (every custom op with no builder) or a list of custom codes kept as
    opaque nodes: the frozen pb holds them as nodes of that op type for re-conversion with
    ``allow_custom_ops``; the SavedModel cannot run them and raises, naming the op.
    ``equalize``: cross-layer equalization (rescale the channels between consecutive convolutions so
    that one scale per weight tensor suffices); the function is unchanged up to float rounding.
    """
    if not isinstance(model, ir.Model):
        from .reader import load

        model = load(model)
    return InvertedModel(model, strict=strict, quantized=quantized, io=io, input_shapes=input_shapes,
                         inputs=inputs, outputs=outputs, passthrough=passthrough, equalize=equalize)



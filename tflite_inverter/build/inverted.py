"""The public result of inversion: a TensorFlow module with one function per signature."""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..logs import import_tensorflow

tf = import_tensorflow()  # TensorFlow's start-up lines hidden unless ti.set_verbosity(...)

from .. import ir  # noqa: E402
from ..collector import pausing
from ..display import did_you_mean
from ..errors import RunError, TfliteInverterError, with_cause
from ..logs import progress
from ..names import python_identifier
from ..passes.batch import follow_new_shapes
from ..passes.cut import plan_cut
from ..passes.pipeline import prepare
from ..passes.validate import validate
from ..quant.grids import dequantize_tensor, is_quantized_activation, quantize_tensor
from ..emit.frozen_pb import save_frozen_pb
from ..emit.saved_model import save_saved_model
from .context import TF_DTYPES
from .frozen_trace import FrozenTrace
from .inverted_display import InvertedModelDisplay
from .io_specs import InputChecks, IOSpec
from .module import InvertedModule
from .passthrough import Passthrough, passthrough_ops
from .signatures import SignatureInfo, cut_signature, model_signatures
from .supported import check_supported

IO_MODES = ("native", "float")


class InvertedModel(InvertedModelDisplay, InputChecks, FrozenTrace):
    """A ``.tflite`` model rebuilt in TensorFlow.

    ``module`` is a ``tf.Module`` whose weights are ``tf.Variable`` s; ``functions`` maps each
    signature key to a ``tf.function``. Call :meth:`run` with numpy inputs, or save with
    :meth:`save_saved_model` and :meth:`save_frozen_pb`.
    """

    @pausing
    def __init__(self, model: ir.Model, *, strict: bool = False, quantized: str = "fake_quant", io: str = "native",
                 input_shapes: Mapping[str, Sequence[int | None]] | None = None,
                 inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
                 passthrough: bool | Sequence[str] = False, equalize: bool = False, stateless: bool = False,
                 integer_rescale: bool = False):
        validate(model)  # an untrusted file fails here, named, before any TensorFlow op is made
        if io not in IO_MODES:
            raise TfliteInverterError(f"io must be one of {IO_MODES}, not {io!r}")
        if equalize and quantized == "fake_quant" and any(is_quantized_activation(t) for t in model.main.tensors):
            raise TfliteInverterError("equalize rescales activations, so the FakeQuant ranges of a quantized model no "
                                      "longer hold: use quantized='dequantize' and calibrate again")
        clock = time.perf_counter()
        self.timings: dict[str, float] = {}  # seconds per phase of the inversion (for profiles)
        self.cut = (tuple(inputs or ()), tuple(outputs or ())) if inputs or outputs else None
        self.passthrough = Passthrough.of(passthrough)
        plan = plan_cut(model, inputs, outputs) if self.cut else None
        if plan is not None:
            signatures = [cut_signature(model, plan)]
            check_supported(model, strict=strict, main_operators=plan.operators, passthrough=self.passthrough)
        else:
            check_supported(model, strict=strict, passthrough=self.passthrough)
            signatures = model_signatures(model)
        self.timings["scan"], clock = time.perf_counter() - clock, time.perf_counter()
        self.model = model  # as read: tensor and operator indices name the file's
        self.prepared = prepare(model, cut_plan=plan, equalize_layers=equalize)  # as built
        self.timings["passes"], clock = time.perf_counter() - clock, time.perf_counter()
        self.io = io
        self.notes: list[str] = []  # what the passes changed or could not change (batch rewrites)
        self.signatures: dict[str, SignatureInfo] = {s.key: s for s in signatures}
        self.input_shapes = self._resolve_input_shapes(input_shapes or {})
        self._follow_input_shapes(strict)
        # With new input shapes, the file's static shapes of later tensors no longer hold: builders
        # follow the inputs, and an op that hard-codes a shape fails, named, when it is traced.
        self.module = InvertedModule(self.prepared, quantized=quantized, check_static_shapes=not self.input_shapes,
                                     passthrough=self.passthrough, stateless=stateless,
                                     integer_rescale=integer_rescale)
        self.timings["variables"], clock = time.perf_counter() - clock, time.perf_counter()
        if self.module.states:
            # Saved with the SavedModel: a loaded model resets its state with ``loaded.reset_state()``.
            self.module.reset_state = tf.function(self._reset_state_body, input_signature=[], autograph=False)
        self.functions: dict[str, tf.types.experimental.PolymorphicFunction] = {}
        self._frozen_states: dict[str, list[dict]] = {}
        self._debug_functions: dict[str, Any] = {}
        self._trace()
        self.timings["trace"] = time.perf_counter() - clock

    def _trace(self) -> None:
        """Trace every signature once (an op that cannot be built fails here, not at save time). The
        concrete functions serve run(), the SavedModel's signatures and the frozen pb; the functions
        are not attributes of the module, which would make tf.saved_model.save trace them again."""
        self._debug_functions.clear()
        for info in self.signatures.values():
            function = tf.function(self._signature_body(info), input_signature=self._input_specs(info), autograph=False)
            self.functions[info.key] = function
        self.concrete_functions = {}
        for key, fn in self.functions.items():
            info = self.signatures[key]
            count = len(info.operators) if info.operators is not None else len(self.prepared.subgraphs[info.subgraph_index].operators)
            with progress(total=count, description=f"building {key}", unit="op") as bar:
                self.module._tables.progress = bar
                try:
                    self.concrete_functions[key] = fn.get_concrete_function()
                finally:
                    self.module._tables.progress = None

    @pausing
    def set_activation_grids(self, grids: Mapping[tuple[int, int], ir.QuantParams]) -> None:
        """Give float activations (subgraph, tensor) -> calibrated uint8 grids, as FakeQuant nodes, and
        trace the signatures again: run(), the SavedModel and the frozen pb then all carry them."""
        self.module.activation_grids = dict(grids)
        self._trace()

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

    @property
    def stateful(self) -> bool:
        """True when variable tensors persist across calls (as in LiteRT); see :meth:`reset_state`."""
        return bool(self.module.states)

    def reset_state(self) -> None:
        """Every variable tensor back to its initial value, as LiteRT's ``reset_all_variables()``."""
        self.module.reset_states()

    def _reset_state_body(self):
        for name, variable in self.module.states.items():
            variable.assign(tf.constant(self.module.state_initial_value(name)))
        return {}

    def _io_dtype(self, tensor: ir.Tensor) -> str:
        return "float32" if self.io == "float" and is_quantized_activation(tensor) else tensor.dtype

    @property
    def default_signature(self) -> str:
        return "serving_default" if "serving_default" in self.signatures else next(iter(self.signatures))

    def _info(self, signature: str | None) -> SignatureInfo:
        key = signature or self.default_signature
        if key not in self.signatures:
            raise TfliteInverterError(f"no signature {key!r}{did_you_mean(key, self.signatures)}; the model has "
                                      f"{sorted(self.signatures)}")
        return self.signatures[key]

    # -- running --------------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, np.ndarray] | list[np.ndarray] | np.ndarray,
            signature: str | None = None) -> dict[str, np.ndarray]:
        """Run one signature on numpy inputs (by name, a list in input order, or one array for a
        one-input signature). Inputs are checked first: a wrong key, a missing batch dimension or a
        wrong dtype (a uint8 image fed to a float model) raises, naming what was given and what the
        signature takes."""
        info = self._info(signature)
        feeds = self._feeds(info, inputs)
        self._refuse_passthrough(info)
        try:
            result = self.functions[info.key](**feeds)
        except (tf.errors.OpError, TypeError, ValueError) as exc:
            # TensorFlow's message ends with what went wrong, after the traceback of the op's creation.
            lines = [line.strip() for line in str(getattr(exc, "message", exc)).splitlines()]
            lines = [line for line in lines if line and not line.startswith(("[[", "File ", "Detected at node"))]
            raise with_cause(RunError(f"{self.model.source}: running signature {info.key!r} failed: "
                                      f"{type(exc).__name__}: {lines[-1] if lines else ''}"), exc) from None
        return {name: value.numpy() for name, value in result.items()}

    def tensor_values(self, inputs: Mapping[str, np.ndarray] | list[np.ndarray], signature: str | None = None) -> dict[int, np.ndarray]:
        """Every tensor the signature's subgraph computes, by TFLite tensor index (for per-tensor
        verification). Quantized activations come back as real values."""
        info = self._info(signature)
        self._refuse_passthrough(info)
        feeds = self._feeds(info, inputs)
        if info.key not in self._debug_functions:
            body = self._signature_body(info, every_tensor=True)
            self._debug_functions[info.key] = tf.function(body, input_signature=self._input_specs(info), autograph=False)
        result = self._debug_functions[info.key](**feeds)
        return {int(key): value.numpy() for key, value in result.items()}

    # -- saving -----------------------------------------------------------------------------------
    @pausing
    def save_saved_model(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the SavedModel; its states are saved at their initial values (the model as LiteRT
        loads it), whatever calls this object has run."""
        current = {name: variable.numpy() for name, variable in self.module.states.items()}
        self.reset_state()
        try:
            with progress(total=1, description=f"writing {Path(path).name}", unit="file") as bar:
                written = save_saved_model(self.module, self.concrete_functions, Path(path), overwrite=overwrite)
                bar.update()
            return written
        finally:
            for name, value in current.items():
                self.module.states[name].assign(value)

    @pausing
    def save_frozen_pb(self, path: str | Path, *, overwrite: bool = False, signature: str | None = None) -> Path:
        with progress(total=1, description=f"writing {Path(path).name}", unit="file") as bar:
            written = save_frozen_pb(self, Path(path), overwrite=overwrite, signature=signature)
            bar.update()
        return written

    # -- internals --------------------------------------------------------------------------------
    def _refuse_passthrough(self, info: SignatureInfo) -> None:
        if info.subgraph_index != 0:
            return
        opaque = [op for op in passthrough_ops(self.model, self.passthrough) if info.operators is None or op.index in info.operators]
        if opaque:
            listed = ", ".join(f"operator {op.index} {op.custom_code!r}" for op in opaque)
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
            hints = "".join(f"; {n!r}{did_you_mean(n, names)}" for n in sorted(unknown) if did_you_mean(n, names))
            raise TfliteInverterError(f"input_shapes names unknown inputs {sorted(unknown)}{hints}; the inputs are {names}")
        return resolved

    def _follow_input_shapes(self, strict: bool) -> None:
        """Constants that hard-code the file's batch or resolution rewritten (:mod:`tflite_inverter.passes.batch`);
        an operator that cannot follow a new batch is a warning (an error with ``strict``), one that cannot
        follow a new resolution an error, both naming the operator, before anything is traced."""
        main = {index: shape for (key, index), shape in self.input_shapes.items() if self.signatures[key].subgraph_index == 0}
        if not main:
            return
        rewrite = follow_new_shapes(self.prepared, main)
        self.prepared = rewrite.model
        self.notes.extend(f"input_shapes: {line}" for line in rewrite.changed)
        if rewrite.problems:
            message = (f"{self.model.source}: the new input shape cannot flow through "
                       f"{len(rewrite.problems)} operator(s): " + "; ".join(rewrite.problems))
            if strict:
                raise TfliteInverterError(message)
            warnings.warn(message, stacklevel=3)
            self.notes.append("warning: " + message)

    def _input_specs(self, info: SignatureInfo) -> list[tf.TensorSpec]:
        sg = self.model.subgraphs[info.subgraph_index]
        specs = []
        for name, index in zip(info.input_names, info.input_tensors):
            tensor = sg.tensors[index]
            shape = [None if d < 0 else d for d in tensor.shape_signature] if tensor.has_rank else None
            shape = self.input_shapes.get((info.key, index), shape)
            specs.append(tf.TensorSpec(shape, TF_DTYPES[self._io_dtype(tensor)], name=name))
        return specs

    def _signature_body(self, info: SignatureInfo, every_tensor: bool = False, frozen: bool = False):
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
            if frozen:  # states as graph inputs (placeholders) and outputs, fed back by the caller
                read, written = module.frozen_state_io()
                for key in read:
                    name = module.state_keys[key]
                    outputs[name] = tf.identity(written.get(key, read[key]), name=name + "/next")
            return outputs

        body.__name__ = python_identifier(info.key)
        body.__signature__ = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in parameter_names]
        )
        return body


def invert(model: ir.Model | str | Path | bytes, *, strict: bool = False, quantized: str = "fake_quant",
           io: str = "native", input_shapes: Mapping[str, Sequence[int | None]] | None = None,
           inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
           passthrough: bool | Sequence[str] = False, equalize: bool = False, stateless: bool = False,
           integer_rescale: bool = False) -> InvertedModel:
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
    ``stateless``: variable tensors (LSTM/RNN/SVDF states) start from their initial value on every
    call; by default they persist across calls as in LiteRT (module state, :meth:`InvertedModel.reset_state`).
    ``integer_rescale``: in ``fake_quant`` mode, 8-bit CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED /
    MUL outputs are rescaled as LiteRT's reference kernels do (int64 arithmetic in the graph, exact
    double rounding; ``ops/integer_rescale.py``) instead of by one FakeQuant of the float result:
    for comparing with the kernels operator by operator. Off by default, because the int64 ops
    stay in the graph and the TFLite converters do not re-convert them into the same model.
    """
    if not isinstance(model, ir.Model):
        from ..reader import load

        model = load(model)
    return InvertedModel(model, strict=strict, quantized=quantized, io=io, input_shapes=input_shapes,
                         inputs=inputs, outputs=outputs, passthrough=passthrough, equalize=equalize,
                         stateless=stateless, integer_rescale=integer_rescale)



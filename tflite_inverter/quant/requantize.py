"""Re-quantization with the TFLite converter: float16, dynamic range, int8, uint8 I/O, int16x8.

The source is an inverted model, a SavedModel, or a ``.tflite`` (inverted here first, with float
I/O, so that one call turns a ``.tflite`` into another). A ``fake_quant`` inversion carries every
activation's scale and zero point as FakeQuant ranges, so ``mode="int8"``/``"uint8"`` needs no
calibration data and reproduces the original's quantization parameters; other sources calibrate on
``representative`` data (see :mod:`tflite_inverter.quant.representative`).
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import ir
from ..display import html_block, html_lines, html_table
from ..emit.atomic import write_bytes_atomic
from ..errors import TfliteInverterError
from ..logs import quiet_stderr
from ..reader import load
from .representative import as_generator, image_normalization, make_samples, metadata_of

# The weight-only and dynamic int4 modes go through ai-edge-quantizer (quant/edge_quantizer.py).
EDGE_QUANTIZER_MODES = ("weight_only_int8", "weight_only_int4", "dynamic_int4", "dynamic_int4_block32")
MODES = ("float16", "dynamic_range", "int8", "uint8", "int16x8", "uint8_throughout") + EDGE_QUANTIZER_MODES
DEFAULT_IO = {"float16": "float", "dynamic_range": "float", "int8": "int8", "uint8": "uint8", "int16x8": "float",
              "uint8_throughout": "uint8", **{mode: "float" for mode in EDGE_QUANTIZER_MODES}}
_INTEGER_ACTIVATIONS = {"int8", "uint8", "int16"}
BACKENDS = ("auto", "aeq", "tflite")
# Modes both back ends have -> the I/O types ai-edge-quantizer's models can have (float: QUANTIZE/DEQUANTIZE at the edges)
AEQ_INTEGER_IO = {"dynamic_range": ("float",), "int8": ("int8", "float"), "int16x8": ("float", "int16")}


@dataclass
class RequantizeReport:
    path: str
    mode: str
    size_bytes: int
    op_histogram: dict[str, int]
    float_ops: dict[str, int]  # ops computing in float in the new model (no integer accelerator for them)
    inputs: list[str]
    outputs: list[str]
    comparison: Any = None  # CompareReport against the reference .tflite, when there is one
    notes: list[str] = field(default_factory=list)
    float_reasons: dict[str, str] = field(default_factory=dict)  # opcode in float_ops -> why it stayed float

    def table(self) -> str:
        lines = [f"wrote {self.path} ({self.mode}, {self.size_bytes / 1e6:.2f} MB)",
                 "inputs:  " + "; ".join(self.inputs), "outputs: " + "; ".join(self.outputs),
                 "ops: " + ", ".join(f"{name} x{count}" for name, count in sorted(self.op_histogram.items()))]
        if self.mode not in ("float16", "dynamic_range") + EDGE_QUANTIZER_MODES:
            lines.append("ops left in float: " + (", ".join(f"{k} x{v}" for k, v in sorted(self.float_ops.items())) or "none"))
            lines.extend(f"  {k}: {reason}" for k, reason in sorted(self.float_reasons.items()))
        if self.comparison is not None:
            lines.append(self.comparison.table())
        lines.extend(self.notes)
        return "\n".join(lines)

    __str__ = table

    def __repr__(self) -> str:
        floats = sum(self.float_ops.values())
        return (f"<RequantizeReport {self.path} ({self.mode}, {self.size_bytes / 1e6:.2f} MB, "
                f"{sum(self.op_histogram.values())} ops, {floats} in float)>")

    def _repr_html_(self) -> str:
        io = html_table(("", "tensor"), [("input", t) for t in self.inputs] + [("output", t) for t in self.outputs])
        ops = html_table(("operator", "count", "in float"), [(name, count, self.float_ops.get(name, 0))
                                                            for name, count in sorted(self.op_histogram.items())])
        comparison = self.comparison._repr_html_() if self.comparison is not None else ""
        return html_block(f"wrote {self.path} ({self.mode}, {self.size_bytes / 1e6:.2f} MB)", io, ops, comparison,
                          html_lines(self.notes))


def float_ops(model: ir.Model) -> Counter:
    """Operators that read or write float tensors computed at run time (QUANTIZE/DEQUANTIZE at the
    edges excluded): these will not run on an integer-only accelerator."""
    counts: Counter = Counter()
    for sg in model.subgraphs:
        for op in sg.operators:
            if op.opcode in ("QUANTIZE", "DEQUANTIZE"):
                continue
            tensors = [sg.tensors[i] for i in (*op.inputs, *op.outputs) if i is not None]
            if any(t.dtype in ("float32", "float16") and t.data is None for t in tensors):
                counts[op.opcode] += 1
    return counts


def _describe_io(model: ir.Model) -> tuple[list[str], list[str]]:
    sg = model.main
    return [sg.tensors[i].describe() for i in sg.inputs], [sg.tensors[i].describe() for i in sg.outputs]


def _is_tflite(source: Any) -> bool:
    return isinstance(source, (bytes, bytearray)) or (isinstance(source, (str, os.PathLike)) and str(source).endswith(".tflite"))


def _has_quantized_activations(model: ir.Model) -> bool:
    return any(t.quantization is not None and t.data is None for sg in model.subgraphs for t in sg.tensors)


def _wants_equalize(source: Any, equalize: bool | None, per_tensor: bool, mode: str, representative: Any,
                    notes: list[str]) -> bool:
    """Whether to apply cross-layer equalization: ``equalize`` if given, else with per-tensor weights.
    An explicit request that cannot be met raises; the default steps aside with a note."""
    from ..build.inverted import InvertedModel

    explicit = equalize is not None
    if not (equalize if explicit else per_tensor and mode != "float16"):
        return False
    if not (_is_tflite(source) or isinstance(source, InvertedModel)):
        if explicit:
            raise TfliteInverterError("equalize needs a .tflite or an inverted model as the source: the weights of a "
                                      "SavedModel cannot be rescaled here (pass equalize=False)")
        notes.append("cross-layer equalization not applied: the source is a SavedModel (invert a .tflite to equalize)")
        return False
    model = source.model if isinstance(source, InvertedModel) else load(bytes(source) if isinstance(source, bytearray) else source)
    if representative is None and mode in ("int8", "uint8", "int16x8") and _has_quantized_activations(model):
        if explicit:
            raise TfliteInverterError("equalize rescales activations, so the original's quantization ranges no longer "
                                      "hold: give representative data to calibrate again (or pass equalize=False)")
        notes.append("cross-layer equalization not applied: it needs representative data (the original's ranges no "
                     "longer hold once channels are rescaled)")
        return False
    return True


def _equalized(source: Any) -> Any:
    """``source`` (an InvertedModel) inverted again as a float graph with cross-layer equalization."""
    from ..build.inverted import InvertedModel

    inputs, outputs = source.cut or ((), ())
    passthrough = source.passthrough
    sg_of = {key: source.model.subgraphs[info.subgraph_index] for key, info in source.signatures.items()}
    shapes = {sg_of[key].tensors[index].name: shape for (key, index), shape in source.input_shapes.items()}
    return InvertedModel(source.model, quantized="dequantize", io="float", equalize=True, input_shapes=shapes or None,
                         inputs=list(inputs) or None, outputs=list(outputs) or None,
                         passthrough=False if passthrough is None else (True if passthrough.codes is None else sorted(passthrough.codes)))


def _prepare_source(source: Any, work: str, equalize: bool, float_graph: bool = False) -> tuple[Any, str | None]:
    """(an InvertedModel or a SavedModel path, the reference .tflite path or None). A ``.tflite`` is
    inverted with float I/O; with ``equalize`` every source becomes an equalized float inversion;
    with ``float_graph`` a ``.tflite`` or inverted source becomes a ``dequantize`` inversion (no
    FakeQuant ranges: the converter calibrates, and can then give one scale per weight tensor)."""
    from ..build.inverted import InvertedModel, invert

    reference = None
    if _is_tflite(source):
        if isinstance(source, (bytes, bytearray)):
            reference = os.path.join(work, "reference.tflite")
            Path(reference).write_bytes(bytes(source))
        else:
            reference = str(source)
        if equalize:
            return invert(reference, quantized="dequantize", io="float", equalize=True), reference
        source = invert(reference, quantized="dequantize" if float_graph else "fake_quant", io="float")
    if isinstance(source, InvertedModel):
        if equalize:
            return _equalized(source), reference
        if float_graph and source.quantized_mode == "fake_quant" and _has_quantized_activations(source.model):
            return InvertedModel(source.model, quantized="dequantize", io="float"), reference
        if source.io != "float" and any(s.quantized for s in source.inputs() + source.outputs()):
            source = InvertedModel(source.model, quantized=source.quantized_mode, io="float")
        return source, reference
    path = Path(source)
    if not (path / "saved_model.pb").exists():
        raise TfliteInverterError(f"{path}: not a SavedModel, an inverted model or a .tflite")
    return path, reference


def _converter_for(source: Any):
    """(converter, has FakeQuant ranges, float input specs) for a prepared source."""
    import tensorflow as tf

    from ..build.inverted import InvertedModel

    if isinstance(source, InvertedModel):
        source = _traced_in_float32(source)
        key = source.default_signature
        concrete = source.concrete_functions[key]
        _refuse_float64(concrete.graph)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], _light_trackable(source.module))
        fake_quant = source.quantized_mode == "fake_quant" and _has_quantized_activations(source.model)
        specs = [(spec.name, spec.shape) for spec in source.inputs(key)]
        return converter, fake_quant, specs
    path = source
    fake_quant = b"FakeQuantWithMinMax" in (path / "saved_model.pb").read_bytes()
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default" if "serving_default" in loaded.signatures else next(iter(loaded.signatures))]
    arguments = signature.structured_input_signature[1]
    integer_inputs = [k for k, s in arguments.items() if not s.dtype.is_floating]
    if integer_inputs:
        raise TfliteInverterError(f"{path}: inputs {integer_inputs} are integers; invert with io='float' to re-quantize")
    specs = [(name, spec.shape.as_list()) for name, spec in arguments.items()]
    return tf.lite.TFLiteConverter.from_saved_model(str(path)), fake_quant, specs


def _float32_mediapipe(function):
    """Run ``function`` with MediaPipe's custom-op builders in float32 (the converter cannot lower
    their float64 arithmetic; see :func:`tflite_inverter.ops.mediapipe.float32_arithmetic`)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from ..ops.mediapipe import float32_arithmetic

        with float32_arithmetic():
            return function(*args, **kwargs)

    return wrapper


def _computes_in_float64(graph: Any) -> list:
    """The ops of ``graph`` that compute in float64 on values depending on a model input."""
    import tensorflow as tf

    exempt = {"Cast", "Const", "Identity", "Placeholder", "NoOp"}
    # Only what depends on a model input: float64 arithmetic on constants is folded by the converter.
    live = {op.name for op in graph.get_operations() if op.type == "Placeholder" and op.outputs[0].dtype != tf.resource}
    computing = []
    for op in graph.get_operations():  # in topological order
        if any(t.op.name in live for t in op.inputs):
            live.add(op.name)
            if op.type not in exempt and any(t.dtype == tf.float64 for t in op.outputs):
                computing.append(op)
    return computing


def _traced_in_float32(source: Any) -> Any:
    """``source`` (an InvertedModel) built again inside :func:`float32_arithmetic` when it was
    traced with MediaPipe's float64 builders (an inversion made outside ``requantize``)."""
    from ..build.inverted import InvertedModel

    if not _computes_in_float64(source.concrete_functions[source.default_signature].graph):
        return source
    if source.cut is not None or source.input_shapes:
        return source  # _refuse_float64 names the problem
    from ..ops.mediapipe import float32_arithmetic

    with float32_arithmetic():
        return InvertedModel(source.model, quantized=source.quantized_mode, io=source.io)


def _refuse_float64(graph: Any) -> None:
    """Fail fast (the converter takes minutes to say so) when the graph computes in float64, which
    TFLite has no kernels for: MediaPipe's TransformLandmarks / TransformTensorBilinear builders sum
    in float64 to be bit-exact with the C++ kernels."""
    computing = _computes_in_float64(graph)
    if computing:
        scopes = sorted({op.name.split("/")[0] for op in computing})
        raise TfliteInverterError(f"the graph computes in float64 ({len(computing)} ops, under {scopes[:5]}), which the "
                                  "TFLite converter cannot lower (an inversion with new input shapes or a cut keeps "
                                  "MediaPipe's float64 builders: invert the whole model, or pass the .tflite)")


def _light_trackable(module: Any) -> Any:
    """What the converter saves the concrete function with: a bare module holding the weights (and
    module state), so that saving does not trace the inverted module's other tf.functions again
    (pose_landmark_full: 37 s of conversion, 26 of them that save, down to 14 s)."""
    import tensorflow as tf

    light = tf.Module(name="requantize")
    light.weights_ = list(module.weights.values())
    light.resources_ = dict(module.resources)
    return light


def _clip_count(inverted: Any) -> int:
    """How many operators cross-layer equalization gave a per-channel RELU6 bound."""
    return sum(op.activation_clip is not None for sg in inverted.prepared.subgraphs for op in sg.operators)


def _equalization_notes(inverted: Any, samples: Any, per_tensor: bool, mode: str) -> list[str]:
    """Bias correction for per-tensor int8 weights (when there is data), and what was done."""
    from ..passes.equalize import count_pairs
    from .bias_correction import correct_biases

    notes = [f"cross-layer equalization: {count_pairs(inverted.model)} layer pairs rescaled "
             f"({_clip_count(inverted)} RELU6 bounds made per-channel)"]
    if per_tensor and samples is not None and mode in ("int8", "uint8", "int16x8"):
        corrected = correct_biases(inverted, samples)
        notes.append(f"bias correction for per-tensor int8 weights: {corrected} layers "
                     f"(mean activations of {min(len(samples), 64)} calibration samples)")
    return notes


@_float32_mediapipe
def requantize(source: Any, out_path: str | os.PathLike, *, mode: str = "int8", representative: Any = None,
               io_dtype: str | None = None, per_tensor: bool = False, keep_float_ops: Sequence[str] = (),
               keep_float_nodes: Sequence[str] = (), mean: float | Sequence[float] | None = None,
               std: float | Sequence[float] | None = None, limit: int | None = None, reference: str | None = None,
               overwrite: bool = False, progress: bool = True, equalize: bool | None = None,
               default_ranges: tuple[float, float] | None = None, backend: str = "auto",
               compare: bool = True) -> RequantizeReport:
    """Write a re-quantized ``.tflite`` and report on it.

    ``mode``: ``float16``, ``dynamic_range``, ``int8`` (full integer), ``uint8`` (int8 inside, uint8
    I/O as EdgeTPU tools expect) or ``int16x8``. ``representative``: calibration data (array, ``.npy``,
    mapping by input name, image folder normalised with ``mean``/``std``, or a callable); not needed
    for int8/uint8 from a ``fake_quant`` inversion. ``io_dtype``: ``float``, ``int8``, ``uint8``
    or ``int16`` inputs/outputs (default by mode). ``per_tensor``: one scale per weight tensor
    (for accelerators without per-channel support). ``keep_float_ops`` / ``keep_float_nodes``: op
    types (``"SOFTMAX"``) or tensor names left in float (selective quantization).
    ``reference``: a ``.tflite`` to compare against (default: the source, when it is one).
    ``equalize``: cross-layer equalization before converting (see :mod:`tflite_inverter.passes.equalize`),
    by default with ``per_tensor``; the source is then inverted as a float graph
    (``quantized="dequantize"``), so a quantized source needs ``representative`` data, which also
    drives a bias correction for the per-tensor int8 weights. Not possible from a SavedModel.
    ``uint8_throughout`` of a float model calibrates every activation's range on ``representative``;
    ``mean``/``std`` then also give the input grid (``quantized_input_stats``: real = (q - mean) / std)
    and ``default_ranges`` (min, max) the range of tensors without one (``default_ranges_stats``).
    ``mean``/``std`` not given come from the source's TFLite metadata (its input normalization) when
    it states one, else are 0 and 1; the report's notes say so.
    ``backend``: ``"aeq"`` (ai-edge-quantizer, on activation ranges calibrated here), ``"tflite"``
    (the TFLite converter) or ``"auto"``: ai-edge-quantizer for dynamic_range, int8 and int16x8 when
    it is importable, a float ``.tflite`` is at hand and no converter-only option is asked for, and
    always for the weight-only / int4 modes; the converter otherwise (docs/quantization.md).
    ``compare``: False skips the comparison against the reference (benchmarks time it apart).
    """
    mean, std, normalization = image_normalization(metadata_of(source), representative, mean, std)
    report = _requantize(source, out_path, mode=mode, representative=representative, io_dtype=io_dtype,
                         per_tensor=per_tensor, keep_float_ops=keep_float_ops, keep_float_nodes=keep_float_nodes,
                         mean=mean, std=std, limit=limit, reference=reference, overwrite=overwrite, progress=progress,
                         equalize=equalize, default_ranges=default_ranges, backend=backend, compare=compare)
    if normalization is not None:
        report.notes.insert(0, normalization)
    return report


def _requantize(source: Any, out_path: str | os.PathLike, *, mode: str, representative: Any, io_dtype: str | None,
                per_tensor: bool, keep_float_ops: Sequence[str], keep_float_nodes: Sequence[str], mean: Any, std: Any,
                limit: int | None, reference: str | None, overwrite: bool, progress: bool, equalize: bool | None,
                default_ranges: tuple[float, float] | None, backend: str, compare: bool) -> RequantizeReport:
    import tensorflow as tf

    if mode not in MODES:
        raise TfliteInverterError(f"mode must be one of {MODES}, not {mode!r}")
    io_dtype = io_dtype or DEFAULT_IO[mode]
    io_types = {"float": tf.float32, "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16}
    if io_dtype not in io_types:
        raise TfliteInverterError(f"io_dtype must be one of {sorted(io_types)}, not {io_dtype!r}")
    notes: list[str] = []
    if mode in EDGE_QUANTIZER_MODES:
        if io_dtype != "float" or per_tensor or keep_float_ops or keep_float_nodes or equalize:
            raise TfliteInverterError(f"mode {mode!r} takes float I/O and none of per_tensor, keep_float_*, equalize")
    float_found: list = []
    if _choose_backend(backend, source, mode, io_dtype, representative, per_tensor,
                       bool(keep_float_ops or keep_float_nodes), equalize, notes, float_found) == "aeq":
        return _with_edge_quantizer(source, Path(out_path), mode, reference=reference, overwrite=overwrite,
                                    io_dtype=io_dtype, representative=representative, mean=mean, std=std, limit=limit,
                                    compare=compare, float_found=float_found[0] if float_found else None)
    if mode == "uint8_throughout":
        return _uint8_throughout(source, Path(out_path), reference=reference, overwrite=overwrite,
                                 representative=representative, mean=mean, std=std, limit=limit, equalize=equalize,
                                 default_ranges=default_ranges, compare=compare)
    equalize = _wants_equalize(source, equalize, per_tensor, mode, representative, notes)
    with tempfile.TemporaryDirectory(prefix="tflite_inverter_requantize_") as work:
        # One scale per weight tensor needs calibration: FakeQuant nodes would carry the original's
        # per-channel weight ranges into the new model.
        prepared, source_reference = _prepare_source(source, work, equalize,
                                                     float_graph=per_tensor and representative is not None)
        reference = reference or source_reference
        converter, fake_quant, specs = _converter_for(prepared)
        samples = make_samples(representative, specs, mean=mean, std=std, limit=limit) if representative is not None else None
        if equalize:
            notes.extend(_equalization_notes(prepared, samples, per_tensor, mode))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif mode in ("int8", "uint8", "int16x8"):
            if samples is None and not (fake_quant and mode != "int16x8"):
                raise TfliteInverterError(
                    f"mode {mode!r} needs representative data (this model carries no FakeQuant ranges)")
            if samples is not None:
                converter.representative_dataset = as_generator(samples, progress)
            elif fake_quant:
                notes.append("quantization parameters taken from the FakeQuant ranges (no calibration data)")
            if mode == "int16x8":
                # Ops without a 16x8 kernel stay in float (TFLITE_BUILTINS), reported below.
                converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                                                       tf.lite.OpsSet.TFLITE_BUILTINS]
            elif samples is not None and not (keep_float_ops or keep_float_nodes):
                # Full integer first; an op without an int8 kernel makes the converter fail, and is
                # then left in float (the second conversion below). (From FakeQuant ranges alone the
                # converter refuses this option, and quantizes fully anyway; float_ops reports any rest.)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if io_dtype != "float":
                converter.inference_input_type = converter.inference_output_type = io_types[io_dtype]
        if per_tensor:
            converter._experimental_disable_per_channel = True
        strict_failure = None
        cast_retry = False
        if keep_float_ops or keep_float_nodes:
            if samples is None:
                raise TfliteInverterError("selective quantization (keep_float_ops/keep_float_nodes) needs representative data")
            debug_options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_ops=list(keep_float_ops), denylisted_nodes=list(keep_float_nodes),
                fully_quantize=io_dtype != "float")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=as_generator(samples, False), debug_options=debug_options)
            data = debugger.get_nondebug_quantized_model()
            notes.append(f"kept in float: ops {list(keep_float_ops)} nodes {list(keep_float_nodes)}")
        else:
            with quiet_stderr():  # the converter's MLIR log lines
                try:
                    data, strict_failure = _convert(converter, mode)
                except TfliteInverterError as error:
                    # int16x8 with float fallback: the calibrator gives the int32 result of a CAST no
                    # range and the quantizer then asks for one (MediaPipe's TransformTensorBilinear
                    # computes pixel indices so); with CAST kept float it converts.
                    if mode != "int16x8" or "Empty min/max for tensor" not in str(error) or samples is None:
                        raise
                    fresh = _converter_for(prepared)[0]  # a converter that failed cannot be run again
                    fresh.optimizations, fresh.representative_dataset = converter.optimizations, converter.representative_dataset
                    fresh.target_spec.supported_ops = converter.target_spec.supported_ops
                    fresh.inference_input_type = converter.inference_input_type
                    fresh.inference_output_type = converter.inference_output_type
                    fresh._experimental_disable_per_channel = converter._experimental_disable_per_channel
                    debugger = tf.lite.experimental.QuantizationDebugger(
                        converter=fresh,
                        debug_dataset=as_generator(samples, False),
                        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["CAST"],
                                                                                    fully_quantize=False))
                    data = debugger.get_nondebug_quantized_model()
                    strict_failure = str(error).split(": ", 1)[-1]
                    cast_retry = True
        data, interface_notes = _with_interface(data, prepared, reference, mode)
        notes.extend(interface_notes)
        model = load(data)
        kept = _per_channel_weights(model)
        if per_tensor and kept:
            raise TfliteInverterError(
                f"per_tensor: {kept} weight tensors would keep per-channel scales, because the source's FakeQuant "
                "nodes carry the original's per-channel ranges: give representative data (the source is then "
                "inverted as a float graph and calibrated), or requantize a quantized='dequantize' inversion")
        path = write_bytes_atomic(Path(out_path), data, overwrite=overwrite)
        inputs, outputs = _describe_io(model)
        comparison = None
        if reference is not None and compare and not _runs_in_litert(load(reference)):
            notes.append(f"not compared: LiteRT cannot run {reference} (custom operators)")
        elif reference is not None and compare:
            from ..check.compare import compare as compare_models

            comparison = compare_models(reference, str(path), inputs=samples, draws=3)
    left_float = dict(float_ops(model))
    reasons = _float_reasons(left_float, mode, keep_float_ops, keep_float_nodes,
                             strict_failure if not (keep_float_ops or keep_float_nodes) else None)
    if cast_retry:
        notes.append(f"int16x8 converted again with CAST kept float (the converter said: {strict_failure})")
        if "CAST" in reasons:
            reasons["CAST"] = f"kept float: the converter's int16x8 calibration gives its int32 result no range ({strict_failure})"
    return RequantizeReport(path=str(path), mode=mode, size_bytes=len(data), op_histogram=dict(model.op_histogram()),
                            float_ops=left_float, inputs=inputs, outputs=outputs, comparison=comparison,
                            notes=notes, float_reasons=reasons)


def _convert(converter, mode: str) -> tuple[bytes, str | None]:
    """Run the converter; (the model, the converter's complaint when full integer failed and the
    model was converted again with float kernels allowed for the ops it could not quantize)."""
    import tensorflow as tf

    def last_line(error: Exception) -> str:
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        return next((line for line in lines if "not supported" in line or "neither a custom op" in line),
                    lines[-1] if lines else type(error).__name__)

    try:
        return converter.convert(), None
    except Exception as error:  # ConverterError, ValueError, RuntimeError, ...
        strict = tf.lite.OpsSet.TFLITE_BUILTINS_INT8 in set(converter.target_spec.supported_ops)
        message = last_line(error)
        if not strict or "neither a custom op nor a flex op" in message:
            raise TfliteInverterError(f"the TFLite converter failed ({mode}): {message}") from None
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert(), message
    except Exception as error:
        raise TfliteInverterError(f"the TFLite converter failed ({mode}, float kernels allowed): {last_line(error)}") from None


def _float_reasons(left_float: dict[str, int], mode: str, keep_float_ops: Sequence[str], keep_float_nodes: Sequence[str],
                   strict_failure: str | None) -> dict[str, str]:
    """Why each op of ``left_float`` computes in float in a quantized model."""
    if mode in ("float16", "dynamic_range"):
        return {}
    reasons = {}
    for opcode in left_float:
        if opcode in keep_float_ops:
            reasons[opcode] = "kept in float as asked (keep_float_ops)"
        elif keep_float_nodes:
            reasons[opcode] = "kept in float as asked (keep_float_nodes), or next to a node that was"
        elif mode == "int16x8":
            reasons[opcode] = "the converter has no 16x8 kernel for it, so it stays float"
        elif strict_failure is not None:
            reasons[opcode] = f"the converter cannot make it {mode} (full-integer conversion said: {strict_failure}), so it stays float"
        else:
            reasons[opcode] = "the converter left it in float"
    return reasons


def _with_interface(data: bytes, prepared: Any, reference: str | None, mode: str,
                    converted_keys: tuple[list[str], list[str]] | None = None) -> tuple[bytes, list[str]]:
    """The converted ``data`` with the original's interface (:mod:`tflite_inverter.quant.interface`),
    checked before anything is written; and notes on what the mode changed (input/output types).
    ``prepared``: the InvertedModel converted, or a SavedModel path (whose original is ``reference``).
    ``converted_keys``: the converted model's input and output names, when they are not the
    signature keys of the TF2 converter (the TF1 converter's node names)."""
    from ..build.inverted import InvertedModel
    from ..names import python_identifier, sanitize_name
    from .interface import Interface, Port, interface_of, interface_of_model, interface_problems, restore_interface

    if isinstance(prepared, InvertedModel):
        interface = interface_of(prepared)
    elif reference is not None:  # a SavedModel emitted by this project: its keys are the original's names, sanitized
        original = interface_of_model(load(reference))

        def keyed(ports, identifier):
            return tuple(Port((python_identifier(sanitize_name(p.signature_name or p.tensor_name)),) if identifier else
                              (sanitize_name(p.signature_name or p.tensor_name),), p.tensor_name, p.signature_name,
                              p.shape, p.dtype) for p in ports)

        interface = Interface(original.signature_key, keyed(original.inputs, True), keyed(original.outputs, False))
    else:
        return data, ["interface: the converter's input/output names and order (a SavedModel source and no "
                      "reference .tflite to take the original's from)"]
    if converted_keys is not None:
        interface = interface.with_converted_keys(*converted_keys)
    data = restore_interface(data, interface)
    model = load(data)
    problems = interface_problems(interface, model)
    if problems:
        raise TfliteInverterError(f"the {mode} model does not keep the original's interface: " + "; ".join(problems))
    changed = [f"{p.tensor_name} {p.dtype} -> {q.dtype}" for p, q in
               zip(interface.inputs + interface.outputs, interface_of_model(model).inputs + interface_of_model(model).outputs)
               if p.dtype != q.dtype]
    notes = ["interface kept: signature key, input and output names, order and shapes"
             + (f"; types changed by the mode: {', '.join(changed)}" if changed else "")]
    return data, notes


def float_file(source: Any) -> bytes | None:
    """The bytes of the float ``.tflite`` that ``source`` is (a path or bytes) or was inverted from
    unchanged (no cut, no new input shapes, no equalization); ``None`` otherwise."""
    found = _float_file_and_model(source)
    return None if found is None else found[0]


def _float_file_and_model(source: Any) -> tuple[bytes, ir.Model] | None:
    """:func:`float_file` and the model it holds, as read."""
    from ..build.inverted import InvertedModel

    if _is_tflite(source):
        data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
        model = load(data)
    elif isinstance(source, InvertedModel):
        if source.cut is not None or source.input_shapes or not str(source.model.source).endswith(".tflite") \
                or not Path(source.model.source).is_file():
            return None
        if any(t.real is not None and t.dtype == "float32" for sg in source.prepared.subgraphs for t in sg.tensors):
            return None  # equalized weights
        model, data = source.model, None
    else:
        return None
    from .aeq_normalize import densified_outputs

    dense = {sg.index: densified_outputs(sg) for sg in model.subgraphs}  # sparse weights: constants in aeq's copy
    if any(t.quantization is not None or t.dtype not in ("float32", "int32", "int64", "bool")
           for sg in model.subgraphs for t in sg.tensors if t.data is None and t.index not in dense[sg.index]):
        return None
    return (data if data is not None else Path(source.model.source).read_bytes()), model


def _choose_backend(backend: str, source: Any, mode: str, io_dtype: str, representative: Any, per_tensor: bool,
                    keep_float: bool, equalize: bool | None, notes: list[str], float_found: list) -> str:
    """``aeq`` or ``tflite``: ``auto`` takes ai-edge-quantizer where it has the mode's recipe, is
    importable, and a float ``.tflite`` is at hand (so no conversion is needed), and no option
    only the converter has is asked for, and its recipe quantizes every operator of the model (the
    converter's model is then no less integer; in int16x8 the operators without a 16x8 kernel in
    LiteRT, :data:`NO_INT16X8_KERNEL`, stay float either way); an explicit back end that cannot serve raises.
    Why ``auto`` chose the converter goes to ``notes`` where it could have been aeq; the float file
    and its model, when ``auto`` read them, to ``float_found`` (not read again)."""
    from . import edge_quantizer

    if backend not in BACKENDS:
        raise TfliteInverterError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if mode in EDGE_QUANTIZER_MODES:
        if backend == "tflite":
            raise TfliteInverterError(f"mode {mode!r} has no TFLite-converter recipe: it needs backend 'aeq'")
        return "aeq"
    if mode not in AEQ_INTEGER_IO:
        if backend == "aeq":
            raise TfliteInverterError(f"mode {mode!r} has no ai-edge-quantizer recipe: use backend 'tflite' (or 'auto')")
        return "tflite"
    blockers = []
    if io_dtype not in AEQ_INTEGER_IO[mode]:
        blockers.append(f"io_dtype {io_dtype!r} (aeq writes {' or '.join(AEQ_INTEGER_IO[mode])} I/O in {mode})")
    if per_tensor or keep_float or equalize:
        blockers.append("per_tensor, keep_float_ops/keep_float_nodes and equalize are TFLite-converter options")
    if mode != "dynamic_range" and representative is None:
        blockers.append("no representative data (the converter can take a fake_quant inversion's ranges)")
    if backend == "aeq":
        if not edge_quantizer.available():
            raise TfliteInverterError("backend 'aeq' needs ai-edge-quantizer (pip install ai-edge-quantizer)")
        if blockers:
            raise TfliteInverterError(f"backend 'aeq' cannot make this {mode} model: " + "; ".join(blockers))
        return "aeq"
    if backend == "tflite" or blockers or not edge_quantizer.available():
        return "tflite"
    found = _float_file_and_model(source)
    if found is None:
        return "tflite"
    left = edge_quantizer.left_in_float(found[1], mode)
    if mode == "int16x8":  # no 16x8 kernel in LiteRT: the converter's model computes them in float too
        left = [opcode for opcode in left if opcode not in NO_INT16X8_KERNEL]
    if left:  # the converter quantizes them (or, for DENSIFY, aeq cannot read the file)
        notes.append(f"back end: the TFLite converter (ai-edge-quantizer's {mode} recipe would leave "
                     f"{', '.join(left)} in float)")
        return "tflite"
    return "aeq"


# Operators LiteRT has no int16 kernel for (kernels/depth_to_space.cc, activations.cc HardSwishEval:
# float32, (u)int8 and for DEPTH_TO_SPACE int32 / int64 only): in int16x8 the TFLite converter leaves
# them float as ai-edge-quantizer does (measured: 2 / 3 DEPTH_TO_SPACE of the sparse MediaPipe
# detectors, 11 HARD_SWISH of the selfie models), so they do not make ``auto`` take the converter.
NO_INT16X8_KERNEL = frozenset({"DEPTH_TO_SPACE", "HARD_SWISH"})

# MediaPipe custom operators stock LiteRT has no kernel for (Convolution2DTransposeBias runs: XNNPACK has it)
_NO_LITERT_KERNEL = {"CUSTOM:Landmarks2TransformMatrix", "CUSTOM:TransformLandmarks", "CUSTOM:TransformTensorBilinear",
                     "CUSTOM:MaxPoolingWithArgmax2D", "CUSTOM:MaxUnpooling2D"}


def _runs_in_litert(model: ir.Model) -> bool:
    """False for models with a custom operator LiteRT cannot run (the comparison is then skipped, said so)."""
    return not any(op.opcode in _NO_LITERT_KERNEL for sg in model.subgraphs for op in sg.operators)


def _with_edge_quantizer(source: Any, out_path: Path, mode: str, *, reference: str | None, overwrite: bool,
                         io_dtype: str = "float", representative: Any = None, mean: Any = 0.0, std: Any = 1.0,
                         limit: int | None = None, compare: bool = True,
                         float_found: tuple[bytes, ir.Model] | None = None) -> RequantizeReport:
    """A model from ai-edge-quantizer (backend ``aeq``). It quantizes a float ``.tflite``: a float
    source file (or the file a float model was inverted from) is handed over as it is (normalised);
    any other source (a quantized file, an inversion) is first converted to a float ``.tflite`` from
    its ``dequantize`` inversion. The static modes calibrate on ``representative`` in LiteRT
    (:func:`tflite_inverter.quant.edge_quantizer.quantize_calibrated`)."""
    with tempfile.TemporaryDirectory(prefix="tflite_inverter_aeq_") as work:
        if isinstance(source, (bytes, bytearray)) and reference is None and compare:
            reference = os.path.join(work, "reference.tflite")
            Path(reference).write_bytes(bytes(source))
        return _edge_quantized(source, out_path, mode, reference=reference, overwrite=overwrite, io_dtype=io_dtype,
                               representative=representative, mean=mean, std=std, limit=limit, compare=compare,
                               float_found=float_found)


def _edge_quantized(source: Any, out_path: Path, mode: str, *, reference: str | None, overwrite: bool, io_dtype: str,
                    representative: Any, mean: Any, std: Any, limit: int | None, compare: bool,
                    float_found: tuple[bytes, ir.Model] | None) -> RequantizeReport:
    import tensorflow as tf

    from ..build.inverted import InvertedModel, invert
    from . import aeq_normalize, edge_quantizer
    from .interface import interface_of_model, interface_problems, restore_interface

    notes = []
    if _is_tflite(source) and not isinstance(source, (bytes, bytearray)):
        reference = reference or str(source)
    float_found = float_found or _float_file_and_model(source)
    float_data, float_model = float_found if float_found is not None else (None, None)
    if float_data is None and isinstance(source, InvertedModel) and reference is None and \
            str(source.model.source).endswith(".tflite") and Path(source.model.source).is_file():
        reference = str(source.model.source)
    if float_data is None:
        if _is_tflite(source):
            source = invert(source if isinstance(source, (bytes, bytearray)) else str(source), quantized="dequantize", io="float")
        if not isinstance(source, InvertedModel):
            raise TfliteInverterError(f"mode {mode!r} with backend 'aeq' needs a .tflite or an inverted model as the source")
        if source.quantized_mode != "dequantize" or source.io != "float":
            source = InvertedModel(source.model, quantized="dequantize", io="float")
        source = _traced_in_float32(source)
        concrete = source.concrete_functions[source.default_signature]
        _refuse_float64(concrete.graph)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], _light_trackable(source.module))
        with quiet_stderr():
            float_data, _ = _convert(converter, mode)
        float_data, _ = _with_interface(float_data, source, reference, mode)
        notes.append("converted to a float .tflite from the dequantize inversion first")
        float_model = load(float_data)
    interface = interface_of_model(float_model)
    notes.extend(aeq_normalize.describe(float_model))
    samples = None
    if mode in edge_quantizer.INTEGER_RECIPES:
        sg = float_model.main
        named = {index: name for name, index in float_model.signatures[0].inputs.items()} if float_model.signatures else {}
        specs = [(named.get(i, sg.tensors[i].name), list(sg.tensors[i].shape)) for i in sg.inputs]
        if representative is not None and mode != "dynamic_range":
            samples = make_samples(representative, specs, mean=mean, std=std, limit=limit)
        quantized, aeq_notes = edge_quantizer.quantize_calibrated(float_data, mode, samples, float_io=io_dtype == "float")
        notes.extend(aeq_notes)
    else:
        quantized = edge_quantizer.quantize(float_data, mode)
        notes.append(f"ai-edge-quantizer recipe {edge_quantizer.RECIPES[mode]}")
    data = restore_interface(quantized, interface)
    model = load(data)
    problems = interface_problems(interface, model, check_dtypes=io_dtype == "float")
    if problems:
        raise TfliteInverterError(f"the {mode} model does not keep the original's interface: " + "; ".join(problems))
    notes.append("back end: ai-edge-quantizer; interface kept: signature key, input and output names, order, shapes"
                 + (" and types" if io_dtype == "float" else f" ({io_dtype} inputs and outputs)"))
    path = write_bytes_atomic(out_path, data, overwrite=overwrite)
    inputs, outputs = _describe_io(model)
    comparison = None
    if reference is not None and compare:
        from ..check.compare import compare as compare_models

        if _runs_in_litert(load(reference)):
            comparison = compare_models(reference, str(path), inputs=samples, draws=3)
        else:
            notes.append(f"not compared: LiteRT cannot run {reference} (custom operators)")
    left_float = dict(float_ops(model)) if mode in ("int8", "int16x8") else {}
    reasons = {opcode: f"ai-edge-quantizer has no {mode} recipe for it, so it runs in float (between DEQUANTIZE and "
                       "QUANTIZE)" + ("; LiteRT has no 16x8 kernel for it either" if mode == "int16x8" and
                                      opcode in NO_INT16X8_KERNEL else "") for opcode in left_float}
    return RequantizeReport(path=str(path), mode=mode, size_bytes=len(data), op_histogram=dict(model.op_histogram()),
                            float_ops=left_float, inputs=inputs, outputs=outputs, comparison=comparison, notes=notes,
                            float_reasons=reasons)


def _per_channel_weights(model: ir.Model) -> int:
    """How many constant tensors of ``model`` carry per-channel quantization."""
    return sum(1 for sg in model.subgraphs for t in sg.tensors
               if t.data is not None and t.quantization is not None and t.quantization.per_channel)


def _input_grid(model: ir.Model, index: int) -> tuple[float, int]:
    """(scale, uint8 zero point) of a model input: its own quantization, or that of the QUANTIZE
    that consumes a float input."""
    sg = model.main
    tensor = sg.tensors[index]
    if tensor.quantization is None:
        for op in sg.operators:
            if op.opcode == "QUANTIZE" and op.inputs and op.inputs[0] == index:
                tensor = sg.tensors[op.outputs[0]]
                break
    if tensor.quantization is None or tensor.quantization.per_channel:
        raise TfliteInverterError(f"{model.source}: input {sg.tensors[index].name!r} has no per-tensor quantization")
    zero_point = int(tensor.quantization.zero_points[0]) + (128 if tensor.dtype == "int8" else 0)
    return float(tensor.quantization.scales[0]), zero_point


def _input_stats_grid(mean: Any, std: Any) -> ir.QuantParams | None:
    """The uint8 input grid that ``real = (q - mean) / std`` describes (the TF1 converter's
    ``quantized_input_stats``), or ``None`` for the default normalisation (0, 1) or per-channel values."""
    import numpy as np

    means, stds = np.atleast_1d(np.asarray(mean, np.float64)), np.atleast_1d(np.asarray(std, np.float64))
    if means.size != 1 or stds.size != 1 or (means[0] == 0.0 and stds[0] == 1.0):
        return None
    if not 0 <= means[0] <= 255 or means[0] != round(means[0] * 2) / 2 or stds[0] <= 0:
        raise TfliteInverterError(f"mean {means[0]} / std {stds[0]}: a uint8 input needs 0 <= mean <= 255 and std > 0")
    return ir.QuantParams(scales=np.array([1.0 / stds[0]], np.float32), zero_points=np.array([int(round(means[0]))], np.int64))


def _float_to_uint8_throughout(source: Any, out_path: Path, *, reference: str | None, overwrite: bool,
                               representative: Any, mean: Any, std: Any, limit: int | None,
                               default_ranges: tuple[float, float] | None, compare: bool = True) -> RequantizeReport:
    """uint8 throughout from a float model: every activation's range calibrated on ``representative``
    (min/max over the samples) and given to the TF1 converter as a FakeQuant node; the inputs' grid
    is ``(q - mean) / std`` when ``mean``/``std`` are given (``quantized_input_stats``), else calibrated;
    ``default_ranges`` for tensors that get no range (``default_ranges_stats``)."""
    from .bias_correction import calibrated_uint8_grids

    if representative is None and default_ranges is None:
        raise TfliteInverterError("uint8_throughout of a float model needs representative data (to calibrate every "
                                  "activation's range) or default_ranges")
    if source.io != "float" or source.quantized_mode != "dequantize":
        from ..build.inverted import InvertedModel

        source = InvertedModel(source.model, quantized="dequantize", io="float")
    specs = [(s.name, s.shape) for s in source.inputs()]
    samples = make_samples(representative, specs, mean=mean, std=std, limit=limit) if representative is not None else []
    grids = calibrated_uint8_grids(source, samples) if samples else {}
    stated = _input_stats_grid(mean, std)
    for spec in source.inputs():
        if stated is not None:
            grids[spec.tensor.index] = stated
        elif spec.tensor.index not in grids:
            raise TfliteInverterError(f"input {spec.name!r}: no range (give representative data, or mean/std)")
    source.set_activation_grids({(0, index): grid for index, grid in grids.items()})
    notes = [f"{len(grids)} activation ranges calibrated on {len(samples)} samples (min/max)"
             + ("; input grid from mean/std" if stated is not None else "")]
    inputs = {spec.tensor.index: (float(grids[spec.tensor.index].scales[0]), int(grids[spec.tensor.index].zero_points[0]))
              for spec in source.inputs()}
    return _tf1_uint8(source, out_path, inputs, reference=reference, overwrite=overwrite, samples=samples or None,
                      notes=notes, origin="calibrated ranges of the float model", default_ranges=default_ranges,
                      compare=compare)


def _uint8_throughout(source: Any, out_path: Path, *, reference: str | None, overwrite: bool, representative: Any,
                      mean: Any, std: Any, limit: int | None, equalize: bool | None = None,
                      default_ranges: tuple[float, float] | None = None, compare: bool = True) -> RequantizeReport:
    """uint8 activations everywhere (NPUs that take only uint8): a frozen GraphDef with a FakeQuant
    node on every activation, through the TF1 converter with ``inference_type=tf.uint8``, which
    reads every activation's range from them.

    The ranges are the original's (the fake_quant inversion), unless the weights must change: a
    model with per-channel weights (uint8 kernels take one scale per weight tensor) is, given
    calibration data, equalized, bias-corrected for per-tensor uint8 weights and calibrated, and
    the FakeQuant nodes carry the calibrated ranges (``equalize``: force or forbid this). A float
    model is calibrated on ``representative`` (see :func:`_float_to_uint8_throughout`)."""
    from ..build.inverted import InvertedModel, invert

    if _is_tflite(source):
        reference = reference or (str(source) if not isinstance(source, (bytes, bytearray)) else None)
        source = invert(source, io="float")
    if not isinstance(source, InvertedModel):
        raise TfliteInverterError("uint8_throughout needs a .tflite or an inverted model: the TF1 converter takes "
                                  "every activation range from FakeQuant nodes, which a SavedModel source cannot be given")
    if not _has_quantized_activations(source.model):
        return _float_to_uint8_throughout(source, out_path, reference=reference, overwrite=overwrite,
                                          representative=representative, mean=mean, std=std, limit=limit,
                                          default_ranges=default_ranges, compare=compare)
    if source.quantized_mode != "fake_quant":
        raise TfliteInverterError("uint8_throughout of a quantized model needs its fake_quant inversion: the TF1 "
                                  "converter takes every activation range from the FakeQuant nodes")
    per_channel = _per_channel_weights(source.model)
    if equalize is None:
        equalize = bool(per_channel) and representative is not None
    if equalize and representative is None:
        raise TfliteInverterError("uint8_throughout with equalization needs representative data: the equalized "
                                  "activations are calibrated again")
    notes: list[str] = []
    specs = [(s.name, s.shape) for s in source.inputs()]
    samples = make_samples(representative, specs, mean=mean, std=std, limit=limit) if representative is not None else None
    if equalize:
        source, grids = _equalized_and_calibrated(source, samples, notes)
    else:
        if source.io != "float":
            source = InvertedModel(source.model, quantized="fake_quant", io="float")
        grids = {spec.tensor.index: _input_grid(source.model, spec.tensor.index) for spec in source.inputs()}
    origin = "calibrated ranges of the equalized graph" if equalize else "the original's ranges"
    report = _tf1_uint8(source, out_path, grids, reference=reference, overwrite=overwrite, samples=samples, notes=notes,
                        origin=origin, default_ranges=default_ranges, compare=compare)
    if per_channel and not equalize:
        report.notes.append(f"warning: the original has {per_channel} per-channel weight tensors; uint8 kernels take one "
                            "scale per weight tensor, so accuracy can drop sharply (see the comparison); give "
                            "representative data to equalize and calibrate instead")
    return report


def _tf1_uint8(source: Any, out_path: Path, grids: dict[int, tuple[float, int]], *, reference: str | None,
               overwrite: bool, samples: Any, notes: list[str], origin: str,
               default_ranges: tuple[float, float] | None, compare: bool = True) -> RequantizeReport:
    """The frozen graph of ``source`` (FakeQuant nodes on its activations) through the TF1 converter
    with ``inference_type=tf.uint8``; ``grids``: each input's (scale, zero point)."""
    import json

    import tensorflow as tf

    from ..emit.frozen_pb import tflite_converter

    with tempfile.TemporaryDirectory(prefix="tflite_inverter_uint8_") as work:
        pb = source.save_frozen_pb(Path(work) / "model.pb")
        description = json.loads(pb.with_suffix(".json").read_text())
        converter = tflite_converter(pb, description)
        converter.inference_type = tf.uint8
        stats = {}
        for entry, spec in zip(description["inputs"], source.inputs()):
            scale, zero_point = grids[spec.tensor.index]
            stats[entry["node"]] = (float(zero_point), 1.0 / scale)  # real = (q - mean) / std
        converter.quantized_input_stats = stats
        if default_ranges is not None:
            converter.default_ranges_stats = (float(default_ranges[0]), float(default_ranges[1]))
        try:
            with quiet_stderr():  # the TF1 converter's log lines
                data = converter.convert()
        except Exception as error:  # the TF1 converter raises several kinds
            raise TfliteInverterError(f"the TF1 converter could not make a uint8 model: {str(error).strip().splitlines()[-1]}") from None
        data, interface_notes = _with_interface(data, source, reference, "uint8_throughout",
                                                ([e["node"] for e in description["inputs"]],
                                                 [e["node"] for e in description["outputs"]]))
        notes.extend(interface_notes)
    path = write_bytes_atomic(out_path, data, overwrite=overwrite)
    model = load(data)
    inputs, outputs = _describe_io(model)
    comparison = None
    if reference is not None and compare and not _runs_in_litert(load(reference)):
        notes.append(f"not compared: LiteRT cannot run {reference} (custom operators)")
    elif reference is not None and compare:
        from ..check.compare import compare as compare_models

        comparison = compare_models(reference, str(path), inputs=samples, draws=3)
    kinds = sorted({t.dtype for t in model.main.tensors if t.data is None})
    notes.insert(0, f"activation types: {', '.join(kinds)} (TF1 converter, FakeQuant nodes with {origin})")
    return RequantizeReport(path=str(path), mode="uint8_throughout", size_bytes=len(data),
                            op_histogram=dict(model.op_histogram()), float_ops=dict(float_ops(model)), inputs=inputs,
                            outputs=outputs, comparison=comparison, notes=notes)


def _equalized_and_calibrated(source: Any, samples: list, notes: list[str]) -> tuple[Any, dict[int, tuple[float, int]]]:
    """The source as an equalized float graph whose biases are corrected for per-tensor uint8
    weights and whose activations carry calibrated uint8 grids; and each input's (scale, zero point)."""
    from .bias_correction import calibrated_uint8_grids, correct_biases, per_tensor_uint8

    equalized = _equalized(source)
    corrected = correct_biases(equalized, samples, quantize=per_tensor_uint8)
    grids = calibrated_uint8_grids(equalized, samples)
    equalized.set_activation_grids({(0, index): grid for index, grid in grids.items()})
    notes.append(f"cross-layer equalization: {_clip_count(equalized)} RELU6 bounds made per-channel; "
                 f"bias correction for per-tensor uint8 weights: {corrected} layers; {len(grids)} activation ranges "
                 f"calibrated on {len(samples)} samples")
    inputs = {spec.tensor.index: grids[spec.tensor.index] for spec in equalized.inputs()}
    return equalized, {index: (float(g.scales[0]), int(g.zero_points[0])) for index, g in inputs.items()}

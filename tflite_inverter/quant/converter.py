"""The TFLite converter as the re-quantizer uses it: made from an inversion or a SavedModel, run with
its errors made the library's, and MediaPipe's float64 builders kept out of its way."""

from __future__ import annotations

import os
from typing import Any

from .. import ir
from ..errors import TfliteInverterError


def is_tflite(source: Any) -> bool:
    return isinstance(source, (bytes, bytearray)) or (isinstance(source, (str, os.PathLike)) and str(source).endswith(".tflite"))


def has_quantized_activations(model: ir.Model) -> bool:
    return any(t.quantization is not None and t.data is None for sg in model.subgraphs for t in sg.tensors)


def per_channel_weights(model: ir.Model) -> int:
    """How many constant tensors of ``model`` carry per-channel quantization."""
    return sum(1 for sg in model.subgraphs for t in sg.tensors
               if t.data is not None and t.quantization is not None and t.quantization.per_channel)


def converter_for(source: Any):
    """(converter, has FakeQuant ranges, float input specs) for a prepared source."""
    import tensorflow as tf

    from ..build.inverted import InvertedModel

    if isinstance(source, InvertedModel):
        source = traced_in_float32(source)
        key = source.default_signature
        concrete = source.concrete_functions[key]
        refuse_float64(concrete.graph)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], light_trackable(source.module))
        fake_quant = source.quantized_mode == "fake_quant" and has_quantized_activations(source.model)
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


def convert(converter, mode: str) -> tuple[bytes, str | None]:
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


def computes_in_float64(graph: Any) -> list:
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


def traced_in_float32(source: Any) -> Any:
    """``source`` (an InvertedModel) built again inside :func:`float32_arithmetic` when it was
    traced with MediaPipe's float64 builders (an inversion made outside ``requantize``)."""
    from ..build.inverted import InvertedModel

    if not computes_in_float64(source.concrete_functions[source.default_signature].graph):
        return source
    if source.cut is not None or source.input_shapes:
        return source  # refuse_float64 names the problem
    from ..ops.mediapipe import float32_arithmetic

    with float32_arithmetic():
        return InvertedModel(source.model, quantized=source.quantized_mode, io=source.io)


def refuse_float64(graph: Any) -> None:
    """Fail fast (the converter takes minutes to say so) when the graph computes in float64, which
    TFLite has no kernels for: MediaPipe's TransformLandmarks / TransformTensorBilinear builders sum
    in float64 to be bit-exact with the C++ kernels."""
    computing = computes_in_float64(graph)
    if computing:
        scopes = sorted({op.name.split("/")[0] for op in computing})
        raise TfliteInverterError(f"the graph computes in float64 ({len(computing)} ops, under {scopes[:5]}), which the "
                                  "TFLite converter cannot lower (an inversion with new input shapes or a cut keeps "
                                  "MediaPipe's float64 builders: invert the whole model, or pass the .tflite)")


def light_trackable(module: Any) -> Any:
    """What the converter saves the concrete function with: a bare module holding the weights (and
    module state), so that saving does not trace the inverted module's other tf.functions again
    (pose_landmark_full: 37 s of conversion, 26 of them that save, down to 14 s)."""
    import tensorflow as tf

    light = tf.Module(name="requantize")
    light.weights_ = list(module.weights.values())
    light.resources_ = dict(module.resources)
    return light

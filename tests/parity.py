"""Parity-test helpers: make a tiny model with the TFLite converter, invert it, compare.

A test writes a ``tf.function`` body and its input specs; :func:`convert` turns it into a
``.tflite`` with ``tf.lite.TFLiteConverter.from_concrete_functions`` (float32, float16 weights,
dynamic range, or full integer), and :func:`assert_parity` inverts it and checks it against the
reference interpreter, after checking that the converter really emitted the op under test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

import tflite_inverter as ti

MODES = ("float32", "float16", "dynamic_range", "int8", "int8_per_tensor", "int8_io_int8", "int8_io_uint8", "int16x8")


def convert(function: Callable, input_specs: Sequence[tf.TensorSpec], *, mode: str = "float32",
            variables: Sequence[tf.Variable] = (), seed: int = 0, select_tf_ops: bool = False) -> bytes:
    """The ``.tflite`` bytes of ``function`` traced with ``input_specs``."""
    module = tf.Module()
    module.variables_ = list(variables)
    module.f = tf.function(function, input_signature=list(input_specs))
    concrete = module.f.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode.startswith("int8") or mode == "int16x8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "int8_per_tensor":
            converter._experimental_disable_per_channel = True
        if mode == "int8_io_int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
        if mode == "int8_io_uint8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.uint8
        if mode == "int16x8":
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
        rng = np.random.default_rng(seed)

        def representative():
            for _ in range(8):
                yield [rng.uniform(-1, 1, [1 if d is None else d for d in s.shape]).astype(s.dtype.as_numpy_dtype)
                       for s in input_specs]

        converter.representative_dataset = representative
    elif mode != "float32":
        raise ValueError(mode)
    if select_tf_ops:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    return converter.convert()


def opcodes(tflite_bytes: bytes) -> set[str]:
    return set(ti.load(tflite_bytes).op_histogram())


def assert_parity(tflite_bytes: bytes, expect_ops: Sequence[str], *, draws: int = 2, rtol: float = 1e-4,
                  inputs: Sequence[Sequence[np.ndarray]] | None = None, float_range=(-1.0, 1.0),
                  **invert_options) -> ti.VerifyReport:
    """Invert ``tflite_bytes`` (with ``invert_options`` such as ``quantized=``, ``io=``) and assert it
    matches LiteRT; ``expect_ops`` must be in the model."""
    _record_versions(tflite_bytes)
    present = opcodes(tflite_bytes)
    missing = [op for op in expect_ops if op not in present]
    assert not missing, f"the converter did not emit {missing}; the model has {sorted(present)}"
    inverted = ti.invert(tflite_bytes, **invert_options)
    report = ti.verify(tflite_bytes, inverted, draws=draws, rtol=rtol, inputs=inputs, float_range=float_range)
    assert report.passed, report.table()
    if inverted.stateful:  # a model with state is compared over a sequence of calls too
        assert any(o.name.endswith("(calls in sequence)") for o in report.outputs), report.table()
    return report


def _record_versions(tflite_bytes: bytes) -> None:
    """With $TFLITE_INVERTER_RECORD_VERSIONS set, append the (opcode, version) pairs each parity
    test covered to that file: how the registry's ``max_version`` values are chosen."""
    import os

    target = os.environ.get("TFLITE_INVERTER_RECORD_VERSIONS")
    if target:
        with open(target, "a") as handle:
            for op in {(op.opcode, op.version) for sg in ti.load(tflite_bytes).subgraphs for op in sg.operators}:
                handle.write(f"{op[0]} {op[1]}\n")


def weight(shape: Sequence[int], seed: int = 0, scale: float = 0.5) -> tf.Tensor:
    """A seeded constant weight for test models."""
    return tf.constant(np.random.default_rng(seed).normal(0, scale, size=shape).astype(np.float32))


def pruned(shape, density=0.2, block=None, seed=0):
    """A weight with about ``1 - density`` zeros; ``block`` (rows, cols) zeroes whole blocks of
    the last two dimensions."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, shape).astype(np.float32)
    if block is None:
        mask = rng.random(shape) < density
    else:
        rows, cols = shape[-2] // block[0], shape[-1] // block[1]
        mask = (rng.random([*shape[:-2], rows, cols]) < density).repeat(block[0], axis=-2).repeat(block[1], axis=-1)
    return w * mask


def photo_crops(size: int, count: int, seed: int, signed: bool = False) -> np.ndarray:
    """``count`` seeded square crops of skimage's colour photographs resized to ``size``, shape
    (count, size, size, 3), in [0, 1] or with ``signed`` in [-1, 1] (benchmarks/bench_requantize.py's recipe)."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)()[..., :3] for name in ("astronaut", "chelsea", "coffee", "rocket")]
    out = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        side = int(rng.integers(min(photo.shape[:2]) // 2, min(photo.shape[:2]) + 1))
        top, left = rng.integers(photo.shape[0] - side + 1), rng.integers(photo.shape[1] - side + 1)
        image = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.BILINEAR)
        value = np.asarray(image, np.float32) / 255.0
        out.append(value * 2.0 - 1.0 if signed else value)
    return np.stack(out)


def every_tensor(data: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor LiteRT holds after running ``data`` on ``x`` (quantized onto an integer input's grid), by name."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    if detail["dtype"] != np.float32:
        scale, zero_point = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        x = np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    values = {}
    for d in interpreter.get_tensor_details():
        try:
            values[d["name"]] = interpreter.get_tensor(d["index"])
        except ValueError:
            continue
    return values

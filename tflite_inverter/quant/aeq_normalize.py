"""Rewrites of the copy of a float ``.tflite`` handed to ai-edge-quantizer (:func:`.edge_quantizer.normalized`).

ai-edge-quantizer 0.10 cannot read two things MediaPipe models hold, so the copy replaces them by
what computes the same in float and what its recipes know:

* **sparse constants** (TFLite's ``SparsityParameters``, mostly behind a DENSIFY): each becomes its
  dense value (densified by :func:`tflite_inverter.passes.densify.densify_constants`, the project's
  one densifier), its ``sparsity`` cleared; a DENSIFY's output tensor takes the dense value as a
  constant and the DENSIFY goes (so a float16 weight behind DENSIFY and DEQUANTIZE is then folded
  to float32 like any float16 weight). The dense tensor has the sparse one's type.
* **MediaPipe's CUSTOM:Convolution2DTransposeBias** (``input, weights OHWI, bias``; options a packed
  ``TfLiteTransposeConvParams``: int32 ``padding`` 1 SAME / 2 VALID, ``stride_width``,
  ``stride_height``) becomes the builtin TRANSPOSE_CONV (``output_shape, weights, input, bias``,
  version 3: the version with a bias), which ai-edge-quantizer's CONV_2D_TRANSPOSE policy
  quantizes. The output shape is MediaPipe's (``stride * (in - 1) + filter - pad``, with
  ``pad = max(0, filter - (in - 1) % stride - 1)`` for SAME, 0 for VALID), which is what
  TRANSPOSE_CONV with that padding computes for that output shape (both offset the window by
  ``pad // 2``). An op whose options are not those (another padding, short options, non-positive
  strides) or whose input has no static height and width stays custom, and ai-edge-quantizer
  leaves it float.
"""

from __future__ import annotations

import numpy as np

from .. import ir
from ..errors import InvalidModelError
from .object_api import builtin_code, opcode_index

TRANSPOSE_CONV_BIAS = "CUSTOM:Convolution2DTransposeBias"
_SAME, _VALID = 1, 2  # TfLitePadding in the packed options
# TFLite builtin names whose ai-edge-quantizer policy name differs (qtyping.TFLOperationName)
POLICY_NAMES = {"TRANSPOSE_CONV": "CONV_2D_TRANSPOSE"}


def transpose_conv_params(custom_options) -> tuple[int, int, int] | None:
    """(padding, stride_width, stride_height) of a Convolution2DTransposeBias's packed options (read
    as its builder reads them), or ``None`` when the rewrite does not take them (padding 0 included)."""
    from ..ops.mediapipe import unpack_params

    if custom_options is None:
        data = b""
    elif isinstance(custom_options, (bytes, bytearray, memoryview)):
        data = bytes(custom_options)
    else:  # the schema object API's list or array of bytes
        data = np.asarray(custom_options, np.uint8).tobytes()
    try:
        p = unpack_params(data, "TfLiteTransposeConvParams", ("padding", "stride_width", "stride_height"))
    except ValueError:
        return None
    if p["padding"] not in (_SAME, _VALID):
        return None
    return p["padding"], p["stride_width"], p["stride_height"]


def transpose_conv_output_shape(input_shape, weights_shape, params) -> list[int] | None:
    """MediaPipe's output shape of Convolution2DTransposeBias (``None`` without a static 4-D input),
    from the same window arithmetic as its builder."""
    from ..ops.mediapipe import transpose_conv_bias_window

    if len(input_shape) != 4 or len(weights_shape) != 4 or any(int(d) <= 0 for d in input_shape):
        return None
    padding, stride_w, stride_h = params
    sizes = [transpose_conv_bias_window(int(size), int(kernel), stride, padding)[1]
             for size, kernel, stride in ((input_shape[1], weights_shape[1], stride_h),
                                          (input_shape[2], weights_shape[2], stride_w))]
    return [int(input_shape[0]), sizes[0], sizes[1], int(weights_shape[0])]


def opcodes(model: ir.Model) -> set[str]:
    """The operator names (TFLite's, as :mod:`tflite_inverter.ir` spells them) of ``model``'s
    normalised copy: no DENSIFY, and TRANSPOSE_CONV for each Convolution2DTransposeBias the copy
    rewrites."""
    names = set()
    for sg in model.subgraphs:
        for op in sg.operators:
            if op.opcode == "DENSIFY":
                continue
            if op.opcode == TRANSPOSE_CONV_BIAS and _rewritable(sg.tensors, op.inputs, op.custom_options):
                names.add("TRANSPOSE_CONV")
                continue
            names.add(op.opcode)
    return names


def densified_outputs(subgraph: ir.Subgraph) -> set[int]:
    """The tensors of ``subgraph`` a DENSIFY computes from a sparse constant: constants in the
    normalised copy (their type is the weight's, float16 for instance, not an activation's)."""
    return {op.outputs[0] for op in subgraph.operators if op.opcode == "DENSIFY" and op.inputs and op.outputs
            and subgraph.tensors[op.inputs[0]].data is not None and subgraph.tensors[op.inputs[0]].sparsity is not None}


def describe(model: ir.Model) -> list[str]:
    """What the normalised copy of ``model`` rewrites, for a report's notes (empty when nothing)."""
    densify = sum(op.opcode == "DENSIFY" for sg in model.subgraphs for op in sg.operators)
    sparse = sum(t.sparsity is not None and t.data is not None for sg in model.subgraphs for t in sg.tensors)
    rewritten = kept = 0
    for sg in model.subgraphs:
        for op in sg.operators:
            if op.opcode == TRANSPOSE_CONV_BIAS:
                if _rewritable(sg.tensors, op.inputs, op.custom_options):
                    rewritten += 1
                else:
                    kept += 1
    notes = []
    if sparse:
        notes.append(f"normalised copy: {sparse} sparse constant(s) densified"
                     + (f", {densify} DENSIFY removed" if densify else ""))
    if rewritten:
        notes.append(f"normalised copy: {rewritten} {TRANSPOSE_CONV_BIAS} as the builtin TRANSPOSE_CONV "
                     "(output_shape, weights, input, bias)")
    if kept:
        notes.append(f"normalised copy: {kept} {TRANSPOSE_CONV_BIAS} left custom (options other than "
                     "padding SAME / VALID with positive strides, or no static input shape)")
    return notes


def tflite_names(policy_names) -> set[str]:
    """ai-edge-quantizer's policy op names as TFLite's builtin names."""
    back = {v: k for k, v in POLICY_NAMES.items()}
    return {back.get(name, name) for name in policy_names}


def _rewritable(tensors, inputs, custom_options) -> tuple[tuple[int, int, int], list[int]] | None:
    params = transpose_conv_params(custom_options)
    if params is None or len(inputs) != 3 or any(i is None or int(i) < 0 for i in inputs):
        return None
    shape = transpose_conv_output_shape(list(tensors[int(inputs[0])].shape), list(tensors[int(inputs[1])].shape), params)
    return None if shape is None else (params, shape)


def rewrite(model, data: bytes, schema) -> None:
    """Apply both rewrites to ``model`` (the schema object API's ``ModelT`` of ``data``) in place.
    Tensors left unused (the sparse originals) are for the caller to drop."""
    _densify(model, data, schema)
    _transpose_conv_bias(model, schema)


def _code_of(code) -> str:
    builtin = builtin_code(code)
    if builtin == 32:  # BuiltinOperator.CUSTOM
        name = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
        return f"CUSTOM:{name}"
    return str(builtin)


def _densify(model, data: bytes, schema) -> None:
    sparse = [(s, t) for s, sg in enumerate(model.subgraphs) for t, tensor in enumerate(sg.tensors or [])
              if tensor.sparsity is not None]
    if not sparse:
        return
    from ..passes.densify import densify_constants
    from ..reader import load

    read = load(data)
    dense = densify_constants(read)
    dense_buffer: dict[tuple[int, int], int] = {}
    for s, t in sparse:
        tensor = dense.subgraphs[s].tensors[t]
        if tensor.data is None or read.subgraphs[s].tensors[t].sparsity is None:
            continue  # a sparse variable or a tensor without data: nothing to densify
        values = np.asarray(tensor.data)
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(values.astype(values.dtype.newbyteorder("<")).tobytes(), np.uint8)
        model.buffers.append(buffer)
        target = model.subgraphs[s].tensors[t]
        target.buffer, target.sparsity = len(model.buffers) - 1, None
        dense_buffer[(s, t)] = target.buffer
    densify = {index for index, code in enumerate(model.operatorCodes or [])
               if builtin_code(code) == schema.BuiltinOperator.DENSIFY}
    for s, sg in enumerate(model.subgraphs):
        kept = []
        for position, op in enumerate(sg.operators or []):
            if op.opcodeIndex not in densify:
                kept.append(op)
                continue
            source = (s, int(op.inputs[0]))
            if source not in dense_buffer:
                raise InvalidModelError(f"subgraph {s} operator {position} (DENSIFY): its input "
                                        f"{_name(sg.tensors[source[1]])!r} is not a sparse constant")
            target = sg.tensors[int(op.outputs[0])]
            if target.type != sg.tensors[source[1]].type:
                raise InvalidModelError(f"subgraph {s} operator {position} (DENSIFY): output type {target.type} "
                                        f"differs from its input's {sg.tensors[source[1]].type}")
            if [int(d) for d in (target.shape if target.shape is not None else [])] != \
                    [int(d) for d in sg.tensors[source[1]].shape]:
                raise InvalidModelError(f"subgraph {s} operator {position} (DENSIFY): output shape "
                                        f"{list(target.shape)} differs from its input's {list(sg.tensors[source[1]].shape)}")
            target.buffer = dense_buffer[source]
        sg.operators = kept


def _name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def _transpose_conv_bias(model, schema) -> None:
    custom = {index for index, code in enumerate(model.operatorCodes or []) if _code_of(code) == TRANSPOSE_CONV_BIAS}
    if not custom:
        return
    code_index = None
    for sg in model.subgraphs:
        for op in sg.operators or []:
            if op.opcodeIndex not in custom:
                continue
            found = _rewritable(sg.tensors, [int(i) for i in op.inputs], op.customOptions)
            if found is None:
                continue
            (padding, stride_w, stride_h), shape = found
            output = sg.tensors[int(op.outputs[0])]
            if output.shape is not None and len(output.shape) and [int(d) for d in output.shape] != shape:
                raise InvalidModelError(f"{TRANSPOSE_CONV_BIAS} output {_name(output)!r} has shape "
                                        f"{[int(d) for d in output.shape]}, its options and input give {shape}")
            if code_index is None:
                code_index = opcode_index(model, schema.BuiltinOperator.TRANSPOSE_CONV, schema, version=3)  # 3: the bias input
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.asarray(shape, "<i4").tobytes(), np.uint8)
            model.buffers.append(buffer)
            shape_tensor = schema.TensorT()
            shape_tensor.name = _name(output) + "/output_shape"
            shape_tensor.shape, shape_tensor.type, shape_tensor.buffer = [4], schema.TensorType.INT32, len(model.buffers) - 1
            sg.tensors.append(shape_tensor)
            x, w, bias = (int(i) for i in op.inputs)
            options = schema.TransposeConvOptionsT()
            options.padding = schema.Padding.SAME if padding == _SAME else schema.Padding.VALID
            options.strideW, options.strideH = stride_w, stride_h
            options.fusedActivationFunction = schema.ActivationFunctionType.NONE
            op.opcodeIndex, op.inputs = code_index, [len(sg.tensors) - 1, w, x, bias]
            op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.TransposeConvOptions, options
            op.customOptions, op.customOptionsFormat = None, schema.CustomOptionsFormat.FLEXBUFFERS



"""A re-converted model given back the original's interface: signature key, input and output names
and order.

The TFLite converters name a model's inputs and outputs after the graph they convert
(``serving_default_x:0``, ``StatefulPartitionedCall:0``, frozen-graph node names), and the TF2
converter orders outputs by signature key, alphabetically. An application that reads output 0 of
the original would get another tensor. :func:`restore_interface` rewrites the converted flatbuffer
with the schema's object API (independent of converter version): the subgraph's input and output
lists in the original order, those tensors renamed to the original's names, and the SignatureDef
made the original's (key and names), or removed when the original had none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import ir
from ..errors import TfliteInverterError
from .object_api import inline_buffers, packed, unpacked
from ..names import python_identifier, sanitize_name
from ..reader import load


@dataclass(frozen=True)
class Port:
    """One input or output of the original model, and how the converted model calls it."""

    keys: tuple[str, ...]  # candidate names in the converted model (signature key, or tensor name)
    tensor_name: str  # the original tensor's name
    signature_name: str | None  # the original SignatureDef's name for it, if the original has one
    shape: tuple[int, ...]  # the original's shape signature (-1: dynamic)
    dtype: str


@dataclass(frozen=True)
class Interface:
    signature_key: str | None  # None: the original has no SignatureDef
    inputs: tuple[Port, ...]  # in the SignatureDef's order (or the subgraph's, without one)
    outputs: tuple[Port, ...]
    # With a SignatureDef, the subgraph's own input/output order (tensor names), which can differ
    subgraph_inputs: tuple[str, ...] | None = None
    subgraph_outputs: tuple[str, ...] | None = None

    def with_converted_keys(self, inputs: list[str], outputs: list[str]) -> "Interface":
        """The same interface, whose ports the converted model calls ``inputs`` / ``outputs`` (in order)."""
        def rekey(ports, keys):
            return tuple(Port((key,), p.tensor_name, p.signature_name, p.shape, p.dtype) for p, key in zip(ports, keys))

        return Interface(self.signature_key, rekey(self.inputs, inputs), rekey(self.outputs, outputs),
                         self.subgraph_inputs, self.subgraph_outputs)


def interface_of(inverted, signature: str | None = None) -> Interface:
    """The interface of the model an :class:`~tflite_inverter.build.inverted.InvertedModel` was made
    from (a cut model's: its cut tensors, no SignatureDef), keyed as the TF2 converter keys a
    conversion of its ``signature`` function."""
    key = signature or inverted.default_signature
    info = inverted.signatures[key]
    sg = inverted.model.subgraphs[info.subgraph_index]
    original = None
    if inverted.cut is None:
        original = next((s for s in inverted.model.signatures if s.key == info.key), None)
    input_names = list(original.inputs) if original is not None else [None] * len(info.input_tensors)
    output_names = list(original.outputs) if original is not None else [None] * len(info.output_tensors)
    changed = {index for (k, index) in inverted.input_shapes if k == key}

    def port(keys, index, signature_name, dynamic=False):
        tensor = sg.tensors[index]
        shape = tuple(-1 for _ in tensor.shape_signature) if dynamic else tuple(tensor.shape_signature)
        return Port(keys, tensor.name, signature_name, shape, tensor.dtype)

    # New input shapes change every later shape: then only names and order are kept, not shapes.
    inputs = tuple(port((python_identifier(n), n), i, s, dynamic=i in changed)
                   for n, i, s in zip(info.input_names, info.input_tensors, input_names))
    outputs = tuple(port((n,), i, s, dynamic=bool(changed))
                    for n, i, s in zip(info.output_names, info.output_tensors, output_names))
    if original is None:
        return Interface(None, inputs, outputs)
    return Interface(original.key, inputs, outputs, *_subgraph_order(sg, inputs, outputs))


def _subgraph_order(sg: ir.Subgraph, inputs, outputs) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """The subgraph's input and output order (tensor names), where it lists just the signature's tensors."""
    def order(indices, ports):
        names = tuple(sg.tensors[i].name for i in indices)
        return names if sorted(names) == sorted(p.tensor_name for p in ports) else None

    return order(sg.inputs, inputs), order(sg.outputs, outputs)


def interface_of_model(model: ir.Model) -> Interface:
    """The interface of a ``.tflite`` (its first SignatureDef, or its main subgraph), keyed by its
    signature names (or tensor names)."""
    if model.signatures:
        sig = model.signatures[0]
        sg = model.subgraphs[sig.subgraph_index]

        def ports(mapping):
            return tuple(Port((name, sg.tensors[i].name), sg.tensors[i].name, name, tuple(sg.tensors[i].shape_signature),
                              sg.tensors[i].dtype) for name, i in mapping.items())

        inputs, outputs = ports(sig.inputs), ports(sig.outputs)
        return Interface(sig.key, inputs, outputs, *_subgraph_order(sg, inputs, outputs))
    sg = model.main

    def plain(indices):
        return tuple(Port((sg.tensors[i].name,), sg.tensors[i].name, None, tuple(sg.tensors[i].shape_signature),
                          sg.tensors[i].dtype) for i in indices)

    return Interface(None, plain(sg.inputs), plain(sg.outputs))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def restore_interface(data: bytes, interface: Interface) -> bytes:
    """``data`` (a converted ``.tflite``) with ``interface``'s names, order and SignatureDef.

    Ports are found by their keys in the converted model's (only) SignatureDef, or, without one
    (the TF1 converter), among the names of its subgraph's inputs and outputs. Raises if a port is
    missing or the converted model has inputs or outputs the interface does not name."""
    from tensorflow.lite.python import schema_py_generated as schema

    quick = _only_the_signature_differs(data, interface)
    if quick is not None:
        return quick
    model = unpacked(data)
    inline_buffers(model, data)
    signatures = model.signatureDefs or []
    if len(signatures) > 1:
        raise TfliteInverterError(f"the converted model has {len(signatures)} SignatureDefs; expected at most one")
    if signatures:
        subgraph_index = signatures[0].subgraphIndex
        sg = model.subgraphs[subgraph_index]
        found_inputs = {_text(m.name): int(m.tensorIndex) for m in signatures[0].inputs or []}
        found_outputs = {_text(m.name): int(m.tensorIndex) for m in signatures[0].outputs or []}
    else:
        subgraph_index = 0
        sg = model.subgraphs[0]
        found_inputs = {_text(sg.tensors[i].name): int(i) for i in sg.inputs}
        found_outputs = {_text(sg.tensors[i].name): int(i) for i in sg.outputs}

    def resolve(ports, found, what):
        indices = []
        for port in ports:
            key = next((k for k in port.keys if k in found), None)
            if key is None:
                raise TfliteInverterError(f"the converted model has no {what} {port.tensor_name!r} "
                                          f"(looked for {list(port.keys)}; it has {sorted(found)})")
            indices.append(found[key])
        return indices

    inputs, outputs = resolve(interface.inputs, found_inputs, "input"), resolve(interface.outputs, found_outputs, "output")
    for what, wanted, have in (("inputs", inputs, sg.inputs), ("outputs", outputs, sg.outputs)):
        extra = sorted({int(i) for i in have} - set(wanted))
        if extra:
            names = [_text(sg.tensors[i].name) for i in extra]
            raise TfliteInverterError(f"the converted model has {what} {names} that the original does not have")
    for port, index in zip(interface.inputs + interface.outputs, inputs + outputs):
        sg.tensors[index].name = port.tensor_name

    def subgraph_order(ports, indices, order):
        if order is None:
            return list(indices)
        by_name = {port.tensor_name: index for port, index in zip(ports, indices)}
        return [by_name[name] for name in order]

    sg.inputs = subgraph_order(interface.inputs, inputs, interface.subgraph_inputs)
    sg.outputs = subgraph_order(interface.outputs, outputs, interface.subgraph_outputs)
    if interface.signature_key is None:
        model.signatureDefs = []
    else:
        signature = schema.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex = interface.signature_key, subgraph_index

        def maps(ports, indices):
            result = []
            for port, index in zip(ports, indices):
                entry = schema.TensorMapT()
                entry.name, entry.tensorIndex = port.signature_name or port.tensor_name, index
                result.append(entry)
            return result

        signature.inputs, signature.outputs = maps(interface.inputs, inputs), maps(interface.outputs, outputs)
        model.signatureDefs = [signature]
    return packed(model, len(data) + 4096)


_SIGNATURE_DEFS_SLOT = 7  # Model.signature_defs: the eighth field of the schema's root table


def _only_the_signature_differs(data: bytes, interface: Interface) -> bytes | None:
    """``data`` without its SignatureDefs when that is all that keeps it from ``interface`` (the
    original has none; the subgraph's inputs and outputs already carry its names in its order, as
    ai-edge-quantizer leaves the normalised copy, which has a SignatureDef for aeq's sake); else None.

    The root table's field is dropped in the bytes: a copy of its vtable with that field absent is
    appended at the end of the file and the root table's vtable offset pointed at it, so no offset
    elsewhere moves (buffers stored after the flatbuffer keep their positions). Unpacking and packing
    the whole model with the object API took 40-70 ms on a MediaPipe model for this one field."""
    import struct

    if interface.signature_key is not None or len(data) >= 2**31 - 64:
        return None
    model = load(data)
    sg = model.main
    if (len(model.signatures) != 1 or model.signatures[0].subgraph_index != 0
            or [sg.tensors[i].name for i in sg.inputs] != [p.tensor_name for p in interface.inputs]
            or [sg.tensors[i].name for i in sg.outputs] != [p.tensor_name for p in interface.outputs]):
        return None
    root = struct.unpack_from("<I", data, 0)[0]
    vtable = root - struct.unpack_from("<i", data, root)[0]
    length = struct.unpack_from("<H", data, vtable)[0]
    entry = 4 + 2 * _SIGNATURE_DEFS_SLOT
    if length < entry + 2:
        return None
    copy = bytearray(data[vtable:vtable + length])
    copy[entry:entry + 2] = b"\0\0"
    patched = bytearray(data)
    patched += bytes(-len(patched) % 4)  # vtables are read as uint16s: keep them aligned
    at = len(patched)
    patched += copy
    struct.pack_into("<i", patched, root, root - at)
    return bytes(patched)


def interface_problems(interface: Interface, model: ir.Model, *, check_dtypes: bool = False) -> list[str]:
    """How ``model`` (a re-converted ``.tflite``, as read) differs from ``interface``: signature key,
    names, order, static shapes (and dtypes with ``check_dtypes``). Empty when it is a drop-in."""
    got = interface_of_model(model)
    problems = []
    for what, want, have in (("subgraph inputs", interface.subgraph_inputs, got.subgraph_inputs),
                             ("subgraph outputs", interface.subgraph_outputs, got.subgraph_outputs)):
        if want is not None and want != have:
            problems.append(f"{what} {list(have or ())}, the original's are {list(want)}")
    if got.signature_key != interface.signature_key:
        problems.append(f"signature key {got.signature_key!r}, the original's is {interface.signature_key!r}")
    for what, want, have in (("inputs", interface.inputs, got.inputs), ("outputs", interface.outputs, got.outputs)):
        want_names = [p.tensor_name for p in want]
        have_names = [p.tensor_name for p in have]
        if want_names != have_names:
            problems.append(f"{what} {have_names}, the original's are {want_names}")
            continue
        for w, h in zip(want, have):
            if w.signature_name != h.signature_name:
                problems.append(f"{what[:-1]} {w.tensor_name!r} has signature name {h.signature_name!r}, "
                                f"the original's is {w.signature_name!r}")
            if len(w.shape) != len(h.shape) or any(a != b and a >= 0 and b >= 0 for a, b in zip(w.shape, h.shape)):
                problems.append(f"{what[:-1]} {w.tensor_name!r} has shape {list(h.shape)}, the original's is {list(w.shape)}")
            if check_dtypes and w.dtype != h.dtype:
                problems.append(f"{what[:-1]} {w.tensor_name!r} is {h.dtype}, the original's is {w.dtype}")
    return problems


def kept_interface(data: bytes, prepared: Any, reference: str | None, mode: str,
                   converted_keys: tuple[list[str], list[str]] | None = None) -> tuple[bytes, list[str]]:
    """The converted ``data`` with the original's interface (:func:`restore_interface`),
    checked before anything is written; and notes on what the mode changed (input/output types).
    ``prepared``: the InvertedModel converted, or a SavedModel path (whose original is ``reference``).
    ``converted_keys``: the converted model's input and output names, when they are not the
    signature keys of the TF2 converter (the TF1 converter's node names)."""
    from ..build.inverted import InvertedModel

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

"""Run a ``.tflite`` in the reference interpreter (LiteRT), meant to be called in a subprocess.

``python -m tflite_inverter.check.reference REQUEST.json`` reads the request (model path, inputs file,
resolvers, signature, whether to keep every tensor), runs each input draw with each resolver
and writes the outputs to the request's output ``.npz``. Each draw starts from reset variable
tensors (a fresh interpreter's state); with ``"sequence": true`` the draws then run again as one
sequence of invocations of the same interpreter, reset once before the first (results keyed
``sequence/...``): what a stateful model (LSTM, RNN, SVDF states) computes when called again and again. The interpreter can crash the process
on some models; running it apart keeps the caller alive and lets it report the crash.
No TensorFlow is imported here.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def _resolver(name: str):
    from ai_edge_litert.interpreter import OpResolverType

    return {
        "default": OpResolverType.AUTO,
        "builtin": OpResolverType.BUILTIN,
        "reference": OpResolverType.BUILTIN_REF,
        "builtin_without_default_delegates": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    }[name]


def run(request: dict) -> None:
    from ai_edge_litert.interpreter import Interpreter

    inputs = np.load(request["inputs"], allow_pickle=False)
    draws = request["draws"]
    input_tensors = request["input_tensors"]  # tensor indices in the signature's subgraph
    output_tensors = request["output_tensors"]
    signature = request.get("signature")
    results = {}
    for resolver in request["resolvers"]:
        interpreter = Interpreter(
            model_path=request["model"],
            experimental_op_resolver_type=_resolver(resolver),
            experimental_preserve_all_tensors=bool(request.get("all_tensors")),
            num_threads=1,
        )
        # Each draw from reset state; then, if asked, the draws again as one sequence of calls
        # (results under "sequence/"), reset once before the first.
        for sequence in (False, True) if request.get("sequence") else (False,):
            prefix = "sequence/" if sequence else ""
            if signature is not None:
                if not sequence:
                    interpreter.allocate_tensors()  # reset_all_variables needs allocated variable tensors
                runner = interpreter.get_signature_runner(signature)
                for d in range(draws):
                    if d == 0 or not sequence:
                        interpreter.reset_all_variables()
                    feeds = {name: inputs[f"{d}/{i}"] for i, name in enumerate(request["input_names"])}
                    out = runner(**feeds)
                    for i, name in enumerate(request["output_names"]):
                        results[f"{prefix}{resolver}/{d}/out/{i}"] = np.array(out[name])  # a copy
                continue
            details = {detail["index"]: detail for detail in interpreter.get_input_details()}
            for d in range(draws):
                for i, index in enumerate(input_tensors):
                    value = inputs[f"{d}/{i}"]
                    if tuple(details[index]["shape"]) != value.shape:
                        if sequence and d:  # reallocating would reset the variable tensors mid-sequence
                            raise ValueError(f"draw {d} input {i} has shape {value.shape}, the sequence started "
                                             f"with {tuple(details[index]['shape'])}")
                        interpreter.resize_tensor_input(index, value.shape, strict=False)
                        details[index] = dict(details[index], shape=value.shape)
                if d == 0 or not sequence:
                    interpreter.allocate_tensors()
                    interpreter.reset_all_variables()  # a draw starts from reset variable tensors
                for i, index in enumerate(input_tensors):
                    interpreter.set_tensor(index, inputs[f"{d}/{i}"])
                interpreter.invoke()
                for i, index in enumerate(output_tensors):
                    results[f"{prefix}{resolver}/{d}/out/{i}"] = interpreter.get_tensor(index)
                if request.get("all_tensors") and not sequence:
                    for detail in interpreter.get_tensor_details():
                        try:
                            value = interpreter.get_tensor(detail["index"])
                        except ValueError:
                            continue
                        results[f"{resolver}/{d}/tensor/{detail['index']}"] = value
    # String tensors come back as object arrays of bytes; store them as fixed-width bytes (no pickle).
    results = {key: value.astype(bytes) if value.dtype == object else value for key, value in results.items()}
    np.savez(request["outputs"], **results)


def main(argv: list[str]) -> int:
    with open(argv[1]) as handle:
        request = json.load(handle)
    run(request)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Greedy prefill-then-decode with a KV cache, on LiteRT's signature runners or on an inverted model.

The litert-torch form of a decoder-only LLM: a ``prefill`` signature over a fixed number of prompt
positions and a ``decode`` signature over one, both taking ``tokens`` [1, S] and ``input_pos`` [S]
and the KV cache as inputs and returning the updated cache as outputs of the same names (plus
``logits``). :func:`greedy` threads the cache from each call's outputs into the next call's inputs.

LiteRT runs the same loop in a child process (``python generative.py REQUEST.json``): it can crash,
and the tests' own process must survive that. No TensorFlow is imported here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence

import numpy as np

TOKENS, POSITIONS, LOGITS = "tokens", "input_pos", "logits"


def greedy(call: Callable[[str, dict], Mapping[str, np.ndarray]], specs: Mapping[str, Mapping[str, tuple]],
           prompt: Sequence[int], steps: int, forced: Sequence[int] | None = None,
           prefill_key: str = "prefill") -> tuple[list[int], list[np.ndarray]]:
    """Prefill ``prompt`` then decode ``steps`` tokens greedily. ``call(signature, feeds)`` runs one
    signature; ``specs[signature][input] = (shape, dtype)``. Returns the tokens chosen and the
    logits each choice was made from (``steps + 1`` of each: the first from the prompt).
    ``forced``: tokens fed instead of the ones chosen (teacher forcing), to compare logits on one path.
    ``prefill_key``: the prefill signature's name (litert-torch: ``prefill_<length>``)."""
    prefill, decode = specs[prefill_key], specs["decode"]
    caches = {name: np.zeros(shape, dtype) for name, (shape, dtype) in prefill.items() if name not in (TOKENS, POSITIONS)}
    if set(caches) != {n for n in decode if n not in (TOKENS, POSITIONS)}:
        raise ValueError(f"prefill and decode take different caches: {sorted(prefill)} vs {sorted(decode)}")
    length = prefill[TOKENS][0][1]
    if not 0 < len(prompt) <= length:
        raise ValueError(f"a prompt of {len(prompt)} tokens does not fit prefill's {length} positions")
    tokens = np.zeros(prefill[TOKENS][0], prefill[TOKENS][1])
    tokens[0, :len(prompt)] = prompt  # the padding is written into the cache, then overwritten by decode
    positions = np.arange(length, dtype=prefill[POSITIONS][1]).reshape(prefill[POSITIONS][0])
    out = call(prefill_key, {TOKENS: tokens, POSITIONS: positions, **caches})
    caches = {name: np.asarray(out[name]) for name in caches}
    position = len(prompt)
    if LOGITS in out:
        logits = [np.asarray(out[LOGITS])[0, position - 1]]
    else:  # litert-torch's prefill may return the cache alone: decode the last prompt token again
        position -= 1
        out = call("decode", {TOKENS: np.array([[prompt[-1]]], decode[TOKENS][1]),
                              POSITIONS: np.full(decode[POSITIONS][0], position, decode[POSITIONS][1]), **caches})
        caches = {name: np.asarray(out[name]) for name in caches}
        logits = [np.asarray(out[LOGITS])[0, -1]]
        position += 1
    chosen = [int(np.argmax(logits[-1]))]
    for step in range(steps):
        fed = chosen[-1] if forced is None else forced[step]
        out = call("decode", {TOKENS: np.array([[fed]], decode[TOKENS][1]),
                              POSITIONS: np.full(decode[POSITIONS][0], position, decode[POSITIONS][1]), **caches})
        caches = {name: np.asarray(out[name]) for name in caches}
        logits.append(np.asarray(out[LOGITS])[0, -1])
        chosen.append(int(np.argmax(logits[-1])))
        position += 1
    return chosen, logits


def inverted_specs(inverted, prefill_key: str = "prefill") -> dict[str, dict[str, tuple]]:
    """``specs`` for :func:`greedy` from an :class:`InvertedModel`'s prefill and decode inputs."""
    return {key: {spec.name: (tuple(spec.shape), np.dtype(spec.dtype)) for spec in inverted.inputs(key)}
            for key in (prefill_key, "decode")}


def run_litert(model_path: str, prompt: Sequence[int], steps: int, timeout: float = 300,
               prefill_key: str = "prefill") -> tuple[list[int], list[np.ndarray], list[float]]:
    """:func:`greedy` on LiteRT's signature runners (default kernels), in a child process; also each
    step's noise floor: how far LiteRT's reference kernels (``BUILTIN_REF``), fed the same tokens and
    carrying their own cache, are from the default kernels' logits."""
    with tempfile.TemporaryDirectory(prefix="generative_") as work:
        request = {"model": str(model_path), "prompt": list(map(int, prompt)), "steps": steps, "prefill": prefill_key,
                   "outputs": os.path.join(work, "out.npz")}
        path = os.path.join(work, "request.json")
        with open(path, "w") as handle:
            json.dump(request, handle)
        done = subprocess.run([sys.executable, os.path.abspath(__file__), path], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"LiteRT's greedy loop failed (exit {done.returncode}): {done.stderr[-2000:]}")
        with np.load(request["outputs"]) as data:
            return [int(t) for t in data["tokens"]], list(data["logits"]), [float(f) for f in data["floors"]]


def _litert_child(request: dict) -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    def signature_runners(resolver):
        interpreter = Interpreter(model_path=request["model"], num_threads=1, experimental_op_resolver_type=resolver)
        return {key: interpreter.get_signature_runner(key) for key in (request["prefill"], "decode")}

    runners, reference = signature_runners(OpResolverType.AUTO), signature_runners(OpResolverType.BUILTIN_REF)
    specs = {key: {name: (tuple(detail["shape"]), detail["dtype"]) for name, detail in runner.get_input_details().items()}
             for key, runner in runners.items()}

    def calls(runner_set):
        # Copies: a runner's result arrays may be views on tensors that the next call overwrites.
        return lambda key, feeds: {k: np.array(v) for k, v in runner_set[key](**feeds).items()}

    tokens, logits = greedy(calls(runners), specs, request["prompt"], request["steps"], prefill_key=request["prefill"])
    # The reference kernels' own run of the same tokens, their own cache carried along: a cache entry
    # the default kernels computed differently shows at every later step.
    _, reference_logits = greedy(calls(reference), specs, request["prompt"], request["steps"], forced=tokens[:-1],
                                 prefill_key=request["prefill"])
    floors = [float(np.abs(a - b).max()) for a, b in zip(logits, reference_logits)]
    np.savez(request["outputs"], tokens=np.array(tokens), logits=np.stack(logits), floors=np.array(floors))


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        _litert_child(json.load(handle))

"""Invert and verify the models of convert.py with this project's interpreter (docs/writers.md).

    python tools/litert_torch/check.py OUT_DIR

For each decoder file, in both quantized modes: ti.verify on every signature, then the greedy
prefill-then-decode loop of tests/generative.py against LiteRT's signature runners (tokens, and
logits within max(1e-4 * magnitude, 2 * noise floor) at every step) and torch's tokens; the weights'
bytes against the file's unique weight bytes. For the CNN and ViT: ti.verify and torch's output.
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import tflite_inverter as ti  # noqa: E402
from generative import greedy, inverted_specs, run_litert  # noqa: E402

PROMPT, STEPS, PREFILL_KEY = [5, 17, 3, 40, 22], 10, "prefill_8"


def unique_weight_bytes(model) -> tuple[int, int]:
    """Float32 bytes of the distinct weight buffers, and of every subgraph's weight tensors."""
    buffers, total = {}, 0
    for sg in model.subgraphs:
        for t in sg.tensors:
            if t.data is not None and t.data.size > 1 and (t.dtype == "float32" or (t.dtype == "int8" and t.quantization)):
                buffers[t.buffer] = t.data.size * 4
                total += t.data.size * 4
    return sum(buffers.values()), total


def check_decoder(path: Path) -> None:
    tokens, reference, floors = run_litert(str(path), PROMPT, STEPS, prefill_key=PREFILL_KEY)
    torch_tokens = np.load(path.with_suffix(".torch_tokens.npy")).tolist()
    unique, every = unique_weight_bytes(ti.load(path))
    print(f"{path.name}: LiteRT tokens {tokens} (torch {torch_tokens}); weights {unique} bytes once, {every} per subgraph")
    for mode in ("fake_quant", "dequantize"):
        inverted = ti.invert(path, quantized=mode)
        report = ti.verify(path, inverted, draws=2)
        got, logits = greedy(lambda key, feeds: inverted.run(feeds, signature=key), inverted_specs(inverted, PREFILL_KEY),
                             PROMPT, STEPS, prefill_key=PREFILL_KEY)
        errors = [float(np.abs(a - b).max()) for a, b in zip(logits, reference)]
        within = all(e <= max(1e-4 * max(1.0, float(np.abs(b).max())), 2 * f) for e, b, f in zip(errors, reference, floors))
        size = sum(v.numpy().nbytes for v in inverted.module.weights.values())
        print(f"  {mode}: verify {'PASSED' if report.passed else 'FAILED'} ({', '.join(report.by_signature)}); "
              f"greedy tokens {'equal' if got == tokens else f'DIFFER {got}'}, max logit error {max(errors):.2g}, "
              f"within tolerance at every step: {within}; {len(inverted.module.weights)} variables, {size} bytes")


def check_vision(path: Path) -> None:
    inverted = ti.invert(path)
    report = ti.verify(path, inverted, draws=3)
    data = np.load(path.with_suffix(".torch.npz"))
    out = next(iter(inverted.run([data["x"]]).values()))
    print(f"{path.name}: verify {'PASSED' if report.passed else 'FAILED'} (max abs {report.outputs[0].max_abs_error:.2g}); "
          f"vs torch max abs {float(np.abs(out - data['y']).max()):.2g}; ops {dict(ti.load(path).op_histogram())}")


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for path in sorted(out.glob("tiny_llama_*.tflite")):
        check_decoder(path)
    for name in ("cnn", "vit"):
        if (out / f"{name}.tflite").exists():
            check_vision(out / f"{name}.tflite")

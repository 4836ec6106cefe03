"""The ``tflite-inverter`` command: a thin layer over the Python API.

Errors the user can act on print as one line and exit 2; a failed verification exits 1. Progress
lines go to stderr when it is a terminal, or with ``-v``; TensorFlow's and absl's warnings are silenced.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

from .errors import TfliteInverterError

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_ERROR = 0, 1, 2
# Progress lines on stderr: when it is a terminal, or with -v (set by main).
VERBOSE = False


def _quiet_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter (C++ log lines on fd 2) hidden.

    Only the import is silenced; a failing import still raises with its Python message.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    import logging

    tensorflow.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


class _Progress:
    """One line per step on stderr, with its duration."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = enabled if enabled is not None else VERBOSE or sys.stderr.isatty()

    def step(self, message: str):
        progress = self

        class _Step:
            def __enter__(self):
                self.start = time.perf_counter()
                if progress.enabled:
                    print(f"{message} ...", file=sys.stderr, flush=True)
                return self

            def __exit__(self, kind, value, traceback):
                if progress.enabled and kind is None:
                    print(f"  done in {time.perf_counter() - self.start:.1f} s", file=sys.stderr, flush=True)
                return False

        return _Step()


def _add_verify_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--draws", type=int, default=3, help="random input draws to compare (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--rtol", type=float, default=1e-4,
                        help="relative tolerance: max abs error <= max(rtol*max(1,|ref|), 2*noise floor) (default 1e-4)")
    parser.add_argument("--float-range", type=float, nargs=2, default=(-1.0, 1.0), metavar=("LOW", "HIGH"),
                        help="range of random float inputs (default -1 1)")
    parser.add_argument("--signature", help="signature key to verify (default: serving_default or the first)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tflite-inverter",
        description="Turn a .tflite model back into TensorFlow (SavedModel, frozen .pb) and check it against LiteRT.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    convert = commands.add_parser("convert", help="invert a .tflite into a SavedModel and/or a frozen .pb",
                                  description="Invert MODEL into OUTDIR/saved_model (and OUTDIR/model.pb with --pb).")
    convert.add_argument("model", help="the .tflite file")
    convert.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory")
    convert.add_argument("--saved-model", action=argparse.BooleanOptionalAction, default=True,
                         help="write OUTDIR/saved_model (default: yes)")
    convert.add_argument("--pb", action="store_true", help="also write OUTDIR/model.pb and its sidecar model.json")
    convert.add_argument("--verify", action="store_true", help="verify what was written against the reference interpreter")
    convert.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    convert.add_argument("--strict", action="store_true", help="fail on op versions above those the tests cover")
    convert.add_argument("--quantized", choices=["fake_quant", "dequantize"], default="fake_quant",
                         help="integer models: keep every activation's grid as FakeQuant ops (default) or plain float")
    convert.add_argument("--input-shape", action="append", default=[], metavar="NAME:D0,D1,...",
                         help="fix or change an input's shape, e.g. image:1,256,256,3 (? or -1 for a dynamic dimension)")
    convert.add_argument("--outputs", nargs="+", metavar="TENSOR",
                         help="cut the model: these tensors become the outputs (drop post-processing)")
    convert.add_argument("--inputs", nargs="+", metavar="TENSOR", help="cut the model: start at these tensors")
    convert.add_argument("--passthrough", nargs="*", metavar="CUSTOM_CODE",
                         help="keep custom ops with no builder (all, or those named) as opaque nodes for re-conversion "
                              "with allow_custom_ops; the SavedModel cannot run them")
    convert.add_argument("--io", choices=["native", "float"], default="native",
                         help="quantized inputs/outputs: as the original (uint8 in, uint8 out; default) or real-valued float")
    _add_verify_options(convert)

    verify = commands.add_parser("verify", help="compare a .tflite with a SavedModel, frozen .pb or another .tflite",
                                 description="Run MODEL in LiteRT and CANDIDATE on the same seeded inputs; exit 1 above tolerance.")
    verify.add_argument("model", help="the original .tflite file")
    verify.add_argument("candidate", help="SavedModel directory, frozen .pb (with its .json sidecar) or .tflite")
    verify.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    verify.add_argument("--per-tensor", action="store_true",
                        help="also compare every intermediate tensor and name the first operator that diverges")
    _add_verify_options(verify)

    inspect = commands.add_parser("inspect", help="summarise a .tflite: inputs, outputs, quantization, ops",
                                  description="Print a summary of MODEL (no TensorFlow needed).")
    inspect.add_argument("model", help="the .tflite file")
    inspect.add_argument("--check", action="store_true", help="also report ops no builder supports (exit 2 if any)")

    sample = commands.add_parser("sample", help="write the small sample model used in the README",
                                 description="Write a small float CNN made with the TFLite converter to PATH.")
    sample.add_argument("path", nargs="?", default="sample.tflite")
    sample.add_argument("--overwrite", action="store_true")

    requantize = commands.add_parser(
        "requantize", help="re-quantize a .tflite or SavedModel (float16, dynamic_range, int8, uint8, int16x8)",
        description="Write a re-quantized .tflite from SOURCE (a .tflite, inverted first, or a SavedModel) and report "
                    "its size, ops, ops left in float and its error against the original.")
    requantize.add_argument("source", help=".tflite file or SavedModel directory")
    requantize.add_argument("-o", "--output", required=True, help="the .tflite to write")
    requantize.add_argument("--mode", choices=["float16", "dynamic_range", "int8", "uint8", "int16x8", "uint8_throughout"],
                            default="int8", help="uint8_throughout: uint8 activations everywhere, for NPUs that take only "
                                                 "uint8 (from a quantized .tflite, through the TF1 converter)")
    requantize.add_argument("--data", metavar="PATH",
                            help="calibration data: a folder of images, a .npy ([N, ...]) or a .npz (arrays by input name)")
    requantize.add_argument("--mean", type=float, nargs="+", default=[0.0], help="image normalisation: (pixel - mean) / std")
    requantize.add_argument("--std", type=float, nargs="+", default=[1.0])
    requantize.add_argument("--limit", type=int, help="use at most this many calibration samples")
    requantize.add_argument("--io-dtype", choices=["float", "int8", "uint8", "int16"], help="input/output type (default by mode)")
    requantize.add_argument("--per-tensor", action="store_true",
                            help="one scale per weight tensor (no per-channel); a .tflite source is then equalized "
                                 "across layers and bias-corrected first, which needs --data")
    requantize.add_argument("--no-equalize", action="store_true",
                            help="skip cross-layer equalization and bias correction (done by default with --per-tensor, "
                                 "and for uint8_throughout of a per-channel model given --data)")
    requantize.add_argument("--keep-float-op", action="append", default=[], metavar="OPCODE",
                            help="leave every op of this type in float (repeatable)")
    requantize.add_argument("--keep-float-node", action="append", default=[], metavar="TENSOR",
                            help="leave the op producing this tensor in float (repeatable)")
    requantize.add_argument("--quantized", choices=["fake_quant", "dequantize"], default="fake_quant",
                            help="how a quantized .tflite source is inverted first (fake_quant: its own grids, no data needed)")
    requantize.add_argument("--overwrite", action="store_true")

    compare = commands.add_parser("compare", help="compare two .tflite models on the same inputs",
                                  description="Run A and B on the same real-valued inputs; per output, the error in "
                                              "real units and quantization steps, and top-1 agreement.")
    compare.add_argument("a", help="the reference .tflite")
    compare.add_argument("b", help="the .tflite to compare with it")
    compare.add_argument("--data", metavar="PATH", help="inputs: image folder, .npy or .npz (default: random)")
    compare.add_argument("--mean", type=float, nargs="+", default=[0.0])
    compare.add_argument("--std", type=float, nargs="+", default=[1.0])
    compare.add_argument("--draws", type=int, default=3, help="random inputs when --data is not given")
    compare.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    compare.add_argument("--per-tensor", action="store_true",
                         help="also compare the intermediate tensors both models share by name, largest error first")

    commands.add_parser("ops", help="list the supported TFLite opcodes", description="List every registered builder.")
    for command in commands.choices.values():
        command.add_argument("-v", "--verbose", action="store_true",
                             help="progress lines on stderr even when it is not a terminal; tracebacks of internal errors")
    return parser


def _verify_kwargs(args: argparse.Namespace) -> dict:
    return dict(draws=args.draws, seed=args.seed, rtol=args.rtol, float_range=tuple(args.float_range),
                signature=args.signature)


def parse_input_shapes(values: list[str]) -> dict[str, list[int | None]]:
    shapes = {}
    for value in values:
        name, sep, dims = value.rpartition(":")
        if not sep or not name:
            raise TfliteInverterError(f"--input-shape {value!r}: expected NAME:D0,D1,... such as image:1,224,224,3")
        try:
            shapes[name] = [None if d.strip() in ("?", "-1", "") else int(d) for d in dims.split(",")]
        except ValueError:
            raise TfliteInverterError(f"--input-shape {value!r}: dimensions must be integers, ? or -1") from None
    return shapes


def cmd_convert(args: argparse.Namespace) -> int:
    from . import load, verify
    from .inverted import InvertedModel

    if not args.saved_model and not args.pb:
        raise TfliteInverterError("nothing to write: --no-saved-model without --pb")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise TfliteInverterError(f"-o {out}: exists and is not a directory")
    created = [] if out.exists() else [out]  # removed again if the command fails
    saved_model_path, pb_path = out / "saved_model", out / "model.pb"
    targets = ([saved_model_path] if args.saved_model else []) + ([pb_path, pb_path.with_suffix(".json")] if args.pb else [])
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.overwrite:
        raise TfliteInverterError(f"{', '.join(existing)} exist(s); pass --overwrite to replace")
    progress = _Progress()
    with progress.step(f"reading {args.model}"):
        model = load(args.model)
    with progress.step(f"building TensorFlow graph ({sum(len(s.operators) for s in model.subgraphs)} operators)"):
        inverted = InvertedModel(model, strict=args.strict, quantized=args.quantized, io=args.io,
                                 input_shapes=parse_input_shapes(args.input_shape), inputs=args.inputs,
                                 outputs=args.outputs, passthrough=args.passthrough or args.passthrough == [])
    if inverted.passthrough is not None:
        from collections import Counter

        from .passthrough import custom_code, passthrough_ops

        opaque = Counter(custom_code(op) for op in passthrough_ops(model, inverted.passthrough))
        if opaque:
            print("opaque (passthrough): " + ", ".join(f"{code} x{n}" for code, n in sorted(opaque.items())), file=sys.stderr)
        if opaque and args.verify:
            raise TfliteInverterError("--verify cannot run passed-through custom ops: re-convert the pb with "
                                      "allow_custom_ops, then `tflite-inverter verify MODEL AGAIN.tflite` compares the "
                                      "builtin parts (see docs/custom-ops.md)")
    written: list[Path] = []
    try:
        if args.saved_model:
            with progress.step(f"writing {saved_model_path}"):
                written.append(inverted.save_saved_model(saved_model_path, overwrite=args.overwrite))
        if args.pb:
            with progress.step(f"writing {pb_path}"):
                written.append(inverted.save_frozen_pb(pb_path, overwrite=args.overwrite))
                written.append(pb_path.with_suffix(".json"))
    except BaseException:
        for path in written:  # leave nothing half-done behind
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    for path in written:
        print(path)
    status = EXIT_OK
    if args.verify:
        for candidate in [p for p in written if p.suffix != ".json"]:
            with progress.step(f"verifying {candidate}"):
                # A cut model is verified in memory against the same cut of the .tflite.
                report = verify(args.model, inverted if inverted.cut else candidate, **_verify_kwargs(args))
            print(report.table())
            if not report.passed:
                status = EXIT_VERIFY_FAILED
    return status


def cmd_verify(args: argparse.Namespace) -> int:
    from . import verify

    with _Progress().step(f"verifying {args.candidate} against {args.model}"):
        report = verify(args.model, args.candidate, per_tensor=args.per_tensor, **_verify_kwargs(args))
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return EXIT_OK if report.passed else EXIT_VERIFY_FAILED


def cmd_inspect(args: argparse.Namespace) -> int:
    from . import load

    model = load(args.model)
    print(model.summary())
    if args.check:
        from .graph import check_supported
        from .passes.validate import validate

        validate(model)
        check_supported(model)
        print("every operator has a builder")
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    from .sample import write_sample_model

    print(write_sample_model(args.path, overwrite=args.overwrite))
    return EXIT_OK


def _scalar_or_list(values: list[float]) -> float | list[float]:
    return values[0] if len(values) == 1 else values


def cmd_requantize(args: argparse.Namespace) -> int:
    from . import requantize
    from .inverted import invert

    source = args.source
    if Path(args.output).is_dir():
        raise TfliteInverterError(f"-o {args.output}: is a directory; give the .tflite file to write")
    equalize = False if args.no_equalize else None
    # With equalization, requantize inverts the .tflite itself (as a float graph) and equalizes it.
    equalizing = args.per_tensor and equalize is None and args.mode not in ("float16", "uint8_throughout")
    if str(source).endswith(".tflite") and not equalizing:
        with _Progress().step(f"inverting {source}"):
            source = invert(source, quantized=args.quantized, io="float")
    with _Progress().step(f"converting ({args.mode})"):
        report = requantize(
            source, args.output, mode=args.mode, representative=args.data, io_dtype=args.io_dtype,
            per_tensor=args.per_tensor, keep_float_ops=args.keep_float_op, keep_float_nodes=args.keep_float_node,
            mean=_scalar_or_list(args.mean), std=_scalar_or_list(args.std), limit=args.limit,
            reference=args.source if str(args.source).endswith(".tflite") else None, overwrite=args.overwrite,
            equalize=equalize,
        )
    print(report.table())
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from . import compare, load
    from .representative import make_samples

    inputs = None
    if args.data:
        sg = load(args.a).main
        specs = [(sg.tensors[i].name, [None if d < 0 else d for d in sg.tensors[i].shape_signature]) for i in sg.inputs]
        inputs = make_samples(args.data, specs, mean=_scalar_or_list(args.mean), std=_scalar_or_list(args.std))
    with _Progress().step(f"comparing {args.b} with {args.a}"):
        report = compare(args.a, args.b, inputs=inputs, draws=args.draws, per_tensor=args.per_tensor)
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return EXIT_OK


def cmd_ops(args: argparse.Namespace) -> int:
    from . import supported_ops

    for spec in supported_ops():
        print(f"{spec.opcode:40} v{spec.max_version}")
    return EXIT_OK


COMMANDS = {"convert": cmd_convert, "verify": cmd_verify, "inspect": cmd_inspect, "sample": cmd_sample, "ops": cmd_ops,
            "requantize": cmd_requantize, "compare": cmd_compare}


NEEDS_TENSORFLOW = {"convert", "verify", "sample", "requantize", "compare"}


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    global VERBOSE
    args = build_parser().parse_args(argv)
    VERBOSE = args.verbose
    # The library's warnings (an op version above the tested one) as one line each, without source lines.
    warnings.formatwarning = lambda message, category, *rest, **kw: f"tflite-inverter: warning: {message}\n"
    if args.command in NEEDS_TENSORFLOW or getattr(args, "check", False) or args.command == "ops":
        _quiet_tensorflow()
    try:
        return COMMANDS[args.command](args)
    except TfliteInverterError as exc:
        print(f"tflite-inverter {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line (the traceback with -v)
        if args.verbose:
            raise
        print(f"tflite-inverter {args.command}: internal error (a bug; -v shows the traceback): "
              f"{type(exc).__name__}: {_one_line(str(exc))[:500]}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tflite-inverter: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

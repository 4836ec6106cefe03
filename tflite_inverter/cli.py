"""The ``tflite-inverter`` command: a thin layer over the Python API.

Errors the user can act on print as one line and exit 2; a failed verification exits 1. Progress
lines go to stderr when it is a terminal, or with ``-v``; TensorFlow's and absl's warnings are silenced.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

from .errors import TfliteInverterError

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_ERROR = 0, 1, 2
# Progress lines on stderr: when it is a terminal, or with -v (set by main).


def _quiet_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter (C++ log lines on fd 2) hidden unless ``-v``.

    Only the import is silenced; a failing import still raises with its Python message.
    """
    from .logs import import_tensorflow

    import_tensorflow()


class _Progress:
    """One line per step on stderr, with its duration (none with ``-q``)."""

    def __init__(self, enabled: bool | None = None):
        from .logs import verbosity

        # Progress lines on a terminal, or with -v; never in a pipe unless asked; none with -q.
        level = verbosity()
        self.enabled = (level > 0 or (level >= 0 and sys.stderr.isatty())) if enabled is None else enabled

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


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (no usage dump), exit 2, as every CLI error is."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_FORMATTER = argparse.RawDescriptionHelpFormatter


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _add_common_options(parser: argparse.ArgumentParser, top_level: bool = False) -> None:
    """-q / -v, before or after the command name."""
    default = 0 if top_level else argparse.SUPPRESS
    parser.add_argument("-q", "--quiet", action="count", default=default,
                        help="print only results and errors (no progress lines or bars)")
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="show TensorFlow's and the converter's log lines (-vv: also their INFO lines)")


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    """The inputs to run on, for verify, convert --verify and compare: real data or seeded random draws."""
    parser.add_argument("--data", metavar="PATH",
                        help="inputs to run on instead of random ones: a folder of images, a .npy ([N, ...]) or "
                             "a .npz (arrays by input name)")
    parser.add_argument("--mean", type=float, nargs="+", default=[0.0],
                        help="with an image folder: normalise as (pixel - mean) / std, one value or one per channel (default 0)")
    parser.add_argument("--std", type=float, nargs="+", default=[1.0],
                        help="with an image folder: the std of (pixel - mean) / std (default 1)")
    parser.add_argument("--limit", type=int, metavar="N", help="use at most N samples of --data")
    parser.add_argument("--draws", type=int, default=3, help="random input draws to compare without --data (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")


def _add_verify_options(parser: argparse.ArgumentParser) -> None:
    _add_input_options(parser)
    parser.add_argument("--rtol", type=float, default=1e-4,
                        help="relative tolerance: max abs error <= max(rtol*max(1,|ref|), 2*noise floor) (default 1e-4)")
    parser.add_argument("--float-range", type=float, nargs=2, default=(-1.0, 1.0), metavar=("LOW", "HIGH"),
                        help="range of random float inputs (default -1 1)")
    parser.add_argument("--signature", help="signature key to verify (default: serving_default or the first)")


def _add_report_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", metavar="FILE.html",
                        help="also write a self-contained HTML page: summary, tables and (with matplotlib, "
                             "the [plot] extra) per-tensor plots")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="tflite-inverter", formatter_class=_FORMATTER,
        description="Turn a .tflite model back into TensorFlow (SavedModel, frozen .pb) and check it against LiteRT.",
        epilog=_examples(
            "tflite-inverter inspect model.tflite --tensors",
            "tflite-inverter convert model.tflite -o out --pb --verify",
            "tflite-inverter verify model.tflite out/saved_model --data images/ --mean 127.5 --std 127.5",
            "tflite-inverter requantize model.tflite -o model_int8.tflite --mode int8 --data images/",
            "tflite-inverter requantize model_int8.tflite -o model_u8.tflite --mode uint8_throughout",
            "tflite-inverter compare model.tflite model_int8.tflite --data images/"),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_common_options(parser, top_level=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help: str, description: str, examples: tuple[str, ...]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=description, formatter_class=_FORMATTER,
                                  epilog=_examples(*examples))
        _add_common_options(sub)
        return sub

    convert = command("convert", "invert a .tflite into a SavedModel and/or a frozen .pb",
                      "Invert MODEL into OUTDIR/saved_model (and OUTDIR/model.pb with --pb).",
                      ("tflite-inverter convert model.tflite -o out",
                       "tflite-inverter convert model.tflite -o out --pb --verify --overwrite",
                       "tflite-inverter convert palm.tflite -o out --input-shape input_1:?,192,192,3",
                       "tflite-inverter convert model.tflite -o out --outputs raw_boxes raw_scores"))
    convert.add_argument("model", help="the .tflite file")
    convert.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory (made if missing)")
    convert.add_argument("--saved-model", action=argparse.BooleanOptionalAction, default=True,
                         help="write OUTDIR/saved_model (default: yes)")
    convert.add_argument("--pb", action="store_true", help="also write OUTDIR/model.pb and its sidecar model.json")
    convert.add_argument("--verify", action="store_true", help="verify what was written against the reference interpreter")
    convert.add_argument("--overwrite", action="store_true", help="replace existing outputs in OUTDIR")
    _add_report_option(convert)
    convert.add_argument("--strict", action="store_true",
                         help="fail on op versions above those the tests cover, and on shape changes the graph cannot follow")
    convert.add_argument("--quantized", choices=["fake_quant", "dequantize"], default="fake_quant",
                         help="integer models: keep every activation's grid as FakeQuant ops (default) or plain float")
    convert.add_argument("--input-shape", action="append", default=[], metavar="NAME:D0,D1,...",
                         help="fix or change an input's shape, e.g. image:1,256,256,3 (? or -1 for a dynamic dimension)")
    convert.add_argument("--outputs", nargs="+", metavar="TENSOR",
                         help="cut the model: these tensors become the outputs (drop post-processing); "
                              "`inspect --tensors` lists the names")
    convert.add_argument("--inputs", nargs="+", metavar="TENSOR", help="cut the model: start at these tensors")
    convert.add_argument("--passthrough", nargs="*", metavar="CUSTOM_CODE",
                         help="keep custom ops with no builder (all, or those named) as opaque nodes for re-conversion "
                              "with allow_custom_ops; the SavedModel cannot run them")
    convert.add_argument("--io", choices=["native", "float"], default="native",
                         help="quantized inputs/outputs: as the original (uint8 in, uint8 out; default) or real-valued float")
    convert.add_argument("--stateless", action="store_true",
                         help="variable tensors (LSTM/RNN/SVDF states) start from their initial value on every call "
                              "(default: they persist across calls, as in LiteRT); --verify then compares independent calls only")
    _add_verify_options(convert)

    verify = command("verify", "compare a .tflite with a SavedModel, frozen .pb or another .tflite",
                     "Run MODEL in LiteRT and CANDIDATE on the same inputs (seeded random ones, or --data); "
                     "exit 1 above tolerance.",
                     ("tflite-inverter verify model.tflite out/saved_model",
                      "tflite-inverter verify model.tflite out/model.pb --per-tensor",
                      "tflite-inverter verify model.tflite out/saved_model --data images/ --mean 127.5 --std 127.5"))
    verify.add_argument("model", help="the original .tflite file")
    verify.add_argument("candidate", help="SavedModel directory, frozen .pb (with its .json sidecar) or .tflite")
    verify.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    _add_report_option(verify)
    verify.add_argument("--per-tensor", action="store_true",
                        help="also compare every intermediate tensor and name the first operator that diverges")
    _add_verify_options(verify)

    inspect = command("inspect", "summarise a .tflite: inputs, outputs, quantization, ops, tensors",
                      "Print a summary of MODEL (no TensorFlow needed).",
                      ("tflite-inverter inspect model.tflite", "tflite-inverter inspect model.tflite --tensors",
                       "tflite-inverter inspect model.tflite --check"))
    inspect.add_argument("model", help="the .tflite file")
    inspect.add_argument("--check", action="store_true", help="also report ops no builder supports (exit 2 if any)")
    inspect.add_argument("--tensors", action="store_true",
                         help="list every tensor: name, shape, dtype, quantization, producing operator")

    sample = command("sample", "write the small sample model used in the README",
                     "Write a small float CNN made with the TFLite converter to PATH.",
                     ("tflite-inverter sample", "tflite-inverter sample /tmp/sample.tflite --overwrite"))
    sample.add_argument("path", nargs="?", default="sample.tflite", help="where to write it (default sample.tflite)")
    sample.add_argument("--overwrite", action="store_true", help="replace PATH if it exists")

    requantize = command(
        "requantize", "re-quantize a .tflite or SavedModel (float16, dynamic_range, int8, uint8, int16x8, uint8_throughout)",
        "Write a re-quantized .tflite from SOURCE (a .tflite, inverted first, or a SavedModel) and report "
        "its size, ops, ops left in float and its error against the original.",
        ("tflite-inverter requantize model_int8.tflite -o again.tflite --mode uint8",
         "tflite-inverter requantize model.tflite -o int8.tflite --mode int8 --data images/ --mean 127.5 --std 127.5",
         "tflite-inverter requantize model_int8.tflite -o u8.tflite --mode uint8_throughout --data images/"))
    requantize.add_argument("source", help=".tflite file or SavedModel directory")
    requantize.add_argument("-o", "--output", required=True, metavar="FILE", help="the .tflite to write")
    requantize.add_argument("--mode", choices=["float16", "dynamic_range", "int8", "uint8", "int16x8", "uint8_throughout",
                                               "weight_only_int8", "weight_only_int4", "dynamic_int4", "dynamic_int4_block32"],
                            default="int8", help="the quantization (default int8); uint8_throughout: uint8 activations "
                                                 "everywhere, for NPUs that take only uint8 (through the TF1 converter: "
                                                 "from a quantized .tflite, or from a float one with --data; --mean/--std "
                                                 "are then the input's quantized_input_stats)")
    requantize.add_argument("--data", metavar="PATH",
                            help="calibration data: a folder of images, a .npy ([N, ...]) or a .npz (arrays by input name)")
    requantize.add_argument("--mean", type=float, nargs="+", default=[0.0],
                            help="image normalisation: (pixel - mean) / std, one value or one per channel (default 0)")
    requantize.add_argument("--std", type=float, nargs="+", default=[1.0],
                            help="the std of the image normalisation (default 1)")
    requantize.add_argument("--limit", type=int, metavar="N", help="use at most N calibration samples")
    requantize.add_argument("--default-ranges", type=float, nargs=2, metavar=("MIN", "MAX"),
                            help="uint8_throughout: the range of tensors that get none (default_ranges_stats)")
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
    requantize.add_argument("--backend", choices=["auto", "aeq", "tflite"], default="auto",
                            help="aeq: ai-edge-quantizer on this project's calibration; tflite: the TFLite converter; "
                                 "auto (default): aeq where it has the mode's recipe and quantizes every op of a float "
                                 "model, else tflite (docs/quantization.md)")
    requantize.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    _add_report_option(requantize)

    compare = command("compare", "compare two .tflite models on the same inputs",
                      "Run A and B on the same real-valued inputs; per output, the error in real units and "
                      "quantization steps, and top-1 agreement (meaningful with --data only).",
                      ("tflite-inverter compare float.tflite int8.tflite --data images/ --mean 127.5 --std 127.5",
                       "tflite-inverter compare float.tflite int8.tflite --per-tensor --json report.json"))
    compare.add_argument("a", help="the reference .tflite")
    compare.add_argument("b", help="the .tflite to compare with it")
    _add_input_options(compare)
    compare.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    _add_report_option(compare)
    compare.add_argument("--per-tensor", action="store_true",
                         help="also compare the intermediate tensors both models share by name, largest error first")

    command("ops", "list the supported TFLite opcodes", "List every registered builder.", ("tflite-inverter ops",))
    _add_batch_parser(command)
    return parser


def _add_batch_parser(command) -> None:
    batch = command(
        "batch", "convert (verify, re-quantize) many models, each in its own worker process",
        "Convert every model (files, directories, globs, .txt lists) into OUT/<model name>/, each in a "
        "worker process with a time and memory limit; OUT/ledger.jsonl makes re-runs skip finished models; "
        "OUT/report.md and OUT/report.html summarise. Exit 1 if any model is not ok.",
        ("tflite-inverter batch models/ -o zoo --verify",
         "tflite-inverter batch 'models/*.tflite' -o zoo --jobs 2 --requantize int8 --data images/",
         "tflite-inverter batch list.txt -o zoo --retry-failed --ray"))
    batch.add_argument("models", nargs="+", metavar="GLOB|DIR|LIST.txt", help="models: files, directories, globs or lists")
    batch.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory (ledger, reports, one folder per model)")
    batch.add_argument("--jobs", type=int, help="models at a time (default: the CPUs available)")
    batch.add_argument("--verify", action="store_true", help="verify what was written against LiteRT")
    batch.add_argument("--draws", type=int, default=3, help="random input draws per verification (default 3)")
    batch.add_argument("--pb", action="store_true", help="also write OUT/<model>/model.pb")
    batch.add_argument("--requantize", metavar="MODE", help="also write OUT/<model>/model_MODE.tflite "
                       "(float16, dynamic_range, int8, uint8, int16x8, uint8_throughout)")
    batch.add_argument("--data", metavar="PATH", help="calibration data for --requantize, read by each task")
    batch.add_argument("--mean", type=float, nargs="+", default=[0.0], help="image normalisation: (pixel - mean) / std")
    batch.add_argument("--std", type=float, nargs="+", default=[1.0], help="image normalisation divisor (default 1)")
    batch.add_argument("--timeout", type=float, default=900, help="seconds per model (default 900)")
    batch.add_argument("--memory", default="6G", help="resident memory per model's worker, e.g. 4G (default 6G)")
    batch.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                       help="run the tasks on Ray: a local Ray with --jobs CPUs, or the cluster at ADDRESS "
                            "(write --ray=ADDRESS, or put --ray after the models, so a model is not taken for it)")
    batch.add_argument("--ship-bytes", action="store_true", help="with --ray: send model bytes with each task (no shared storage)")
    batch.add_argument("--reuse", type=int, default=1, metavar="N",
                       help="models one worker process serves in turn (default 1: a fresh process per model; "
                            "more saves the TensorFlow import per model)")
    batch.add_argument("--retry-failed", action="store_true", help="re-run models whose ledger row is not ok")


def _verify_kwargs(args: argparse.Namespace, model=None) -> dict:
    kwargs = dict(draws=args.draws, seed=args.seed, rtol=args.rtol, float_range=tuple(args.float_range),
                  signature=args.signature)
    if getattr(args, "data", None) is not None and model is not None:
        kwargs["inputs"] = _verify_inputs(args, model)
    return kwargs


def _verify_inputs(args: argparse.Namespace, model) -> list[list]:
    """--data as verification draws: real values (normalised images or arrays) in the signature's
    input order, each in the model's own input type (quantized to its grid if integer)."""
    from .build.signatures import model_signatures
    from .check.runner import to_model_input
    from .quant.representative import make_samples

    infos = {info.key: info for info in model_signatures(model)}
    key = args.signature or ("serving_default" if "serving_default" in infos else next(iter(infos)))
    info = infos[key]
    sg = model.subgraphs[info.subgraph_index]
    tensors = [sg.tensors[i] for i in info.input_tensors]
    specs = [(name, [None if d < 0 else d for d in t.shape_signature]) for name, t in zip(info.input_names, tensors)]
    samples = make_samples(args.data, specs, mean=_scalar_or_list(args.mean), std=_scalar_or_list(args.std),
                           limit=args.limit)
    if not samples:
        raise TfliteInverterError(f"--data {args.data}: no samples found")
    return [[to_model_input(v, t) for v, t in zip(sample, tensors)] for sample in samples]


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


# -- checks made before TensorFlow is imported: paths, names, output locations --------------------
# Each raises a TfliteInverterError in the CLI's own terms (flag names); main() prints it as one line.

def _input_file(path: str, label: str) -> Path:
    file = Path(path)
    if not file.exists():
        raise TfliteInverterError(f"{label} {path}: no such file")
    if file.is_dir():
        raise TfliteInverterError(f"{label} {path}: is a directory, not a .tflite file")
    return file


def _input_model(path: str, label: str = "MODEL"):
    """The model read with the reader (no TensorFlow): a file that is not a .tflite fails here."""
    from .reader import load

    _input_file(path, label)
    return load(path)


def _data_source(args: argparse.Namespace) -> None:
    data = getattr(args, "data", None)
    if data is not None:
        path = Path(data)
        if not path.exists():
            raise TfliteInverterError(f"--data {data}: no such file or folder")
        if path.is_file() and path.suffix not in (".npy", ".npz"):
            raise TfliteInverterError(f"--data {data}: give a folder of images, a .npy or a .npz file")
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise TfliteInverterError(f"--limit {args.limit}: must be at least 1")
    if getattr(args, "draws", 1) < 1:
        raise TfliteInverterError(f"--draws {args.draws}: must be at least 1")
    if getattr(args, "rtol", 0.0) < 0:
        raise TfliteInverterError(f"--rtol {args.rtol}: must not be negative")
    for flag in ("mean", "std"):
        values = getattr(args, flag, None) or []
        if flag == "std" and any(v == 0 for v in values):
            raise TfliteInverterError("--std 0: the std must not be zero")


def _report_location(args: argparse.Namespace) -> None:
    report = getattr(args, "report", None)
    if report is None:
        return
    if Path(report).suffix.lower() not in (".html", ".htm"):
        raise TfliteInverterError(f"--report {report}: the page is HTML; name it NAME.html")
    if getattr(args, "command", None) == "convert" and not args.verify:
        raise TfliteInverterError("--report shows the verification: add --verify")
    _output_file(report, "--report", None)


def _write_report(args: argparse.Namespace, title: str, reports: list) -> None:
    if getattr(args, "report", None) and reports:
        from .display import write_report_page

        print(write_report_page(args.report, title, reports), file=sys.stderr)


def _writable_location(path: Path, flag: str) -> None:
    """``path``'s nearest existing ancestor is a writable directory."""
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise TfliteInverterError(f"{flag} {path}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK):
        raise TfliteInverterError(f"{flag} {path}: {ancestor} is not writable")


def _output_file(path: str | None, flag: str, overwrite: bool | None) -> None:
    """An output file: not a directory; existing only with --overwrite (``overwrite=None``: replaced anyway)."""
    if path is None:
        return
    file = Path(path)
    if file.is_dir():
        raise TfliteInverterError(f"{flag} {path}: is a directory; give a file name")
    if file.exists() and overwrite is False:
        raise TfliteInverterError(f"{flag} {path}: exists; pass --overwrite to replace it")
    _writable_location(file, flag)


def _input_shapes_for(model, values: list[str]) -> dict[str, list[int | None]]:
    """--input-shape values parsed and matched to the model's inputs, before TensorFlow is imported."""
    from .build.signatures import model_signatures
    from .display import did_you_mean
    from .names import python_identifier

    shapes = parse_input_shapes(values)
    known: dict[str, tuple[str, int]] = {}
    for info in model_signatures(model):
        sg = model.subgraphs[info.subgraph_index]
        for name, index in zip(info.input_names, info.input_tensors):
            tensor = sg.tensors[index]
            for alias in (name, python_identifier(name), tensor.name):
                known.setdefault(alias, (name, len(tensor.shape_signature) if tensor.has_rank else -1))
    for name, shape in shapes.items():
        if name not in known:
            names = sorted({n for n, _ in known.values()})
            raise TfliteInverterError(f"--input-shape {name}:...: the model has no input {name!r}{did_you_mean(name, names)}; "
                                      f"its inputs are {names}")
        input_name, rank = known[name]
        if rank >= 0 and rank != len(shape):
            raise TfliteInverterError(f"--input-shape {name}:{','.join('?' if d is None else str(d) for d in shape)}: "
                                      f"{len(shape)} dimensions given; input {input_name!r} has {rank}")
    return shapes


def check_convert(args: argparse.Namespace):
    """The model read, the cut and the input shapes matched to it, the outputs free: returns the model."""
    model = _input_model(args.model)
    if not args.saved_model and not args.pb:
        raise TfliteInverterError("nothing to write: --no-saved-model without --pb")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise TfliteInverterError(f"-o/--output {out}: is a file; give a directory (it is made if missing)")
    _writable_location(out / "x", "-o/--output")
    saved_model_path, pb_path = out / "saved_model", out / "model.pb"
    targets = ([saved_model_path] if args.saved_model else []) + ([pb_path, pb_path.with_suffix(".json")] if args.pb else [])
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.overwrite:
        raise TfliteInverterError(f"{', '.join(existing)} exist(s); pass --overwrite to replace")
    args.input_shapes = _input_shapes_for(model, args.input_shape)
    if args.inputs or args.outputs:
        from .passes.cut import plan_cut

        plan_cut(model, args.inputs, args.outputs)
    _data_source(args)
    _report_location(args)
    return model


def check_verify(args: argparse.Namespace):
    from .build.signatures import model_signatures
    from .display import did_you_mean

    model = _input_model(args.model)
    candidate = Path(args.candidate)
    if not candidate.exists():
        raise TfliteInverterError(f"CANDIDATE {candidate}: no such file or directory")
    if candidate.is_dir():
        if not (candidate / "saved_model.pb").exists():
            raise TfliteInverterError(f"CANDIDATE {candidate}: a directory without saved_model.pb, so not a SavedModel")
    elif candidate.suffix == ".pb":
        if not candidate.with_suffix(".json").exists():
            raise TfliteInverterError(f"CANDIDATE {candidate}: its sidecar {candidate.with_suffix('.json').name} "
                                      "(input and output node names, written by convert --pb) is missing")
    elif candidate.suffix == ".tflite":
        _input_model(str(candidate), "CANDIDATE")
    else:
        raise TfliteInverterError(f"CANDIDATE {candidate}: not a SavedModel directory, a .pb or a .tflite file")
    if args.signature is not None:
        keys = [info.key for info in model_signatures(model)]
        if args.signature not in keys:
            raise TfliteInverterError(f"--signature {args.signature}: the model has no such signature"
                                      f"{did_you_mean(args.signature, keys)}; it has {keys}")
    _output_file(args.json, "--json", None)
    _data_source(args)
    _report_location(args)
    return model


def check_inspect(args: argparse.Namespace):
    return _input_model(args.model)


def check_sample(args: argparse.Namespace) -> None:
    _output_file(args.path, "PATH", args.overwrite)


def check_requantize(args: argparse.Namespace) -> None:
    source = Path(args.source)
    if not source.exists():
        raise TfliteInverterError(f"SOURCE {source}: no such file or directory")
    model = None
    if source.is_dir():
        if not (source / "saved_model.pb").exists():
            raise TfliteInverterError(f"SOURCE {source}: a directory without saved_model.pb, so not a SavedModel")
    else:
        model = _input_model(str(source), "SOURCE")
    _output_file(args.output, "-o/--output", args.overwrite)
    if Path(args.output).suffix != ".tflite":
        raise TfliteInverterError(f"-o/--output {args.output}: the output is a .tflite file; name it NAME.tflite")
    _data_source(args)
    _report_location(args)
    if (args.keep_float_op or args.keep_float_node) and args.data is None:
        raise TfliteInverterError("--keep-float-op / --keep-float-node need calibration data: give --data")
    with_aeq = ("dynamic_range", "int8", "int16x8", "weight_only_int8", "weight_only_int4", "dynamic_int4",
                "dynamic_int4_block32")
    if args.backend == "aeq" and args.mode not in with_aeq:
        raise TfliteInverterError(f"--backend aeq: ai-edge-quantizer has no {args.mode} recipe; use --backend tflite or auto")
    if args.backend == "tflite" and args.mode.startswith(("weight_only_", "dynamic_int4")):
        raise TfliteInverterError(f"--backend tflite: the TFLite converter has no {args.mode} recipe; use --backend aeq or auto")
    if model is not None and args.keep_float_node:
        from .display import did_you_mean

        names = [t.name for t in model.main.tensors]
        for name in args.keep_float_node:
            if name not in names:
                raise TfliteInverterError(f"--keep-float-node {name}: no such tensor{did_you_mean(name, names)}; "
                                          "`tflite-inverter inspect SOURCE --tensors` lists them")
    if model is not None and args.keep_float_op:
        opcodes = sorted(model.op_histogram())
        for opcode in args.keep_float_op:
            if opcode not in opcodes:
                from .display import did_you_mean

                raise TfliteInverterError(f"--keep-float-op {opcode}: the model has no {opcode} operator"
                                          f"{did_you_mean(opcode, opcodes)}; it has {opcodes}")


def check_compare(args: argparse.Namespace) -> None:
    _input_model(args.a, "A")
    _input_model(args.b, "B")
    _output_file(args.json, "--json", None)
    _data_source(args)
    _report_location(args)


CHECKS = {"convert": check_convert, "verify": check_verify, "inspect": check_inspect, "sample": check_sample,
          "requantize": check_requantize, "compare": check_compare}

# Library messages in Python terms, said as the CLI's flags.
_CLI_TERMS = [
    (re.compile(r"\binput_shapes\b"), "--input-shape"),
    (re.compile(r"\brepresentative data\b|\brepresentative=|\brepresentative\b"), "--data"),
    (re.compile(r"quantized='(\w+)'"), r"--quantized \1"),
    (re.compile(r"\bio='(\w+)'"), r"--io \1"),
    (re.compile(r"\bper_tensor(=True)?\b"), "--per-tensor"),
    (re.compile(r"\bequalize=False\b"), "--no-equalize"),
    (re.compile(r"\bkeep_float_ops\b"), "--keep-float-op"),
    (re.compile(r"\bkeep_float_nodes\b"), "--keep-float-node"),
    (re.compile(r"\bio_dtype\b"), "--io-dtype"),
    (re.compile(r"\boutputs=\s?"), "--outputs "),
    (re.compile(r"\binputs=\s?"), "--inputs "),
    (re.compile(r"\bmodel\.tensors\(\)"), "`tflite-inverter inspect MODEL --tensors`"),
    (re.compile(r"\boverwrite=True\b"), "--overwrite"),
]


def in_cli_terms(message: str) -> str:
    for pattern, replacement in _CLI_TERMS:
        message = pattern.sub(replacement, message)
    return message


def _speaking_cli_terms(command):
    """A command whose library errors speak of flags, not of Python keyword arguments."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except TfliteInverterError as error:
            error.args = (in_cli_terms(str(error)),)
            raise

    run.__name__ = command.__name__
    return run


def _prepare(args: argparse.Namespace):
    """Verbosity set, arguments checked; then TensorFlow imported if the command needs it."""
    from .logs import set_verbosity

    quiet, verbose = getattr(args, "quiet", 0) or 0, getattr(args, "verbose", 0) or 0
    set_verbosity(-1 if quiet and not verbose else min(2, verbose))
    checked = CHECKS[args.command](args) if args.command in CHECKS else None
    if args.command in NEEDS_TENSORFLOW or getattr(args, "check", False) or args.command == "ops":
        _quiet_tensorflow()
    return checked


def cmd_convert(args: argparse.Namespace) -> int:
    model = _prepare(args)
    from . import verify
    from .build.inverted import InvertedModel

    out = Path(args.output)
    created = [] if out.exists() else [out]  # removed again if the command fails
    saved_model_path, pb_path = out / "saved_model", out / "model.pb"
    progress = _Progress()
    with progress.step(f"building TensorFlow graph ({sum(len(s.operators) for s in model.subgraphs)} operators)"):
        inverted = InvertedModel(model, strict=args.strict, quantized=args.quantized, io=args.io,
                                 input_shapes=args.input_shapes, inputs=args.inputs,
                                 outputs=args.outputs, passthrough=args.passthrough or args.passthrough == [],
                                 stateless=args.stateless)
    for note in inverted.notes:
        print(note, file=sys.stderr)
    if inverted.passthrough is not None:
        from collections import Counter

        from .build.passthrough import passthrough_ops

        opaque = Counter(op.custom_code for op in passthrough_ops(model, inverted.passthrough))
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
    reports = []
    if args.verify:
        for candidate in [p for p in written if p.suffix != ".json"]:
            with progress.step(f"verifying {candidate}"):
                # A cut model is verified in memory against the same cut of the .tflite.
                # Where LiteRT cannot run the model, the file is compared with this in-memory inversion.
                report = verify(args.model, inverted if inverted.cut else candidate, inversion=inverted,
                                sequence=False if args.stateless else None, **_verify_kwargs(args, model))
            print(report.table())
            reports.append(report)
            if not report.passed:
                status = EXIT_VERIFY_FAILED
    _write_report(args, f"tflite-inverter convert {args.model}", reports)
    return status


def cmd_verify(args: argparse.Namespace) -> int:
    model = _prepare(args)
    from . import verify

    with _Progress().step(f"verifying {args.candidate} against {args.model}"):
        report = verify(args.model, args.candidate, per_tensor=args.per_tensor, **_verify_kwargs(args, model))
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    _write_report(args, f"tflite-inverter verify {args.model} {args.candidate}", [report])
    return EXIT_OK if report.passed else EXIT_VERIFY_FAILED


def cmd_inspect(args: argparse.Namespace) -> int:
    model = _prepare(args)
    print(model.summary())
    if args.tensors:
        for index in range(len(model.subgraphs)):
            print(model.tensors(index).table())
    if args.check:
        from .build.supported import check_supported
        from .passes.validate import validate

        validate(model)
        check_supported(model)
        print("every operator has a builder")
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    _prepare(args)
    from .sample import write_sample_model

    print(write_sample_model(args.path, overwrite=args.overwrite))
    return EXIT_OK


def _scalar_or_list(values: list[float]) -> float | list[float]:
    return values[0] if len(values) == 1 else values


def cmd_requantize(args: argparse.Namespace) -> int:
    _prepare(args)
    from . import requantize
    from .build.inverted import invert

    source = args.source
    if Path(args.output).is_dir():
        raise TfliteInverterError(f"-o {args.output}: is a directory; give the .tflite file to write")
    equalize = False if args.no_equalize else None
    # With equalization, requantize inverts the .tflite itself (as a float graph) and equalizes it.
    equalizing = args.per_tensor and equalize is None and args.mode not in ("float16", "uint8_throughout")
    # ai-edge-quantizer's modes take the float .tflite itself (quantized ones are inverted inside).
    direct = args.mode.startswith(("weight_only_", "dynamic_int4"))
    if args.backend != "tflite" and args.mode in ("dynamic_range", "int8", "int16x8") and str(source).endswith(".tflite"):
        from .quant.requantize import float_file

        direct = float_file(source) is not None  # a float file: ai-edge-quantizer may take it as it is
    if str(source).endswith(".tflite") and not equalizing and not direct:
        with _Progress().step(f"inverting {source}"):
            source = invert(source, quantized=args.quantized, io="float")
    with _Progress().step(f"converting ({args.mode})"):
        report = requantize(
            source, args.output, mode=args.mode, representative=args.data, io_dtype=args.io_dtype,
            per_tensor=args.per_tensor, keep_float_ops=args.keep_float_op, keep_float_nodes=args.keep_float_node,
            mean=_scalar_or_list(args.mean), std=_scalar_or_list(args.std), limit=args.limit,
            reference=args.source if str(args.source).endswith(".tflite") else None, overwrite=args.overwrite,
            equalize=equalize, default_ranges=tuple(args.default_ranges) if args.default_ranges else None,
            backend=args.backend,
        )
    print(report.table())
    _write_report(args, f"tflite-inverter requantize {args.source} -o {args.output}", [report])
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    _prepare(args)
    from . import compare, load
    from .quant.representative import make_samples

    inputs = None
    if args.data:
        sg = load(args.a).main
        specs = [(sg.tensors[i].name, [None if d < 0 else d for d in sg.tensors[i].shape_signature]) for i in sg.inputs]
        inputs = make_samples(args.data, specs, mean=_scalar_or_list(args.mean), std=_scalar_or_list(args.std),
                              limit=args.limit)
    with _Progress().step(f"comparing {args.b} with {args.a}"):
        report = compare(args.a, args.b, inputs=inputs, draws=args.draws, seed=args.seed, per_tensor=args.per_tensor)
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    _write_report(args, f"tflite-inverter compare {args.a} {args.b}", [report])
    return EXIT_OK


def cmd_ops(args: argparse.Namespace) -> int:
    _prepare(args)
    from . import supported_ops

    for spec in supported_ops():
        print(f"{spec.opcode:40} v{spec.max_version}")
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    _prepare(args)  # verbosity; the batch driver never imports TensorFlow (its workers do)
    from . import batch

    report = batch(args.models, args.output, jobs=args.jobs, backend="local" if args.ray is None else "ray",
                   verify=args.verify, pb=args.pb, requantize=args.requantize, data=args.data,
                   mean=_scalar_or_list(args.mean), std=_scalar_or_list(args.std), draws=args.draws,
                   retry_failed=args.retry_failed, timeout=args.timeout, memory=args.memory,
                   ray_address=args.ray or None, ship_bytes=args.ship_bytes, reuse=args.reuse, verbose=bool(getattr(args, 'verbose', 0)))
    print(report.table())
    return EXIT_OK if report.passed else EXIT_VERIFY_FAILED


COMMANDS = {name: _speaking_cli_terms(command) for name, command in {
    "convert": cmd_convert, "verify": cmd_verify, "inspect": cmd_inspect, "sample": cmd_sample, "ops": cmd_ops,
    "requantize": cmd_requantize, "compare": cmd_compare, "batch": cmd_batch}.items()}


NEEDS_TENSORFLOW = {"convert", "verify", "sample", "requantize", "compare"}


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The library's warnings (an op version above the tested one) as one line each, without source lines.
    warnings.formatwarning = lambda message, category, *rest, **kw: f"tflite-inverter: warning: {message}\n"
    try:  # each command checks its arguments before TensorFlow is imported (_prepare)
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

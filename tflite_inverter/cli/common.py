"""What every subcommand of the CLI shares: progress lines, the one-line parser, the input and
report options, the checks of paths, names and output locations made before TensorFlow is
imported, and library messages said in the CLI's terms (flag names)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from ..errors import TfliteInverterError

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_ERROR = 0, 1, 2


def _quiet_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter (C++ log lines on fd 2) hidden unless ``-v``.

    Only the import is silenced; a failing import still raises with its Python message.
    """
    from ..logs import import_tensorflow

    import_tensorflow(without_keras=True)  # the CLI's own process: Keras is not needed (see logs.py)


class _Progress:
    """One line per step on stderr, with its duration (none with ``-q``)."""

    def __init__(self, enabled: bool | None = None):
        from ..logs import verbosity

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
    parser.add_argument("--mean", type=float, nargs="+",
                        help="with an image folder: normalise as (pixel - mean) / std, one value or one per channel "
                             "(default: the model's TFLite metadata, else 0)")
    parser.add_argument("--std", type=float, nargs="+",
                        help="with an image folder: the std of (pixel - mean) / std (default: the model's TFLite "
                             "metadata, else 1)")
    parser.add_argument("--limit", type=int, metavar="N", help="use at most N samples of --data")
    parser.add_argument("--draws", type=int, default=3, help="random input draws to compare without --data (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")


def _add_verify_options(parser: argparse.ArgumentParser) -> None:
    _add_input_options(parser)
    parser.add_argument("--rtol", type=float, default=1e-4,
                        help="relative tolerance: max abs error <= max(rtol*max(1,|ref|), 2*noise floor) (default 1e-4)")
    parser.add_argument("--float-range", type=float, nargs=2, default=(-1.0, 1.0), metavar=("LOW", "HIGH"),
                        help="range of random float inputs (default -1 1)")
    parser.add_argument("--signature", help="signature key to verify (default: every signature)")


def _add_report_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", metavar="FILE.html",
                        help="also write a self-contained HTML page: summary, tables and (with matplotlib, "
                             "the [plot] extra) per-tensor plots")


def _verify_kwargs(args: argparse.Namespace, model=None) -> dict:
    kwargs = dict(draws=args.draws, seed=args.seed, rtol=args.rtol, float_range=tuple(args.float_range),
                  signature=args.signature)
    if getattr(args, "data", None) is not None and model is not None:
        kwargs["inputs"] = _verify_inputs(args, model)
    return kwargs


def _verify_inputs(args: argparse.Namespace, model) -> list[list]:
    """--data as verification draws: real values (normalised images or arrays) in the signature's
    input order, each in the model's own input type (quantized to its grid if integer)."""
    from ..build.signatures import model_signatures
    from ..check.runner import to_model_input
    from ..quant.representative import make_samples

    infos = {info.key: info for info in model_signatures(model)}
    key = args.signature or ("serving_default" if "serving_default" in infos else next(iter(infos)))
    info = infos[key]
    sg = model.subgraphs[info.subgraph_index]
    tensors = [sg.tensors[i] for i in info.input_tensors]
    specs = [(name, [None if d < 0 else d for d in t.shape_signature]) for name, t in zip(info.input_names, tensors)]
    mean, std = _image_normalization(args, model)
    samples = make_samples(args.data, specs, mean=mean, std=std, limit=args.limit)
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


def _input_file(path: str, label: str) -> Path:
    file = Path(path)
    if not file.exists():
        raise TfliteInverterError(f"{label} {path}: no such file")
    if file.is_dir():
        raise TfliteInverterError(f"{label} {path}: is a directory, not a .tflite file")
    return file


def _input_model(path: str, label: str = "MODEL"):
    """The model read with the reader (no TensorFlow): a file that is not a .tflite fails here."""
    from ..reader import load

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
        from ..display import write_report_page

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
    from ..build.signatures import model_signatures
    from ..display import did_you_mean
    from ..names import python_identifier

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


def _scalar_or_list(values: list[float] | None) -> float | list[float] | None:
    """One value as a scalar, several as a list; None (the option not given) stays None."""
    if values is None:
        return None
    return values[0] if len(values) == 1 else values


def _image_normalization(args: argparse.Namespace, model) -> tuple:
    """--mean/--std for --data, those not given from ``model``'s TFLite metadata (said on stderr)."""
    from ..quant.representative import image_normalization

    mean, std, note = image_normalization(model.tflite_metadata, args.data, _scalar_or_list(args.mean),
                                          _scalar_or_list(args.std))
    if note is not None and not getattr(args, "quiet", 0):
        print(note, file=sys.stderr)
    return mean, std


def _prepare(args: argparse.Namespace, check=None, *, tensorflow: bool = False):
    """Verbosity set, arguments checked by ``check`` (before TensorFlow); then TensorFlow imported
    if the command needs it. Returns what ``check`` returns (the model read, for most commands)."""
    from ..logs import set_verbosity

    quiet, verbose = getattr(args, "quiet", 0) or 0, getattr(args, "verbose", 0) or 0
    set_verbosity(-1 if quiet and not verbose else min(2, verbose))
    checked = check(args) if check is not None else None
    if tensorflow:
        _quiet_tensorflow()
    return checked

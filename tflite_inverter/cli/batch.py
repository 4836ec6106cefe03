"""``tflite-inverter batch``: many models, each in its own worker process."""

from __future__ import annotations

import argparse

from .common import EXIT_OK, EXIT_VERIFY_FAILED, _prepare, _scalar_or_list


def add_parser(command) -> None:
    """The ``batch`` subcommand's options."""
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
    batch.add_argument("--mean", type=float, nargs="+",
                       help="image normalisation: (pixel - mean) / std (default: each model's TFLite metadata, else 0)")
    batch.add_argument("--std", type=float, nargs="+",
                       help="image normalisation divisor (default: each model's TFLite metadata, else 1)")
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


def cmd_batch(args: argparse.Namespace) -> int:
    _prepare(args, None, tensorflow=False)  # verbosity; the batch driver never imports TensorFlow (its workers do)
    from .. import batch

    report = batch(args.models, args.output, jobs=args.jobs, backend="local" if args.ray is None else "ray",
                   verify=args.verify, pb=args.pb, requantize=args.requantize, data=args.data,
                   mean=_scalar_or_list(args.mean), std=_scalar_or_list(args.std), draws=args.draws,
                   retry_failed=args.retry_failed, timeout=args.timeout, memory=args.memory,
                   ray_address=args.ray or None, ship_bytes=args.ship_bytes, reuse=args.reuse, verbose=bool(getattr(args, 'verbose', 0)))
    print(report.table())
    return EXIT_OK if report.passed else EXIT_VERIFY_FAILED

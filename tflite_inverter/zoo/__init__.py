"""Many models at a time: each converted (and verified, and re-quantized) in its own worker process
with a wall-time and a memory limit, recorded in a resumable JSONL ledger, summarised in a report.

``task`` supervises one model's child process (``python -m tflite_inverter.zoo.worker``) and
returns its ledger row; ``backends`` runs tasks on a local pool of supervisor threads or as Ray
tasks; ``ledger`` and ``report`` write ``OUT/ledger.jsonl``, ``OUT/report.md`` and
``OUT/report.html``; ``batch`` is :func:`tflite_inverter.batch`. See docs/batch.md.
"""

"""The batch ledger: ``OUT/ledger.jsonl``, one JSON row per finished task, appended as tasks end.

A row holds the model path, its sha256, the options that shape the result, the status (``ok``,
``failed``, ``error``, ``crashed``, ``timeout``, ``memory``), the cause and one-line message, the
errors per output, the times per phase and the peak memory. A model is identified by
``sha256 + options``: a re-run skips every model whose latest row for that key exists (with
``retry_failed``, only those whose latest row is ``ok``). A row cut short by a killed driver (the
last line, not newline-terminated) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import TfliteInverterError

LEDGER_NAME = "ledger.jsonl"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def task_key(sha256: str, options: Mapping[str, Any]) -> str:
    """What identifies a task's result: the model's bytes and the options that change the work."""
    return sha256 + ":" + json.dumps(dict(options), sort_keys=True, separators=(",", ":"))


class Ledger:
    """Rows of ``OUT/ledger.jsonl``; :meth:`append` is safe from several supervisor threads."""

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir) / LEDGER_NAME
        self._lock = threading.Lock()
        self.rows: list[dict] = list(self._read()) if self.path.exists() else []
        self._latest = {task_key(row["sha256"], row.get("options", {})): row for row in self.rows}

    def _read(self) -> Iterable[dict]:
        text = self.path.read_text()
        lines = text.split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                if number == len(lines):  # the last row, cut short by a killed driver: that task re-runs
                    continue
                raise TfliteInverterError(f"{self.path}:{number}: not a JSON row") from None
            if not isinstance(row, dict) or "sha256" not in row or "status" not in row:
                raise TfliteInverterError(f"{self.path}:{number}: not a ledger row (no sha256 or status)")
            yield row

    def latest(self) -> dict[str, dict]:
        """The latest row of each task key."""
        return dict(self._latest)

    def should_skip(self, key: str, *, retry_failed: bool = False) -> dict | None:
        """The row that makes a task unnecessary, or ``None`` if it must run."""
        row = self._latest.get(key)
        if row is None or (retry_failed and row["status"] != "ok"):
            return None
        return row

    def append(self, row: dict) -> None:
        line = json.dumps(row, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self.rows.append(row)
            self._latest[task_key(row["sha256"], row.get("options", {}))] = row

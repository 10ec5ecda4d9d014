"""Per-iteration metrics to ``metrics.csv`` and TensorBoard, in the run directory."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from learn2adapt.training.run_dir import atomic_write_text


class MetricsLog:
    """Appends one row per iteration; the CSV header grows as new metrics appear.

    Args:
        run_dir: the run directory (``metrics.csv`` and ``tb/`` go there).
        tensorboard: also write TensorBoard event files.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict[str, Any]] = self.read(self.path) if self.path.exists() else []
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(run_dir) / "tb"))

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        with open(path, newline="") as f:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def log(self, row: dict[str, Any], step: int) -> None:
        # A resumed run rewrites rows of iterations it redoes.
        it = row.get("iteration")
        self.rows = [r for r in self.rows if r.get("iteration") != it] + [row]
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=keys)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, text.getvalue())
        if self.writer is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "iteration":
                    self.writer.add_scalar(k, v, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except (TypeError, ValueError):
            pass
    return text

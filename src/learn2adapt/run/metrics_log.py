"""Per-iteration metrics to ``metrics.csv`` and TensorBoard, in the run directory."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from learn2adapt.run.run_dir import atomic_write_text, move_to_discarded


class MetricsLog:
    """Appends one row per iteration; the CSV header grows as new metrics appear.

    The checkpoint keeps every row up to its iteration (``history``), so a resume rebuilds
    ``metrics.csv`` exactly from it: a lost, garbled or doubled file, or the row of an iteration
    that is being redone, cannot survive. When the file did not match, the TensorBoard logs
    (which may then repeat that iteration's scalars) are rebuilt from the same rows, the old ones
    moved to ``discarded/``.

    Args:
        run_dir: the run directory (``metrics.csv`` and ``tb/`` go there).
        tensorboard: also write TensorBoard event files.
        history: the rows the checkpoint holds; None: a checkpoint from before it kept them
            (``metrics.csv`` is then read as it is, and set aside if it cannot be).
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, history: list[dict[str, Any]] | None = None) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.writer = None
        rebuild_tb = False
        if history is None:
            self.rows = self._read_or_set_aside(Path(run_dir))
        else:
            self.rows = [dict(r) for r in history]
            on_disk = self.path.read_bytes() if self.path.exists() else b""
            if on_disk != self._render().encode():
                rebuild_tb = bool(on_disk) or (Path(run_dir) / "tb").exists()
                if self.rows or on_disk:
                    atomic_write_text(self.path, self._render())
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            if rebuild_tb:
                move_to_discarded(Path(run_dir), [Path(run_dir) / "tb"])
            self.writer = SummaryWriter(str(Path(run_dir) / "tb"))
            if rebuild_tb:
                for row in self.rows:
                    self._scalars(row, int(row.get("env_steps", 0)))

    def _read_or_set_aside(self, run_dir: Path) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        try:
            return self.read(self.path)
        except (UnicodeDecodeError, csv.Error):
            kept = move_to_discarded(run_dir, [self.path])
            print(f"note: {self.path} could not be read; moved to {kept}, new rows start a new file", flush=True)
            return []

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        with open(path, newline="") as f:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def log(self, row: dict[str, Any], step: int) -> None:
        # A resumed run rewrites rows of iterations it redoes.
        it = row.get("iteration")
        self.rows = [r for r in self.rows if r.get("iteration") != it] + [row]
        atomic_write_text(self.path, self._render())
        self._scalars(row, step)

    def _render(self) -> str:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=keys)
        w.writeheader()
        w.writerows(self.rows)
        return text.getvalue() if self.rows else ""

    def _scalars(self, row: dict[str, Any], step: int) -> None:
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

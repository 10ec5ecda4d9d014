"""fp32 against bf16 training steps on a run's own data: the loss curves and the time per step.

For each precision the run's rule is re-initialised with the same seed and fitted on the
run's collected data for a fixed number of epochs (no early stopping), recording the
validation score after every epoch (for GrBAL: the post-adaptation K-step error on
held-out segments, computed in fp32 either way). If the bf16 curve follows the fp32
one, ``fit.precision=bf16`` is safe for that configuration (docs/experiments.md)::

    .venv/bin/python scripts/fit_precision_check.py runs/paper-grbal-s0 --epochs 5 --out fitprec.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from learn2adapt.adaptation import grbal, rebal
from learn2adapt.allocator import keep_freed_memory
from learn2adapt.benchmarks.timing import cpu_model
from learn2adapt.envs import make_env
from learn2adapt.models import ensemble, fitting, supervised
from learn2adapt.run.build import build_rule
from learn2adapt.run.state import load_run

#: Modules that call the shared fitting loop by name (patched to record each fit's history).
_CALLERS = (grbal, rebal, supervised, ensemble)


def fit_curve(run_dir: Path, precision: str, epochs: int, steps_per_epoch: int, seed: int) -> dict:
    """Fit the run's rule afresh in ``precision``; per-epoch (train, validation) losses and seconds."""
    st = load_run(run_dir)
    cfg = st.cfg
    cfg.fit.precision, cfg.fit.max_epochs, cfg.fit.patience = precision, epochs, epochs + 1
    cfg.fit.max_steps_per_epoch = steps_per_epoch
    env = make_env(cfg.env)
    torch.manual_seed(seed)
    rule = build_rule(cfg, env)
    env.close()
    results: list[fitting.FitResult] = []
    val_seconds = [0.0]

    def recording(optimizer, epoch_batches, batch_loss, val_loss, *args, **kwargs):
        def timed_val_loss() -> float:
            t = time.perf_counter()
            v = val_loss()
            val_seconds[0] += time.perf_counter() - t
            return v

        results.append(
            fitting.fit_early_stopping(optimizer, epoch_batches, batch_loss, timed_val_loss, *args, **kwargs)
        )
        return results[-1]

    saved = {m: m.fit_early_stopping for m in _CALLERS}
    for m in _CALLERS:
        m.fit_early_stopping = recording  # type: ignore[attr-defined]
    try:
        t0 = time.perf_counter()
        metrics = rule.fit(st.buffer, np.random.default_rng(seed), progress=False)
        seconds = time.perf_counter() - t0
    finally:
        for m, f in saved.items():
            m.fit_early_stopping = f  # type: ignore[attr-defined]
    history = results[-1].history
    return {
        "precision": precision,
        "seconds": round(seconds, 1),
        "steps": results[-1].steps,
        "validation_seconds": round(val_seconds[0], 1),
        # the fit's time outside validation (sampling, normaliser, steps) per training step
        "ms_per_step": round(1e3 * (seconds - val_seconds[0]) / max(results[-1].steps, 1), 2),
        "train_loss": [round(t, 6) for t, _ in history],
        "val_loss": [round(v, 6) for _, v in history],
        "final": {k: v for k, v in metrics.items() if k.startswith("fit/val_loss")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--steps-per-epoch", type=int, default=0, help="cap on steps per epoch (0: the full epoch)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    keep_freed_memory()  # as every learn2adapt command does
    report = {"run": str(args.run_dir), "cpu": cpu_model(), "threads": torch.get_num_threads(), "curves": []}
    for precision in ("fp32", "bf16"):
        curve = fit_curve(args.run_dir, precision, args.epochs, args.steps_per_epoch, args.seed)
        print(json.dumps(curve), flush=True)
        report["curves"].append(curve)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

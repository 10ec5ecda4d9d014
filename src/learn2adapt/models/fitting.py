"""One early-stopping training loop shared by every model and adaptation rule.

Supervised (MB) and meta-training (GrBAL, ReBAL) differ only in how a batch's
loss is computed and how validation is scored; both are passed in.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from learn2adapt.errors import NonFiniteLossError
from learn2adapt.models.config import FitConfig
from learn2adapt.progress import progress_bar

#: A batch, whatever the caller's loss takes (a tensor of indices, a Window, ...).
Batch = TypeVar("Batch")

#: Accepted values of ``fit.precision``.
FIT_PRECISIONS = ("fp32", "bf16")
#: Accepted values of ``fit.select``: which weights a fit ends with.
FIT_SELECTS = ("prefit", "epoch", "last")


def training_autocast(cfg: FitConfig, device_type: str) -> contextlib.AbstractContextManager:
    """The context a training batch's loss is computed in: bf16 autocast under ``fit.precision=bf16``.

    Only the ops autocast lowers (the matmuls) run in bf16; the weights, Adam's moments and
    validation stay fp32, so early stopping compares fp32 scores whatever the precision.
    """
    if cfg.precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class FitResult:
    epochs: int = 0
    steps: int = 0
    train_loss: float = float("nan")
    val_loss: float = float("nan")
    #: The epoch whose weights the fit kept (1-based); 0: the model before the fit.
    kept_epoch: int = 0
    history: list[tuple[float, float]] = field(default_factory=list)

    def metrics(self, prefix: str = "fit") -> dict[str, float]:
        return {
            f"{prefix}/epochs": self.epochs,
            f"{prefix}/steps": self.steps,
            f"{prefix}/train_loss": self.train_loss,
            f"{prefix}/val_loss": self.val_loss,
            f"{prefix}/kept_epoch": self.kept_epoch,
        }


def fit_early_stopping(
    optimizer: torch.optim.Optimizer,
    epoch_batches: Callable[[], Iterable[Batch]],
    batch_loss: Callable[[Batch], torch.Tensor],
    val_loss: Callable[[], float],
    cfg: FitConfig,
    desc: str = "fit",
    progress: bool = True,
) -> FitResult:
    """Adam on ``batch_loss`` with early stopping on ``val_loss``; keeps the weights ``cfg.select`` says.

    ``fit.select``: ``prefit`` keeps the best-scoring of the model before the fit and every
    epoch, so a fit none of whose epochs beats the old model on validation returns the old model
    unchanged, its new training data unlearnt (in model-based RL the newest episodes, those the
    planner needs, are often the ones a warm model cannot predict better yet); ``epoch`` keeps
    the best epoch of this fit; ``last`` trains ``max_epochs`` (or ``max_steps``) without
    stopping early and keeps the last weights (mbrl-lib's PETS, which trains without a
    validation set).

    Args:
        optimizer: optimiser over every tensor to fit (network weights, learned
            step sizes...); kept by the caller so warm starts keep its moments.
        epoch_batches: returns a fresh iterable of batches for one epoch.
        batch_loss: differentiable loss of one batch.
        val_loss: validation score (lower is better), evaluated after each epoch
            (and once more when ``cfg.max_steps`` ends the fit inside an epoch), and before
            the fit under ``select = prefit``. The returned ``val_loss`` is the kept weights' score.
        cfg: learning rate, epochs, patience, step budget, clipping, precision.
        desc: progress-bar label.
        progress: show a progress bar.

    Raises:
        NonFiniteLossError: a training or validation loss was NaN/inf.
    """
    opt = optimizer
    params = [p for group in opt.param_groups for p in group["params"]]
    result = FitResult()
    # Only ``prefit`` compares with the model before the fit; the others skip that validation
    # pass (in a late GrBAL `paper` fit one of five, each as dear as 110-140 meta-steps).
    best, best_state = math.inf, []
    if cfg.select == "prefit":
        best = val_loss()
        if not math.isfinite(best):
            raise NonFiniteLossError(f"{desc}: validation loss is {best} before training")
        best_state = [p.detach().clone() for p in params]
    bad_epochs = 0
    bar = progress_bar(range(cfg.max_epochs), desc=desc, leave=False, enabled=progress, unit="epoch")
    for epoch in bar:
        result.train_loss = _train_epoch(opt, params, epoch_batches(), batch_loss, cfg, result, desc, epoch)
        v = val_loss()
        if not math.isfinite(v):
            raise NonFiniteLossError(f"{desc}: validation loss became {v} at epoch {epoch}")
        result.history.append((result.train_loss, v))
        result.epochs = epoch + 1
        bar.set_postfix(train=f"{result.train_loss:.4g}", val=f"{v:.4g}", refresh=False)
        if cfg.select == "last":
            best, result.kept_epoch = v, epoch + 1
        elif v < best - 1e-7:
            best, bad_epochs, result.kept_epoch = v, 0, epoch + 1
            best_state = [p.detach().clone() for p in params]
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                break
        if cfg.max_steps and result.steps >= cfg.max_steps:
            break
    if best_state:
        with torch.no_grad():
            for p, b in zip(params, best_state):
                p.copy_(b)
    result.val_loss = best if math.isfinite(best) else float("nan")  # nan: no epoch ran
    return result


def _train_epoch(
    opt: torch.optim.Optimizer,
    params: list[torch.Tensor],
    batches: Iterable[Batch],
    batch_loss: Callable[[Batch], torch.Tensor],
    cfg: FitConfig,
    result: FitResult,
    desc: str,
    epoch: int,
) -> float:
    """One epoch of :func:`fit_early_stopping` (at most ``cfg.max_steps_per_epoch`` steps, and
    none past ``cfg.max_steps``), counted in ``result.steps``; returns its mean training loss.

    Raises:
        NonFiniteLossError: a training loss was NaN/inf.
    """
    device_type = params[0].device.type if params else "cpu"
    total, count = 0.0, 0
    batch_iter: Iterator[Batch] = iter(batches)
    for i, batch in enumerate(batch_iter):
        if cfg.max_steps_per_epoch and i >= cfg.max_steps_per_epoch:
            break
        with training_autocast(cfg, device_type):
            loss = batch_loss(batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"{desc}: training loss became {loss.item()} at epoch {epoch}, step {i}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        total += loss.item()
        count += 1
        result.steps += 1
        if cfg.max_steps and result.steps >= cfg.max_steps:
            break
    return total / max(count, 1)

"""Atomic checkpoints that load without executing code.

Everything (weights, optimiser, normaliser, collected data, RNG states) goes
into one ``torch.save`` file of tensors and plain containers, written to a
temporary file, fsynced, then renamed over the old one: a run killed while
saving keeps its previous checkpoint intact. Loading uses
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learn2adapt.errors import CheckpointError

CHECKPOINT_NAME = "checkpoint.pt"


def arrays_to_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def tensors_to_arrays(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in tensors.items()}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: with a one-line explanation of what to do.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint at {path}: the run never finished an iteration; start it again without --resume"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(e).__name__}); delete the run directory "
            "or restore the file, then start again"
        ) from None
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path} is not a learn2adapt checkpoint")
    return state

"""Atomic, checksummed checkpoints that load without executing code.

Everything (weights, optimiser, normaliser, collected data, RNG states) goes
into one ``torch.save`` file of tensors and plain containers, written to a
uniquely named temporary file, fsynced, then renamed over the old one: a run killed
while saving keeps its previous checkpoint intact. Loading uses
``torch.load(weights_only=True)``.

Integrity: the checkpoint carries ``digest``, a SHA-256 of its whole content (every
tensor's dtype, shape and bytes, every other value), verified on load, so a flipped
byte inside a stored array is refused instead of training or evaluating on corrupt data. The
checksum is required: a checkpoint without one is refused too, unless the user accepts it once
(:func:`restamp_checkpoint`, ``--restamp-checkpoint``), which writes it again with one.
"""

from __future__ import annotations

import hashlib
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


def content_digest(value: Any) -> str:
    """SHA-256 (hex) of a nested structure of dicts, lists, tensors, arrays and scalars."""
    h = hashlib.sha256()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            h.update(b"{")
            for k in sorted(v, key=str):
                h.update(repr(k).encode())
                walk(v[k])
            h.update(b"}")
        elif isinstance(v, (list, tuple)):
            h.update(b"[")
            for x in v:
                walk(x)
            h.update(b"]")
        elif isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(v, np.ndarray):
            walk(torch.from_numpy(np.ascontiguousarray(v)))
        else:
            h.update(repr(v).encode())

    walk(value)
    return h.hexdigest()


def save_checkpoint(path: Path, state: dict[str, Any]) -> str:
    """Write ``state`` (plus its ``digest``) to ``path`` atomically; returns the digest.

    Raises:
        UserError: an OS error (no space, read-only...): the previous checkpoint is unchanged.
    """
    from learn2adapt.run.run_dir import atomic_write_bytes

    body = {k: v for k, v in state.items() if k != "digest"}  # a loaded state carries its old one
    full = {**body, "digest": content_digest(body)}
    atomic_write_bytes(Path(path), writer=lambda f: torch.save(full, f))
    return str(full["digest"])


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``"digest"``: its verified checksum).

    Raises:
        CheckpointError: with a one-line explanation of what to do.
    """
    path = Path(path)
    finished = [name for name in ("DONE", "eval.json") if (path.parent / name).exists()]
    metrics = path.parent / "metrics.csv"
    if metrics.exists() and metrics.read_bytes().count(b"\n") > 1:  # a row past the header: an iteration ended
        finished.append("metrics.csv")
    if not path.exists() and finished:
        raise CheckpointError(
            f"{path} is missing, though the run got further ({', '.join(finished)} present, untouched): "
            f"restore {path.name} from a copy; `learn2adapt train --resume {path.parent}` would instead train "
            f"it again from its config, moving those files to {path.parent}/discarded/"
        )
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint at {path}: the run never finished an iteration; start it again with "
            f"`learn2adapt train --resume {path.parent}` (it restarts from its config)"
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
    digest = state.pop("digest", None)
    if digest is None:
        raise CheckpointError(
            f"checkpoint {path} has no checksum: it was altered, or written before checkpoints were stamped; "
            f"if you trust it, accept it once with `learn2adapt eval {path.parent} {RESTAMP_FLAG}` "
            "(or train --resume with it), else restore the file or delete the run directory"
        )
    if digest != content_digest(state):
        raise CheckpointError(
            f"checkpoint {path} is corrupt (its contents do not match their checksum); restore the file or "
            "delete the run directory and start again"
        )
    state["digest"] = digest  # verified: what an evaluation records of the checkpoint it evaluated
    return state


#: The command-line flag of ``eval`` and ``train --resume`` that calls :func:`restamp_checkpoint`.
RESTAMP_FLAG = "--restamp-checkpoint"


def restamp_checkpoint(path: Path) -> bool:
    """Accept a checkpoint that carries no checksum, once, by writing it again with one (atomically).

    For a checkpoint the user trusts (written before checksums existed); the run's own
    consistency checks still apply when it loads. A checkpoint whose checksum is present is never
    re-stamped: a mismatch stays an error. Returns whether it was re-stamped.

    Raises:
        CheckpointError: no checkpoint, not a checkpoint, or one whose checksum does not match.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{RESTAMP_FLAG}: no checkpoint at {path}") from None
    except Exception as e:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(
            f"{RESTAMP_FLAG}: checkpoint {path} is truncated or corrupt ({type(e).__name__})"
        ) from None
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{RESTAMP_FLAG}: {path} is not a learn2adapt checkpoint")
    if "digest" in state:
        load_checkpoint(path)  # a present checksum must match: never overwritten
        return False
    save_checkpoint(path, state)
    return True

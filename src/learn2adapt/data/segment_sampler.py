"""Sampling of M+K consecutive-transition segments that never cross an episode.

GrBAL and ReBAL train on segments: the first M transitions are the "past"
used to adapt, the next K the "future" the adapted model is scored on
(Nagabandi et al., 2019, Sec. 4). Tasks are defined by temporal locality,
so no task labels are used.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from learn2adapt.data.trajectory_buffer import TrajectoryBuffer
from learn2adapt.errors import NotEnoughSegments, UnknownName
from learn2adapt.types import Window

#: Accepted values of ``fit.segment_epoch``.
SEGMENT_EPOCHS = ("transitions", "starts")


def epoch_starts(
    starts: np.ndarray, num_transitions: int, length: int, batch_size: int, mode: str, rng: np.random.Generator
) -> np.ndarray:
    """The segment starts one meta-training epoch visits, in random order.

    ``mode="transitions"``: an epoch passes over the training transitions about once,
    ``max(1, num_transitions // (batch_size * length))`` batches of ``batch_size``
    segments drawn without replacement (the official GrBAL code's epoch); the cost of an
    epoch then grows with the data, not with ``length`` times the data.
    ``mode="starts"``: every valid start once (each transition is seen ``length`` times).
    """
    if mode not in SEGMENT_EPOCHS:
        raise UnknownName(f"unknown fit.segment_epoch {mode!r}; available: {', '.join(SEGMENT_EPOCHS)}")
    order = rng.permutation(starts)
    if mode == "starts":
        return order
    steps = max(1, int(num_transitions) // (batch_size * length))
    return order[: steps * batch_size]


def short_past_counts(batch: int, past: int, fraction: float, rng: np.random.Generator) -> np.ndarray | None:
    """Valid past lengths for a meta-batch whose pasts are cut short at random (``adaptation.short_past``).

    A ``fraction`` of the windows keeps only its last ``count`` past transitions, ``count``
    uniform in ``[0, past)``; the others keep all ``past``. Online, the first M steps of every
    episode adapt on fewer than M transitions, and meta-training on such windows lets the
    model account for it. Returns None (every past full) when no window is cut.
    """
    if fraction <= 0:
        return None
    short = rng.random(batch) < fraction
    if not short.any():
        return None
    count = np.full(batch, past, np.int64)
    count[short] = rng.integers(0, past, size=int(short.sum()))
    return count


def valid_segment_starts(episode_id: np.ndarray, length: int) -> np.ndarray:
    """Indices ``i`` such that transitions ``i .. i+length-1`` lie in one episode.

    Episodes are stored contiguously, so it is enough that the first and the
    last transition of the window carry the same episode id.
    """
    if length < 1:
        raise ValueError("segment length must be >= 1")
    n = episode_id.shape[0]
    if n < length:
        return np.zeros(0, np.int64)
    starts = np.arange(n - length + 1)
    return starts[episode_id[starts] == episode_id[starts + length - 1]]


class SegmentSampler:
    """Windows of ``length`` consecutive transitions cut from the episodes of a buffer.

    The buffer's transitions are copied to ``device`` once; :meth:`gather` and
    :meth:`epoch` then index them there (no per-batch host-to-device copy).

    Args:
        buffer: the trajectory store.
        length: segment length M + K.
        device: where the windows live.

    Raises:
        NotEnoughSegments: no episode is long enough for one segment.
    """

    def __init__(self, buffer: TrajectoryBuffer, length: int, device: str | torch.device = "cpu") -> None:
        self.length = int(length)
        self.starts = valid_segment_starts(buffer.episode_id, self.length)
        if self.starts.size == 0:
            raise NotEnoughSegments(
                f"no episode is long enough for segments of {self.length} transitions: "
                "collect longer episodes or lower adaptation.past / adaptation.future"
            )
        self.device = torch.device(device)
        t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        self._data = (t(buffer.obs), t(buffer.act), t(buffer.next_obs))
        self._offsets = torch.arange(self.length, device=self.device)

    def __len__(self) -> int:
        return int(self.starts.size)

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The buffer's ``obs``, ``act``, ``next_obs`` on the sampler's device ``(n, ...)``."""
        return self._data

    def gather(self, starts: np.ndarray) -> Window:
        """The windows beginning at ``starts`` (every row valid)."""
        idx = torch.as_tensor(starts, device=self.device)[:, None] + self._offsets
        obs, act, nxt = self._data
        return Window(obs[idx], act[idx], nxt[idx])

    def epoch(
        self,
        starts: np.ndarray,
        batch_size: int,
        rng: np.random.Generator,
        num_transitions: int = 0,
        mode: str = "starts",
    ) -> Iterator[Window]:
        """One epoch over ``starts``, ``batch_size`` windows at a time (see :func:`epoch_starts`)."""
        return self.member_epoch(starts[None], batch_size, rng, num_transitions, mode)

    def member_epoch(
        self,
        starts: np.ndarray,
        batch_size: int,
        rng: np.random.Generator,
        num_transitions: int = 0,
        mode: str = "starts",
    ) -> Iterator[Window]:
        """One epoch of an ensemble: ``starts (members, n)`` holds each member's own segment starts
        (its bootstrap resample); every batch has ``batch_size`` windows per member, member-major
        (``members * batch_size`` windows, member ``b``'s at rows ``b * batch_size ...``)."""
        orders = np.stack([epoch_starts(row, num_transitions, self.length, batch_size, mode, rng) for row in starts])
        for i in range(0, orders.shape[1], batch_size):
            yield self.gather(orders[:, i : i + batch_size].reshape(-1))

    def chunks(self, starts: np.ndarray, size: int) -> list[Window]:
        """``starts`` as a list of windows of at most ``size`` (fixed validation batches)."""
        return [self.gather(starts[i : i + size]) for i in range(0, starts.size, size)]


def split_segment_starts(
    buffer: TrajectoryBuffer,
    length: int,
    train_mask: np.ndarray,
    val_mask: np.ndarray,
    rng: np.random.Generator,
    max_val: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Valid segment starts in training and in validation episodes.

    Validation keeps at most ``max_val`` starts (a fixed random subset, so epochs are
    comparable at bounded cost); with no validation segment (too few episodes, or
    ``val_fraction = 0``) it falls back to the training starts.

    Raises:
        NotEnoughSegments: no training episode is long enough for one segment.
    """
    starts = valid_segment_starts(buffer.episode_id, length)
    train, val = starts[train_mask[starts]], starts[val_mask[starts]]
    if train.size == 0:
        where = "no episode" if starts.size == 0 else "no training (non-validation) episode"
        raise NotEnoughSegments(
            f"{where} is long enough for segments of M + K = {length} transitions ({buffer.num_episodes} episodes): "
            "collect longer or more episodes, or lower adaptation.past / adaptation.future"
        )
    if val.size == 0:
        val = train
    if val.size > max_val:
        val = np.sort(rng.choice(val, size=max_val, replace=False))
    return train, val

"""Every statistical helper of the package: 95% confidence intervals and relative changes.

- :func:`mean_ci95`: a mean and its Student-t interval (per test task, over episodes);
- :func:`diff_ci95`: a difference of two independent means, Welch interval;
- :func:`paired_diff_ci95`: a mean of paired differences (same key in both samples);
- :class:`Stat`: a mean with its interval and samples, plain or stratified over fixed groups;
- :func:`relative_change`: a difference as a percentage of a baseline, where meaningful;
- :func:`spearman`: the rank correlation of two scorings of the same items.

The Student-t quantile is scipy's (fractional degrees of freedom too, for Welch).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats


@functools.lru_cache(maxsize=1024)
def t975(df: float) -> float:
    """Two-sided 95% Student-t quantile for ``df`` degrees of freedom (fractional ones too: Welch); NaN below 1."""
    if not df >= 1:
        return float("nan")
    return float(scipy.stats.t.ppf(0.975, df))


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of a 95% confidence interval (Student t; 0 for one value)."""
    x = np.asarray(values, np.float64)
    if x.size < 2:
        return float(x.mean()) if x.size else float("nan"), 0.0
    return float(x.mean()), float(t975(x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def diff_ci95(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Difference of means ``mean(a) - mean(b)`` and its 95% CI half-width (Welch).

    The half-width is NaN when either sample has fewer than two values.
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return diff, float("nan")
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    if se == 0.0:
        return diff, 0.0
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    return diff, float(t975(df) * se)


def paired_diff_ci95(a: dict[Any, float], b: dict[Any, float]) -> tuple[float, float, int]:
    """Mean of ``a[k] - b[k]`` over shared keys, its 95% CI half-width, and the number of pairs.

    The half-width is NaN with fewer than two pairs.
    """
    keys = sorted(set(a) & set(b))
    d = [a[k] - b[k] for k in keys]
    if not d:
        return float("nan"), float("nan"), 0
    m, h = mean_ci95(d)
    return m, (h if len(d) >= 2 else float("nan")), len(d)


def relative_change(diff: float, ref: float) -> str:
    """``diff`` as a percentage of ``|ref|``, unless ``ref`` is near 0 next to ``diff``.

    Returns straddle 0, so a baseline of 0.6 would turn a difference of 77 into
    "+13000%": beyond 10x the baseline, no percentage is given.
    """
    if not (math.isfinite(ref) and math.isfinite(diff)):
        return "n/a"
    if ref == 0 or abs(diff) > 10 * abs(ref):
        return "baseline near 0, no percentage"
    pct = 100 * diff / abs(ref)
    return f"{pct:+.1f}%" if abs(pct) < 1 else f"{pct:+.0f}%"  # not "-0%" for a small difference


@dataclass
class Stat:
    """A mean with its 95% CI half-width, and the samples it came from."""

    mean: float
    ci95: float
    samples: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stat:
        """Mean and Student-t interval of the finite ``samples`` (NaN: none)."""
        samples = [float(s) for s in samples if s is not None and math.isfinite(s)]
        if not samples:
            return cls(float("nan"), float("nan"), [])
        m, h = mean_ci95(samples)
        return cls(m, h, samples)

    @classmethod
    def stratified(cls, groups: Sequence[Sequence[float]]) -> Stat:
        """Mean over groups of the group means (e.g. over a fixed set of test tasks), with its 95% CI.

        The groups are fixed (not sampled), so only the within-group spread is
        uncertainty: se = sqrt(sum_j s_j^2 / n_j) / J, Welch-Satterthwaite degrees of freedom.
        """
        groups = [[float(x) for x in g if math.isfinite(x)] for g in groups]
        groups = [g for g in groups if g]
        if not groups:
            return cls(float("nan"), float("nan"), [])
        samples = [x for g in groups for x in g]
        mean = float(np.mean([np.mean(g) for g in groups]))
        if any(len(g) < 2 for g in groups):
            return cls(mean, float("nan"), samples)
        v = [np.var(g, ddof=1) / len(g) for g in groups]
        se = math.sqrt(sum(v)) / len(groups)
        if se == 0.0:
            return cls(mean, 0.0, samples)
        df = sum(v) ** 2 / sum(vj**2 / (len(g) - 1) for vj, g in zip(v, groups))
        return cls(mean, t975(df) * se, samples)

    def fmt(self, digits: int = 1) -> str:
        """``mean ± ci`` with ``digits`` decimals (negative: that many significant digits)."""
        if not math.isfinite(self.mean):
            return "n/a"
        ci = f"{self.ci95:.{abs(digits)}{'g' if digits < 0 else 'f'}}" if math.isfinite(self.ci95) else "n/a"
        return f"{self.mean:.{abs(digits)}{'g' if digits < 0 else 'f'}} ± {ci}"

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": self.ci95, "n": len(self.samples)}


def adjusted_rand_index(labels_a: Sequence[Any], labels_b: Sequence[Any]) -> float:
    """Adjusted Rand index of two labelings of the same items (Hubert and Arabie, 1985).

    1: the same partition; about 0: no better than chance. NaN with fewer than two items.
    """
    n = len(labels_a)
    if n < 2 or n != len(labels_b):
        return float("nan")
    _, a = np.unique(np.asarray([str(x) for x in labels_a]), return_inverse=True)
    _, b = np.unique(np.asarray([str(x) for x in labels_b]), return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    index, rows, cols, total = pairs(table), pairs(table.sum(1)), pairs(table.sum(0)), n * (n - 1) / 2
    expected = rows * cols / total
    best = (rows + cols) / 2
    return 1.0 if best == expected else (index - expected) / (best - expected)


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation of ``a`` and ``b`` (ties share their mean rank; NaN if either is constant)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(scipy.stats.spearmanr(x, y).statistic)

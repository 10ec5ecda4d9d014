"""Aggregate several comparisons (one per domain) with rliable (Agarwal et al., NeurIPS 2021).

"Deep Reinforcement Learning at the Edge of the Statistical Precipice": with a handful of
seeds per domain, per-domain means and their t-intervals say little about which method is
better *overall*. ``learn2adapt aggregate CMP_DIR...`` reads the reports of several
``compare`` runs (one environment family each), normalises each domain's held-out returns,
and reports, per algorithm, the interquartile mean (IQM), median and mean of the normalised
scores over all runs x domains with stratified-bootstrap 95% confidence intervals, plus the
performance profile (the fraction of runs scoring above tau, with its band), all computed by
``rliable`` (optional dependency group ``stats``).

Normalisation, per domain and schedule: ``(R - R_min) / (R_max - R_min)``, where ``R_min``
and ``R_max`` are the lowest and highest per-seed held-out return of any algorithm compared
in that domain. 0 and 1 are thus "the worst and the best run seen there": the scores rank
methods against each other, not against an absolute reference (no random-policy or expert
return is measured for every family).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learn2adapt.errors import UserError
from learn2adapt.reporting.report import load_summary, schedules_of
from learn2adapt.reporting.variants import color, label

#: Bootstrap replications (rliable's default is 50,000; 2,000 keeps a report within seconds).
REPS = 2000
#: Thresholds of the performance profile.
TAUS = np.linspace(0.0, 1.0, 41)
INSTALL = 'pip install "learn2adapt[stats]"'


@dataclass
class Domain:
    """One comparison: its environment and the per-seed held-out returns of each algorithm."""

    env: str
    path: Path
    returns: dict[str, list[float]]


def load_domain(path: Path, schedule: str) -> Domain:
    """The seed means of every algorithm of ``path`` (see :func:`load_summary`) under ``schedule``."""
    env, summary = load_summary(path)
    if schedule not in schedules_of(summary):
        raise UserError(f"{path} was not evaluated under {schedule!r}; it has: {', '.join(schedules_of(summary))}")
    returns = {algo: [float(v) for v in row["seed_means"]] for algo, row in summary[schedule].items()}
    return Domain(env, path, returns)


def normalised_scores(domains: Sequence[Domain]) -> tuple[dict[str, np.ndarray], list[str]]:
    """``{algo: (runs, domains)}`` normalised scores (module docstring), for the algorithms in every domain.

    Returns the score arrays and the algorithms left out (not run in every domain). Each
    algorithm keeps as many runs as its fewest seeds in any domain (rliable needs a matrix).
    """
    common = [a for a in domains[0].returns if all(a in d.returns for d in domains)]
    left_out = sorted({a for d in domains for a in d.returns} - set(common))
    scores: dict[str, list[np.ndarray]] = {a: [] for a in common}
    for d in domains:
        values = np.concatenate([d.returns[a] for a in common])
        low, high = float(values.min()), float(values.max())
        span = high - low if high > low else 1.0
        for a in common:
            scores[a].append((np.asarray(d.returns[a]) - low) / span)
    out = {}
    for a, cols in scores.items():
        runs = min(len(c) for c in cols)
        out[a] = np.stack([c[:runs] for c in cols], axis=1)
    return out, left_out


def _rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics
    except ImportError as e:
        raise UserError(f"aggregate needs rliable (optional dependency group `stats`): {INSTALL} ({e})") from None
    return library, metrics


def aggregate(paths: Sequence[Path], schedule: str = "fixed", out: Path | None = None, seed: int = 0) -> Path:
    """Write ``aggregate.md``, ``aggregate.json`` and ``performance_profile.png`` under ``out``; returns the markdown path."""
    if len(paths) < 1:
        raise UserError("aggregate needs at least one comparison directory")
    library, metrics = _rliable()
    domains = [load_domain(Path(p), schedule) for p in paths]
    scores, left_out = normalised_scores(domains)
    if not scores:
        raise UserError("no algorithm was compared in every one of these domains")
    rng = np.random.RandomState(seed)
    estimators = {
        "IQM": metrics.aggregate_iqm,
        "median": metrics.aggregate_median,
        "mean": metrics.aggregate_mean,
    }
    figures: dict[str, dict[str, Any]] = {a: {"runs": int(s.shape[0])} for a, s in scores.items()}
    with warnings.catch_warnings():  # rliable hands arch a RandomState, which arch 7 deprecates
        warnings.simplefilter("ignore", FutureWarning)
        for name, fn in estimators.items():
            point, interval = library.get_interval_estimates(
                scores, lambda x, fn=fn: np.array([fn(x)]), reps=REPS, random_state=rng
            )
            for a in scores:
                figures[a][name] = {
                    "value": float(point[a][0]),
                    "ci95": [float(interval[a][0, 0]), float(interval[a][1, 0])],
                }
        profiles, bands = library.create_performance_profile(scores, TAUS, reps=REPS)
    out = Path(out) if out is not None else Path("runs") / "aggregate"
    out.mkdir(parents=True, exist_ok=True)
    _plot_profiles(profiles, bands, out / "performance_profile.png")
    order = sorted(scores, key=lambda a: -figures[a]["IQM"]["value"])
    lines = [
        f"# Aggregate over {len(domains)} domains (`{schedule}`)",
        "",
        "Command: `learn2adapt aggregate "
        + " ".join(str(d.path) for d in domains)
        + f" --schedule {schedule} --out {out}`",
        "",
        "Held-out returns normalised per domain: 0 = the lowest, 1 = the highest per-seed return of any "
        "algorithm compared there (learn2adapt/reporting/aggregate.py). Interquartile mean, median and mean "
        f"over runs x domains with stratified-bootstrap 95% CIs ({REPS} replications), by rliable.",
        "",
        "| domain | comparison | seeds per algorithm |",
        "|---|---|---|",
    ]
    for d in domains:
        lines.append(f"| {d.env} | `{d.path}` | {', '.join(f'{label(a)} {len(v)}' for a, v in d.returns.items())} |")
    lines += ["", "| algorithm | IQM | median | mean | runs |", "|---|---|---|---|---|"]
    for a in order:
        cells = [
            f"{figures[a][k]['value']:.2f} [{figures[a][k]['ci95'][0]:.2f}, {figures[a][k]['ci95'][1]:.2f}]"
            for k in estimators
        ]
        lines.append(f"| {label(a)} | " + " | ".join(cells) + f" | {figures[a]['runs']} x {len(domains)} |")
    if left_out:
        lines += ["", f"Not in every domain, left out: {', '.join(label(a) for a in left_out)}."]
    lines += ["", "![performance profiles](performance_profile.png)", ""]
    md = out / "aggregate.md"
    md.write_text("\n".join(lines))
    payload = {
        "schedule": schedule,
        "domains": [{"env": d.env, "path": str(d.path), "returns": d.returns} for d in domains],
        "algorithms": figures,
        "left_out": left_out,
        "profile": {"tau": TAUS.tolist(), **{a: profiles[a].tolist() for a in scores}},
    }
    (out / "aggregate.json").write_text(json.dumps(payload, indent=1) + "\n")
    return md


def _plot_profiles(profiles: dict[str, np.ndarray], bands: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for a, curve in profiles.items():
        (line,) = ax.plot(TAUS, curve, label=label(a), color=color(a))
        ax.fill_between(TAUS, bands[a][0], bands[a][1], alpha=0.2, color=line.get_color())
    ax.set_xlabel("normalised held-out return tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

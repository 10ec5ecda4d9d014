"""Forward velocity of training episodes against environment steps, from runs' ``metrics.csv``.

    python scripts/plot_velocity_curves.py OUT.png LABEL=metrics.csv [LABEL=metrics.csv ...] [--target 1.0]

Each ``metrics.csv`` is one run (a MuJoCo locomotion family writes ``velocity_mean`` per
iteration); runs with the same label are drawn in one colour. ``--target`` adds a dashed line.
"""

from __future__ import annotations

import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("runs", nargs="+", help="LABEL=path/to/metrics.csv")
    parser.add_argument("--target", type=float, default=None, help="draw a dashed line at this velocity (m/s)")
    parser.add_argument("--title", default="Training episodes: mean forward velocity")
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colours: dict[str, str] = {}
    for spec in args.runs:
        label, path = spec.split("=", 1)
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        steps = [int(r["env_steps"]) for r in rows]
        vel = [float(r["velocity_mean"]) for r in rows]
        first = label not in colours
        line = ax.plot(steps, vel, marker="o", ms=3, color=colours.get(label), label=label if first else None)[0]
        colours.setdefault(label, line.get_color())
    if args.target is not None:
        ax.axhline(args.target, ls="--", color="grey", lw=1, label=f"{args.target:g} m/s")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean forward velocity (m/s)")
    ax.set_title(args.title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()

"""The hostile probe of issue 40, widened: kills, signals, corrupt files and bad values, each
checked for the one line, the exit code and that nothing was lost or left behind.

Not part of the test run (a few minutes of subprocesses); run it by hand and paste its table
into docs/experiments.md ("Reliability"):

    OMP_NUM_THREADS=1 .venv/bin/python -m tests.probes.hostile [--out DIR]

Kills at atomic-write boundaries are injected in the training subprocess (a wrapper around
``os.replace`` that SIGKILLs the process just before or just after the rename of the Nth write of
one file), so every boundary is hit exactly, with no hook in the library.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PENDULUM = "learn2adapt/PendulumVaried-v0"
TINY = [
    "random_episodes=2", "episodes_per_iteration=1", "episode_length=40", "num_envs=1", "model.hidden=16",
    "fit.max_epochs=1", "planner.horizon=4", "planner.num_candidates=30", "eval.episodes_per_task=1",
]  # fmt: skip
L2A = [sys.executable, "-m", "learn2adapt.cli"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")

KILL_AT_WRITE = """
import os, signal, sys
from pathlib import Path
target, nth, stage = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real, seen = os.replace, [0]
def replace(src, dst, *a, **k):
    hit = Path(dst).name == target and (seen.__setitem__(0, seen[0] + 1) or seen[0] == nth)
    if hit and stage == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst, *a, **k)
    if hit and stage == "after":
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
from learn2adapt.cli import main
sys.exit(main(sys.argv[4:]))
"""


def sets(options: list[str]) -> list[str]:
    return [a for o in options for a in ("--set", o)]


def run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=timeout)


def rows(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(r["iteration"]) for r in csv.DictReader(f)]


def whole(run_dir: Path, iterations: int) -> str:
    """'ok' if the run finished with each iteration's row once and no temporary file left, else why."""
    problems = []
    if not (run_dir / "DONE").exists():
        problems.append("no DONE")
    if rows(run_dir) != list(range(iterations + 1)):
        problems.append(f"metrics rows {rows(run_dir)}")
    if list(run_dir.glob(".*.tmp")) or list(run_dir.glob("steps/*/.*.tmp")):
        problems.append("temporary files left")
    return "ok" if not problems else "; ".join(problems)


def one_line(p: subprocess.CompletedProcess, code: int) -> bool:
    lines = [line for line in p.stderr.strip().splitlines() if "Warning" not in line and "warn(" not in line]
    return p.returncode == code and len(lines) == 1 and lines[0].startswith("learn2adapt:")


def kills(root: Path) -> list[tuple[str, str]]:
    out = []
    for target in ("checkpoint.pt", "metrics.csv", "config.json", "DONE"):
        for stage in ("before", "after"):
            d = root / f"kill-{target}-{stage}"
            nth = 1 if target in ("config.json", "DONE") else 2
            train = ["train", "--env", PENDULUM, "--run-dir", str(d), "--quiet", *sets([*TINY, "iterations=2"])]
            p = run([sys.executable, "-c", KILL_AT_WRITE, target, str(nth), stage, *train])
            killed = p.returncode == -signal.SIGKILL
            resume = run([*L2A, "train", "--resume", str(d), "--quiet"])
            verdict = (
                whole(d, 2) if resume.returncode == 0 else f"resume exit {resume.returncode}: {resume.stderr[-200:]}"
            )
            out.append(
                (f"SIGKILL {stage} the rename of write {nth} of {target}", ("" if killed else "(not hit) ") + verdict)
            )
    return out


def signals(root: Path, count: int = 10, seed: int = 0) -> list[tuple[str, str]]:
    rng, out = random.Random(seed), []
    for k in range(count):
        sig = rng.choice([signal.SIGTERM, signal.SIGINT])
        d, delay = root / f"signal-{k}", rng.uniform(1.0, 8.0)
        argv = [*L2A, "train", "--env", PENDULUM, "--run-dir", str(d), "--quiet", *sets([*TINY, "iterations=6"])]
        proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        expect = {signal.SIGTERM: 143, signal.SIGINT: 130}[sig]
        stopped = proc.returncode == expect and (str(d) in err or "RUN_DIR" in err)
        named = str(d) in err
        resume = run([*L2A, "train", "--resume", str(d), "--quiet"]) if (d / "config.json").exists() else None
        verdict = "ok" if resume is None or resume.returncode == 0 else f"resume exit {resume.returncode}"
        if resume is not None and resume.returncode == 0:
            verdict = whole(d, 6)
        if proc.returncode == 0:
            out.append((f"{sig.name} after {delay:.1f} s", "the run had finished before the signal; ok"))
            continue
        status = f"exit {proc.returncode}" + ("" if named else ", message without the run's path")
        out.append(
            (
                f"{sig.name} after {delay:.1f} s",
                f"{status}; {verdict}" if stopped or proc.returncode == 0 else f"{status}: {err[-200:]}",
            )
        )
    return out


def corruptions(root: Path) -> list[tuple[str, str]]:
    base = root / "finished"
    p = run([*L2A, "train", "--env", PENDULUM, "--run-dir", str(base), "--quiet", *sets([*TINY, "iterations=1"])])
    assert p.returncode == 0, p.stderr
    assert run([*L2A, "eval", str(base), "--quiet"]).returncode == 0
    out = []
    cases = {
        "eval.json garbage, then eval": ("eval.json", b"\x00garbage{", ["eval"]),
        "eval.json garbage, then compare-style reuse (eval --output elsewhere)": (
            "eval.json",
            b"[1, 2",
            ["eval", "--output", "{d}/other.json"],
        ),
        "metrics.csv binary, then resume": (
            "metrics.csv",
            b"\xff\xfe\x00\x81" * 50,
            ["train", "--resume", "--set", "iterations=2"],
        ),
        "metrics.csv emptied, then resume": ("metrics.csv", b"", ["train", "--resume", "--set", "iterations=2"]),
        "TensorBoard event file garbage, then resume": (
            "tb/*",
            b"\x00" * 64,
            ["train", "--resume", "--set", "iterations=2"],
        ),
        "config.json garbage beside the checkpoint, then eval": ("config.json", b"{oops", ["eval"]),
        "config.json garbage beside the checkpoint, then resume": ("config.json", b"", ["train", "--resume"]),
        "checkpoint.pt truncated, then eval": ("checkpoint.pt", None, ["eval"]),
    }
    for k, (name, (target, garbage, argv)) in enumerate(cases.items()):
        d = root / f"corrupt-{k}"
        subprocess.run(["cp", "-r", str(base), str(d)], check=True)
        for path in d.glob(target):
            path.write_bytes(garbage if garbage is not None else path.read_bytes()[: path.stat().st_size // 2])
        cmd = [a.replace("{d}", str(d)) for a in argv]
        where = cmd.index("--resume") + 1 if "--resume" in cmd else 1
        p = run([*L2A, *cmd[:where], str(d), *cmd[where:], "--quiet"])
        out.append(
            (name, f"exit {p.returncode}" + (": " + p.stderr.strip().splitlines()[-1][:160] if p.returncode else ""))
        )
    return out


BAD_VALUES = [
    "planner.mppi.temperature=nan", "planner.mppi.noise_std=nan", "planner.cem.init_std=inf", "planner.icem.noise_beta=nan",
    "adaptation.mixture.lr=nan", "adaptation.mixture.variance=-1", "adaptation.mixture.sticky=inf", "fit.lr=0",
    "fit.grad_clip=-inf", "adaptation.inner_lr=nan", "seed=99999999999999999999", "num_envs=99999999999999999999",
    "model.hidden=100000x100000x100000", "episode_length=2000000000", "planner.num_candidates=0", "planner.horizon=-1",
    "task_space=mass:torso=0.5/1.5", "reward=no.such.module:fn", "termination=learned", "offline=/no/such/file.npz",
    "eval.schedule=bogus", "planner.name=nope", "model.ensemble=0", "adaptation.past=0", "iterations=-1",
    "fit.val_fraction=1.5", "baseline.learning_rate=nan", "planner.particles=0", "model.nll_beta=2", "device=tpu",
]  # fmt: skip


def bad_values(root: Path) -> list[tuple[str, str]]:
    out = []
    for k, value in enumerate(BAD_VALUES):
        d = root / f"bad-{k}"
        p = run([*L2A, "train", "--run-dir", str(d), "--set", value], timeout=120)
        ok = one_line(p, 2) and not d.exists()
        message = p.stderr.strip().splitlines()[-1][:140] if p.stderr.strip() else ""
        out.append(
            (f"--set {value}", ("one line, exit 2, nothing written: " if ok else f"exit {p.returncode}: ") + message)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None, help="scratch directory (default: a temporary one)")
    root = Path(parser.parse_args().out or tempfile.mkdtemp(prefix="hostile-"))
    print("| case | result |\n|---|---|")
    for probe in (kills, signals, corruptions, bad_values):
        for case, result in probe(root):
            print(f"| {case} | {result.replace('|', '/')} |", flush=True)


if __name__ == "__main__":
    main()

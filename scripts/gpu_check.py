"""GPU check: every algorithm trains and evaluates with ``device=cuda``, then the benchmarks run there.

Not part of CI (CI has no GPU). On a machine with a CUDA build of torch, from the repository root:

    .venv/bin/python scripts/gpu_check.py                # a few minutes on one GPU
    .venv/bin/python scripts/gpu_check.py --device cpu   # the same checks on the CPU (slower)

For one MuJoCo family and one classic family, each of mb, mbde, grbal, rebal trains for two
MPC iterations at tiny sizes (random shooting in fp32, plus GrBAL with CEM in bf16) and is
evaluated on one held-out episode; then ``learn2adapt bench --device cuda`` runs. One summary
table at the end; the exit code is 1 if any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

from learn2adapt.adaptation import ALGORITHMS, MODEL_FREE
from learn2adapt.cli import main as cli

FAMILIES = ("learn2adapt/HalfCheetahDisabledJoint-v0", "learn2adapt/PendulumVaried-v0")
TINY = [
    "iterations=2",
    "random_episodes=2",
    "episodes_per_iteration=2",
    "episode_length=60",
    "num_envs=2",
    "model.hidden=64x64",
    "fit.max_epochs=2",
    "planner.horizon=8",
    "planner.num_candidates=200",
    "adaptation.past=8",
    "adaptation.future=8",
    "adaptation.rnn_hidden=32",
    "eval.episodes_per_task=1",
    "eval.episode_length=60",
]
VARIANTS = [(algo, []) for algo in ALGORITHMS if algo not in MODEL_FREE] + [
    ("grbal", ["planner.name=cem", "planner.precision=bf16"])
]


def _quiet(argv: list[str]) -> tuple[int, str]:
    """Run the CLI with its output captured; returns (exit code, last output lines)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = cli(argv)
        except Exception:  # noqa: BLE001  (a crash is a failed check, reported in the table)
            traceback.print_exc()
            code = 1
    return code, "\n".join(out.getvalue().strip().splitlines()[-3:])


def check_runs(device: str, root: Path) -> list[dict[str, object]]:
    rows = []
    for env in FAMILIES:
        for algo, extra in VARIANTS:
            name = f"{env.split('/')[-1]} {algo}" + (" (" + ", ".join(extra) + ")" if extra else "")
            run_dir = root / f"{env.split('/')[-1]}-{algo}-{len(rows)}"
            sets = [a for o in [*TINY, f"device={device}", *extra] for a in ("--set", o)]
            t0 = time.time()
            code, tail = _quiet(
                ["train", "--env", env, "--algo", algo, "--seed", "0", "--run-dir", str(run_dir), "--quiet", *sets]
            )
            train_s = time.time() - t0
            ret = float("nan")
            if code == 0:
                code, tail = _quiet(["eval", str(run_dir), "--quiet", "--episodes", "1"])
                if code == 0:
                    ret = json.loads((run_dir / "eval.json").read_text()).get("mean", float("nan"))
            rows.append(
                {
                    "check": name,
                    "ok": code == 0,
                    "train_s": round(train_s, 1),
                    "return": ret,
                    "error": "" if code == 0 else tail.splitlines()[-1] if tail else "failed",
                }
            )
            print(
                f"{'ok  ' if code == 0 else 'FAIL'} {name}: train {train_s:.1f} s, held-out return {ret:.1f}"
                + ("" if code == 0 else f"\n     {rows[-1]['error']}"),
                flush=True,
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--no-bench", action="store_true", help="skip `learn2adapt bench`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = check_runs(args.device, Path(tmp))
        bench_ok = True
        if not args.no_bench:
            bench_json = Path(tmp) / "bench.json"
            print(f"--- learn2adapt bench --device {args.device}", flush=True)
            bench_ok = cli(["bench", "--device", args.device, "--json", str(bench_json)]) == 0
            if bench_ok:
                figures = json.loads(bench_json.read_text())
                keys = (
                    "processor",
                    "matmul_gflops",
                    "rs_fp32_plan_ms",
                    "rs_bf16_plan_ms",
                    "adapt_plan_ms",
                    "meta_step_ms",
                    "rebal_plan_ms",
                    "paper_run_projected_min",
                    "paper_run_floor_min",
                )
                print("bench summary: " + json.dumps({k: figures.get(k) for k in keys}))
    failed = [r for r in rows if not r["ok"]]
    print(
        f"\nGPU check on {args.device}: {len(rows) - len(failed)}/{len(rows)} train+eval checks passed, "
        f"bench {'ok' if bench_ok else 'FAILED'}"
    )
    return 1 if failed or not bench_ok else 0


if __name__ == "__main__":
    sys.exit(main())

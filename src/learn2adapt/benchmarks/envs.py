"""Per-step time of every learn2adapt family (under a schedule) vs the Gymnasium env it builds on.

Both sides are made with ``gym.make`` (same wrappers: time limit, order enforcing,
passive checker) and stepped with the same random actions, resetting at episode
ends; ours additionally runs inside the task-schedule wrapper (``random:rate=0.01``
by default, so tasks also change during the measurement). Rounds alternate between
the two envs and the median per-step time over rounds is reported, which makes the
figure robust to load from other processes. The simulation runs on the CPU whatever
``--device`` says.

Figures, per family (``<Family>`` = the id without ``learn2adapt/`` and ``-v0``):
``<Family>_us_per_step``, ``<Family>_baseline_us_per_step``, ``<Family>_overhead_pct``;
and ``max_overhead_same_model_pct`` over the families whose simulated model is
Gymnasium's own (target: <= 10%). The terrain and pier families simulate a larger
model (height field; 40 extra bodies) and are reported against plain HalfCheetah-v5
for information.

Run: ``learn2adapt bench --only envs`` (not in the default set; about 25 s on one core), or
``python -m learn2adapt.benchmarks.envs --help`` for options and a table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from learn2adapt.benchmarks.timing import interleaved_median_ms
from learn2adapt.envs import make_env  # importing learn2adapt.envs registers the ids
from learn2adapt.errors import UnknownName

SLIM = {f"include_{t}_in_observation": False for t in ("cinert", "cvel", "qfrc_actuator", "cfrc_ext")}
#: Our id -> (Gymnasium id, its kwargs matching our observation settings, same model?).
BASELINES: dict[str, tuple[str, dict[str, Any], bool]] = {
    "learn2adapt/PendulumVaried-v0": ("Pendulum-v1", {}, True),
    "learn2adapt/CartPoleVaried-v0": ("CartPole-v1", {}, True),
    "learn2adapt/HalfCheetahDisabledJoint-v0": ("HalfCheetah-v5", {}, True),
    "learn2adapt/AntCrippledLeg-v0": ("Ant-v5", {"include_cfrc_ext_in_observation": False}, True),
    "learn2adapt/HalfCheetahSlopes-v0": ("HalfCheetah-v5", {}, False),
    "learn2adapt/HalfCheetahPier-v0": ("HalfCheetah-v5", {}, False),
    "learn2adapt/HalfCheetahMassDamping-v0": ("HalfCheetah-v5", {}, True),
    "learn2adapt/CrippledHalfCheetah-v0": ("HalfCheetah-v5", {}, True),
    "learn2adapt/AntMass-v0": ("Ant-v5", {"include_cfrc_ext_in_observation": False}, True),
    "learn2adapt/SlimHumanoidMassDamping-v0": ("Humanoid-v5", SLIM, True),
    "learn2adapt/HopperMass-v0": ("Hopper-v5", {}, True),
}


def _stepper(env: gym.Env, actions: list[Any], seed: int) -> Callable[[], None]:
    """A function that runs ``len(actions)`` steps (resetting at episode ends)."""
    env.reset(seed=seed)

    def steps() -> None:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()

    return steps


def _short(env_id: str) -> str:
    return env_id.split("/")[-1].rsplit("-v", 1)[0]


def measure(env_id: str, steps: int, rounds: int, schedule: str, seed: int = 0) -> dict[str, Any]:
    """Median per-step time of ``env_id`` (with ``schedule``) and of its baseline, as a table row."""
    base_id, base_kwargs, same_model = BASELINES[env_id]
    ours = make_env(env_id, schedule=schedule)
    ours.unwrapped.set_task(ours.unwrapped.sample_task("train", np.random.default_rng(seed)))
    theirs = gym.make(base_id, **base_kwargs)
    rng = np.random.default_rng(seed)
    space = ours.action_space
    acts = [rng.uniform(space.low, space.high).astype(np.float32) for _ in range(steps)]
    if isinstance(theirs.action_space, gym.spaces.Discrete):  # CartPole-v1: push left/right
        base_acts: list[Any] = [int(a[0] > 0) for a in acts]
    else:
        base_acts = acts
    mt_ms, mo_ms = interleaved_median_ms(
        [_stepper(theirs, base_acts, seed), _stepper(ours, acts, seed)], rounds, warmup=1
    )
    ours.close()
    theirs.close()
    mo, mt = mo_ms * 1e-3 / steps, mt_ms * 1e-3 / steps
    return {
        "id": env_id,
        "baseline": base_id,
        "same_model": same_model,
        "us_per_step": mo * 1e6,
        "baseline_us_per_step": mt * 1e6,
        "overhead_pct": 100.0 * (mo / mt - 1.0),
    }


def measure_all(
    steps: int = 2000, rounds: int = 7, schedule: str = "random:rate=0.01", env_ids: list[str] | None = None
) -> list[dict[str, Any]]:
    """One :func:`measure` row per family of :data:`BASELINES` (or of ``env_ids``)."""
    env_ids = env_ids or list(BASELINES)
    unknown = [e for e in env_ids if e not in BASELINES]
    if unknown:
        raise UnknownName(f"no baseline for {unknown[0]!r}; available: {', '.join(BASELINES)}")
    return [measure(env_id, steps, rounds, schedule) for env_id in env_ids]


def run(
    device: str = "cpu",
    steps: int = 2000,
    rounds: int = 7,
    schedule: str = "random:rate=0.01",
    env_ids: list[str] | None = None,
) -> dict[str, object]:
    """The figures of the module docstring by name (``device`` is accepted and unused: MuJoCo runs on the CPU)."""
    del device
    rows = measure_all(steps, rounds, schedule, env_ids)
    out: dict[str, object] = {"env_schedule": schedule, "env_steps_per_round": steps, "env_rounds": rounds}
    for r in rows:
        short = _short(r["id"])
        out.update({f"{short}_{k}": round(r[k], 2) for k in ("us_per_step", "baseline_us_per_step", "overhead_pct")})
    same = [r["overhead_pct"] for r in rows if r["same_model"]]
    out["max_overhead_same_model_pct"] = round(max(same), 2) if same else float("nan")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps per round")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (median taken)")
    parser.add_argument("--schedule", default="random:rate=0.01", help="task schedule wrapping our envs")
    parser.add_argument("--envs", default=None, help=f"comma-separated subset of: {', '.join(BASELINES)}")
    args = parser.parse_args(argv)
    rows = measure_all(args.steps, args.rounds, args.schedule, args.envs.split(",") if args.envs else None)
    print(f"schedule {args.schedule}, {args.steps} steps x {args.rounds} rounds, median per step")
    print(f"{'environment':42s} {'baseline':15s} {'ours us':>9s} {'base us':>9s} {'overhead':>9s}")
    for r in rows:
        note = "" if r["same_model"] else "  (larger model)"
        print(
            f"{r['id']:42s} {r['baseline']:15s} {r['us_per_step']:9.1f} {r['baseline_us_per_step']:9.1f} "
            f"{r['overhead_pct']:8.1f}%{note}"
        )
    same = [r["overhead_pct"] for r in rows if r["same_model"]]
    if same:
        print(f"max overhead on Gymnasium's own models: {max(same):.1f}% (target <= 10%)")


if __name__ == "__main__":
    main()

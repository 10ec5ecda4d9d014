"""One run evaluated, the oracle evaluated, a run diagnosed: what ``learn2adapt eval``, ``oracle`` and
``diagnose`` do, each made and then written by its caller (who shows the results in between).

An evaluation with the run's own settings joins the run's protocol file ``eval.json`` (which
``compare`` reuses), schedule by schedule; one with test-time changes (another seed, online rule or
test-time option) goes to a file of its own named after them
(:func:`~learn2adapt.evaluation.results.eval_path`), unless an output file is given.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from learn2adapt.envs import short_name
from learn2adapt.errors import ConfigError, RunDirBusy, UserError
from learn2adapt.evaluation.diagnosis import Diagnosis, diagnose
from learn2adapt.evaluation.oracle import OracleRun, check_oracle
from learn2adapt.evaluation.protocol import evaluate
from learn2adapt.evaluation.results import EvalResult, add_to_protocol, eval_path, save_eval
from learn2adapt.experiments.runs import load_any
from learn2adapt.run.config import check_schedule
from learn2adapt.run.resolve import DEFAULT_PRESET, preset_run_config
from learn2adapt.run.run_dir import RunLock, atomic_write_text, check_writable, os_error_message
from learn2adapt.run.state import RunState, with_online_rule


@dataclass
class Evaluation:
    """An evaluation made, not yet written: ``save()`` writes it to ``out``."""

    result: EvalResult
    #: Episodes per test task it ran.
    episodes: int
    out: Path
    #: Join the protocol file ``out`` (other schedules kept) rather than replace it.
    merge: bool = False

    def save(self) -> None:
        """Write the result; an OS error (a full disk) is one line (:class:`UserError`), the file
        left as it was (an atomic write)."""
        write = add_to_protocol if self.merge else save_eval
        try:
            write(self.result, self.out)
        except OSError as e:
            raise UserError(os_error_message(e, f"write {self.out}")) from None


@contextlib.contextmanager
def held_for_evaluation(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock while it is evaluated (:class:`RunDirBusy` while ``train`` writes it).

    A missing run fails first with its own message, before a lock file could create it; a run
    directory that cannot hold a lock file (read-only) is evaluated unlocked, as nothing can write
    it either.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        load_any(run_dir)
    try:
        lock = RunLock(run_dir)
    except RunDirBusy:
        raise
    except UserError:
        yield
        return
    with lock:
        yield


def test_time_changes(seed: int, run_seed: int, online: str | None, sets: Sequence[str]) -> list[str]:
    """What an evaluation changes from the run's own settings (``EvalResult.test_time``): the
    seed, the online rule, the test-time options, in that order."""
    changes = [f"seed={seed}"] if seed != run_seed else []
    return changes + ([f"online={online}"] if online else []) + list(sets)


def evaluate_run(
    run_dir: Path,
    episodes: int | None = None,
    schedule: str | None = None,
    seed: int | None = None,
    online: str | None = None,
    sets: Sequence[str] = (),
    output: Path | None = None,
    progress: bool = True,
) -> Evaluation:
    """Evaluate a trained run on its held-out test tasks (``learn2adapt eval``), not yet written.

    Args:
        episodes, schedule, seed: per test task; default the run's ``eval`` settings and seed.
        online: evaluate with this online rule on the run's meta-trained model (e.g. ``mole``).
        sets: test-time options (``KEY=VALUE``, :data:`~learn2adapt.run.state.TEST_TIME_OPTIONS`).
        output: the results file; default :func:`~learn2adapt.evaluation.results.eval_path`,
            where the run's own evaluation joins ``eval.json``.
    """
    run_dir = Path(run_dir)
    st = load_any(run_dir)
    seed = st.cfg.seed if seed is None else seed
    test_time = test_time_changes(seed, st.cfg.seed, online, sets)
    out = Path(output) if output else eval_path(run_dir, test_time)
    if online or sets:
        if not isinstance(st, RunState):
            raise ConfigError(f"--online / --set: a {st.cfg.algo} run has no model to plan or adapt with")
        st = with_online_rule(st, online or st.cfg.algo, sets)
    check_writable(out.parent)  # before the evaluation, not after it
    if schedule:
        st.cfg.eval.schedule = schedule
    result = evaluate(st, episodes_per_task=episodes, seed=seed, progress=progress)
    result.test_time = test_time
    return Evaluation(result, episodes or st.cfg.eval.episodes_per_task, out, merge=not output)


def oracle_path(env: str, preset: str) -> Path:
    """Where ``learn2adapt oracle`` writes its results when not given a file."""
    return Path("runs") / f"oracle-{short_name(env)}-{preset}.json"


def evaluate_oracle_preset(
    env: str | None = None,
    preset: str | None = None,
    algo: str | None = None,
    sets: Sequence[str] = (),
    schedule: str | None = None,
    episodes: int | None = None,
    seed: int = 0,
    output: Path | None = None,
    progress: bool = True,
) -> Evaluation:
    """MPC with the simulator as its model, planned and evaluated with a preset's settings
    (``learn2adapt oracle``; a MuJoCo family), not yet written (default :func:`oracle_path`)."""
    cfg = preset_run_config(env, preset, algo, sets)
    if schedule:
        check_schedule(schedule)
        cfg.eval.schedule = schedule
    cfg.validate()
    run = OracleRun(cfg)
    out = Path(output) if output else oracle_path(cfg.env, preset or DEFAULT_PRESET)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_writable(out.parent)
    result = evaluate(run, episodes_per_task=episodes, seed=seed, progress=progress, measure_model=False)
    result.algo = "oracle"
    return Evaluation(result, episodes or cfg.eval.episodes_per_task, out)


def diagnose_run(
    run_dir: Path,
    every: int = 10,
    candidates: int | None = None,
    episodes: int = 1,
    schedule: str | None = None,
    seed: int | None = None,
    sets: Sequence[str] = (),
    output: Path | None = None,
    progress: bool = True,
) -> tuple[Diagnosis, Path]:
    """Diagnose a model-based run's planning (``learn2adapt diagnose``) and write it to ``output``
    (default ``RUN_DIR/diagnosis.json``); returns the diagnosis and that file.

    ``candidates`` defaults to the run's planner's, ``seed`` to the run's (the initial states
    ``eval`` uses); ``sets`` are test-time options.
    """
    if schedule:
        check_schedule(schedule)
    st = load_any(Path(run_dir))
    if not isinstance(st, RunState):
        raise ConfigError(f"a {st.cfg.algo} run has no model to diagnose: diagnose a model-based run")
    check_oracle(st.cfg.env)
    if sets:
        st = with_online_rule(st, st.cfg.algo, sets)
    out = Path(output) if output else Path(run_dir) / "diagnosis.json"
    check_writable(out.parent)
    result = diagnose(
        st,
        every=every,
        candidates=candidates or st.cfg.planner.num_candidates,
        episodes_per_task=episodes,
        schedule=schedule,
        seed=st.cfg.seed if seed is None else seed,
        progress=progress,
    )
    atomic_write_text(out, json.dumps(result.to_json(), indent=1))
    return result, out

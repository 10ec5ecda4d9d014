"""Online rules compared on the same meta-trained models (``learn2adapt compare-online``): e.g.
GrBAL's gradient step against MOLe's mixture on a comparison's GrBAL runs.

Every run is evaluated once per (schedule, rule), as ``learn2adapt eval RUN --schedule S --online
RULE --output FILE`` would (:func:`~learn2adapt.experiments.evaluate.evaluate_run`), each into a
file of its own in the output folder, reused when it exists; then the tables of
:mod:`learn2adapt.reporting.online_rules` are written there (``report.md``, ``summary.json``).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from learn2adapt.errors import ConfigError, UserError
from learn2adapt.experiments.evaluate import Evaluation, evaluate_run, held_for_evaluation
from learn2adapt.reporting.online_rules import Results, eval_file, summarise, write_online_report
from learn2adapt.run.config import check_schedule
from learn2adapt.run.options import check_read, read_by


def compare_online_command(
    runs: Sequence[Path],
    schedules: Sequence[str],
    rules: Sequence[str],
    out: Path,
    episodes: int | None,
    sets: Sequence[str],
) -> str:
    """The ``learn2adapt compare-online`` command that makes this comparison (the report's first line)."""
    argv = ["learn2adapt", "compare-online", *map(str, runs)]
    argv += [a for s in schedules for a in ("--schedule", s)] + ["--rules", ",".join(rules)]
    argv += ["--episodes", str(episodes)] if episodes is not None else []
    argv += [a for s in sets for a in ("--set", s)] + ["--out", str(out)]
    return shlex.join(argv)


def evaluate_rules(
    runs: Sequence[Path],
    schedules: Sequence[str],
    rules: Sequence[str],
    out: Path,
    episodes: int | None = None,
    sets: Sequence[str] = (),
    progress: bool = True,
    save: Callable[[Evaluation], None] | None = None,
) -> Results:
    """Every run under every (schedule, rule), evaluating those without a file in ``out`` yet.

    ``sets``: test-time options of every evaluation (e.g. ``adaptation.mixture.lr=0.001``);
    ``save``: writes each new evaluation (default :meth:`Evaluation.save`; a caller may show it first).
    """
    check_read(sets, rules)  # each option must be read by one of the rules; each rule gets what it reads
    results: Results = {}
    for schedule in schedules:
        for rule in rules:
            for run in runs:
                path = eval_file(out, run.name, rule, schedule)
                if not path.exists():
                    if progress:
                        print(f"eval {run.name} --online {rule} --schedule {schedule}", flush=True)
                    with held_for_evaluation(run):  # as `learn2adapt eval` evaluates a run
                        evaluation = evaluate_run(
                            run, episodes, schedule, online=rule, sets=read_by(sets, rule), output=path, progress=False
                        )
                        (save or Evaluation.save)(evaluation)
                results.setdefault(schedule, {}).setdefault(rule, {})[run.name] = json.loads(path.read_text())
    return results


def compare_online_rules(
    runs: Sequence[Path],
    schedules: Sequence[str],
    rules: Sequence[str],
    out: Path,
    episodes: int | None = None,
    sets: Sequence[str] = (),
    progress: bool = True,
    save: Callable[[Evaluation], None] | None = None,
) -> tuple[str, Path]:
    """Evaluate (:func:`evaluate_rules`) and write the report; returns its tables and ``out/report.md``.

    ``rules[0]`` is the reference every other rule is compared with; ``runs`` are meta-trained
    run directories (of GrBAL or MOLe, whose models every rule can drive).
    """
    runs, rules, out = [Path(r) for r in runs], [r.strip() for r in rules if r.strip()], Path(out)
    missing = [str(r) for r in runs if not (r / "config.json").exists()]
    if missing:
        raise UserError(f"not run directories: {', '.join(missing)}")
    if len(rules) < 2:
        raise ConfigError("--rules needs two rules, the first the reference, e.g. --rules grbal,mole")
    if not schedules:
        raise ConfigError("compare-online needs at least one --schedule SPEC")
    for spec in schedules:  # before any evaluation, not after some
        check_schedule(spec)
    out.mkdir(parents=True, exist_ok=True)
    results = evaluate_rules(runs, schedules, rules, out, episodes, sets, progress, save)
    text, summary = summarise(results, rules)
    command = compare_online_command(runs, schedules, rules, out, episodes, sets)
    return text, write_online_report(out, text, summary, command)

"""The MLPerf HPC score of an experiment over system files: per arm and system, its seeds scored
as the rules score a strong-scaling submission (time to train, olympic mean) and as a
weak-scaling one (the seeds the instances: models per minute), from each run's ``mllog.txt``
by :mod:`hpcdl.results.scoring`. Only runs of an MLPerf benchmark have a score.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpcdl import records
from hpcdl.experiments.gather import Measured
from hpcdl.report.compliance import NOT_APPLICABLE, RULESET, Verdict
from hpcdl.results import scoring
from hpcdl.results.logs import LogError, read_log

# The run pages check each log's compliance; the score here is of the logs' times alone.
UNCHECKED = Verdict(NOT_APPLICABLE, ["not checked here: see the run's page"], "", "")


@dataclass(frozen=True)
class Score:
    """One arm on one system: its strong- and weak-scaling scores."""

    arm: str
    point: str
    benchmark: str
    strong: scoring.StrongScore
    weak: scoring.WeakScore

    @property
    def text(self) -> str:
        strong = "no score" if self.strong.minutes is None else f"{self.strong.minutes:.4g} min"
        weak = "no score" if self.weak.models_per_min is None else f"{self.weak.models_per_min:.4g} models/min"
        return (f"{self.arm} on {self.point}: strong scaling {strong} ({self.strong.note}); "
                f"weak scaling {weak} ({self.weak.note}).")


def _checked(m: Measured) -> scoring.Checked:
    path = m.directory / records.MLLOG
    try:
        return scoring.checked(path, read_log(path, RULESET), None, UNCHECKED)
    except LogError as exc:
        return scoring.checked(path, None, str(exc), UNCHECKED)


def scores(measured: list[Measured]) -> list[Score]:
    """A score per arm and system of the runs of an MLPerf benchmark, in the runs' order."""
    groups: dict[tuple[str, str, str], list[Measured]] = {}
    for m in measured:
        if m.benchmark and m.point != f"w{m.world_size}":
            groups.setdefault((m.arm, m.point, m.benchmark), []).append(m)
    out = []
    for (arm, point, benchmark), runs in groups.items():
        checked = [_checked(m) for m in runs]
        out.append(Score(arm, point, benchmark, scoring.strong(checked, benchmark), scoring.weak(checked, benchmark)))
    return out

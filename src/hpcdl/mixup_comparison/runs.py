"""The runs of the MixUp comparison study: :func:`mixup_runs` names the runs the workflow
trains, each a normal data-parallel training (``mixup_<arm>_s<k>``, arm ``none`` or ``a<alpha>``, seed ``train.seed + k``). Every arm runs the
same number of epochs (``stop_at_target`` false), so its curves cover the same span, and
evaluates ``train_eval_samples`` clean training samples each epoch for the train-validation gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SECTION = "mixup_comparison"
NONE = "none"


@dataclass(frozen=True)
class ArmRun:
    """One run of the study: its arm, seed index and settings (train: and classify: sections)."""

    arm: str
    seed_index: int
    alpha: float
    train: dict[str, Any]
    params: dict[str, Any]


def arm_name(alpha: float) -> str:
    """``none`` for alpha 0, else ``a<alpha>`` (``a0.2``)."""
    return NONE if alpha == 0 else f"a{alpha:g}"


def mixup_runs(config: Mapping[str, Any]) -> dict[str, ArmRun]:
    """The study's runs by name; none unless the workload is ``classify``."""
    study = config.get(SECTION) or {}
    if config.get("workload") != "classify" or not study:
        return {}
    alphas = [0.0, *(float(a) for a in study["alphas"] if float(a) != 0)]
    base_train, base_params = dict(config["train"]), dict(config.get("classify") or {})
    runs = {}
    for alpha in alphas:
        for k in range(int(study["seeds"])):
            name = f"mixup_{arm_name(alpha)}_s{k}"
            train = {**base_train, "run_name": name, "seed": int(base_train.get("seed", 0)) + k,
                     "epochs": int(study["epochs"]), "stop_at_target": False,
                     "train_eval_samples": int(study["train_eval_samples"])}
            runs[name] = ArmRun(arm_name(alpha), k, alpha, train, {**base_params, "mixup_alpha": alpha})
    return runs

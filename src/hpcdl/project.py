"""The workflow's view of one config: everything checked while the workflow is parsed, and the
paths, launch lines and resources its rules wire.

``workflow/rules/common.smk`` builds one :class:`Project` and keeps only short input functions
around it, so the workflow names no workload, dataset or experiment: the data plan comes from the
configured workload's registry entry (:mod:`hpcdl.data.stages`), the runs from the engine's
settings (:mod:`hpcdl.train.spec`), :mod:`hpcdl.experiments` and :mod:`hpcdl.sweep`. Every problem
found raises one :class:`ProjectError` whose message names the section, key and value, before any
job is submitted.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcdl import workloads
from hpcdl.data import stages as data_stages
from hpcdl.experiments import runs as experiments
from hpcdl.launch import job_resources, stage_prefix, validate_execution
from hpcdl.preflight import workflow_flags
from hpcdl.sweep import space as sweeps
from hpcdl.systems import SystemConfigError
from hpcdl.train import spec as specs

# LSF arrays hold at most this many elements (profiles/lsf/submit.py); more make more arrays.
LSF_ARRAY_MAX = 1000


class ProjectError(ValueError):
    """A config that cannot make the workflow's jobs; the message says where and why."""


@dataclass(frozen=True)
class SweepLayout:
    """The jobs and done-markers of the config's sweep under ``dir``."""

    sweep: Any  # hpcdl.sweep.space.Sweep
    dir: str
    lsf: bool

    def elements(self, rung: int) -> int:
        """Array elements of a halving rung: sweep.elements, no more than the rung's points."""
        return min(self.sweep.options.elements, sweeps.rung_sizes(self.sweep)[rung])

    def markers(self, rung: int) -> list[str]:
        """Done-markers of rung ``rung``'s jobs: one per SLURM or local array element, one per LSF
        array of up to :data:`LSF_ARRAY_MAX` elements."""
        elements = self.elements(rung)
        if self.lsf:
            return [f"{self.dir}/done/r{rung}_a{a}.json" for a in range(-(-elements // LSF_ARRAY_MAX))]
        return [f"{self.dir}/done/r{rung}_e{e}.json" for e in range(elements)]

    def target(self) -> str:
        """The marker of the whole sweep, or of the array backend's last rung."""
        options = self.sweep.options
        return f"{self.dir}/done/all.json" if options.backend != "array" else f"{self.dir}/done/rung{options.rungs}.json"

    def before(self, rung: int) -> list[str]:
        """An array job's rung is selected from the whole rung before it (one marker, so a rung of
        1,000 elements does not wait on each of the 1,000 before it)."""
        return [f"{self.dir}/done/rung{rung - 1}.json"] if rung > 0 else []

    def lsf_array_size(self, rung: int, array: int) -> int:
        """Elements of LSF array ``array`` of rung ``rung``."""
        return min(LSF_ARRAY_MAX, self.elements(rung) - array * LSF_ARRAY_MAX)


class Project:
    """One config's runs, data and launch settings, checked (:meth:`load`)."""

    def __init__(self, config: Mapping[str, Any], basedir: str, cores: Callable[[], int]) -> None:
        self.config = config
        self.results: str = config["results"]
        self.run: str = config["train"]["run_name"]
        self.execution: Mapping[str, Any] = config["execution"]
        self.local = self.execution.get("scheduler", "local") == "local"
        name = config["workload"]
        try:
            self.data = data_stages.plan(workloads.entry(name).data, name, config)
        except workloads.UnknownWorkload as err:
            raise ProjectError(f"invalid workload in the config: {err.args[0]}") from None
        except data_stages.DataSettingsError as err:
            raise ProjectError(f"invalid data settings in the config:\n{err}") from None
        self.spec = self.checked_spec()
        self.placement = specs.placement(config["train"])
        self.train_launch = self.launch(self.placement.tasks, self.placement.nodes, readonly=[self.data.dir], gpus=True)
        self.preflight = config.get("preflight") or {}
        try:
            self.preflight_flags = workflow_flags(self.preflight, config["train"].get("device", "auto"))
        except ValueError as err:
            raise ProjectError(f"invalid preflight: section in the config:\n{err}") from None
        try:
            self.experiments = experiments.experiments(
                config, os.path.join(basedir, "schemas/system.schema.yaml"), os.getcwd(), self.data.dir)
        except (experiments.ExperimentError, SystemConfigError) as err:
            raise ProjectError(f"invalid experiments: section in the config:\n{err}") from None
        self.experiment_runs = {n: r for e in self.experiments.values() for n, r in e.runs.items()}
        self.experiment_specs = {n: self.checked_spec(r.train, r.where, r.params)
                                 for n, r in self.experiment_runs.items()}
        # On this machine an experiment's run has it to itself: concurrent runs would distort timings.
        # (``cores`` is asked only then: a cluster run may give Snakemake no --cores at all)
        self.experiment_threads = cores() if self.local else 1
        self.sweep = self._sweep()

    @classmethod
    def load(cls, config: Mapping[str, Any], basedir: str, cores: Callable[[], int],
             default_resources: Mapping[str, Any]) -> Project:
        """The checked project of ``config``; a launch setting that cannot work (unknown runtime,
        bad image, missing partition or group, more tasks than the allocation) stops it too."""
        validate_execution(config, dict(default_resources))
        return cls(config, basedir, cores)

    def checked_spec(self, train: Mapping[str, Any] | None = None, where: str = "the config",
                     params: Mapping[str, Any] | None = None) -> specs.RunSpec:
        """A run's settings from the config (``train`` replaces its train: section, ``params`` the
        workload's), cross-field rules included."""
        try:
            return specs.from_config(self.config, train, params)
        except specs.SpecError as err:
            raise ProjectError(f"invalid training settings in {where}:\n{err}") from None

    def _sweep(self) -> SweepLayout | None:
        if "sweep" not in self.config:
            return None
        try:
            sweep = sweeps.build(sweeps.definition(self.config))
        except sweeps.SweepError as err:
            raise ProjectError(f"invalid sweep in the config:\n{err}") from None
        return SweepLayout(sweep, f"{self.results}/sweeps/{sweep.options.name}",
                           self.execution.get("scheduler", "local") == "lsf")

    def launch(self, tasks: int, nodes: int = 1, readonly: list[str] | tuple[str, ...] = (),
               gpus: bool = False) -> str:
        """Launch prefix of a stage of ``tasks`` ranks on ``nodes`` nodes (hpcdl.launch.stage_prefix)."""
        return stage_prefix(self.execution, tasks, nodes, os.getcwd(), self.results, tuple(readonly),
                            self.config["train"].get("staging_dir", ""), gpus)

    def resources(self, tasks: int, nodes: int = 1, gpus: bool = False) -> dict[str, Any]:
        """Scheduler resources of a stage (hpcdl.launch.job_resources)."""
        return job_resources(self.execution, tasks, nodes, gpus)

    def one_rank_resources(self, gpus: bool = False) -> dict[str, Any]:
        """Resources of a one-rank job: one GPU (not the node's) where there are GPUs."""
        resources = self.resources(1, gpus=gpus)
        if "gres" in resources:
            resources["gres"] = "gpu:1"
        return resources

    def run_settings(self, run: str) -> str:
        """JSON settings of ``run``: an experiment run's, or the config's under that name."""
        spec = self.experiment_specs.get(run, self.spec).as_dict()
        spec["train"]["run_name"] = run
        return json.dumps(spec, sort_keys=True)

    def preflight_step(self, run: str) -> str:
        """Shell text running ``hpcdl preflight`` with ``run``'s launcher in its own allocation
        before a multi-rank training (``preflight.enabled``), else nothing."""
        found = self.experiment_runs.get(run)
        tasks = found.resources["tasks"] if found else self.placement.tasks
        if not self.preflight.get("enabled", False) or tasks < 2:
            return ""
        out = Path(self.results, "runs", run, "preflight.json")
        return (f"{found.launch if found else self.train_launch} hpcdl preflight"
                f" --data {shlex.quote(self.data.data_dir)} {self.preflight_flags}"
                f" --out {shlex.quote(str(out))} && ")

    def experiment_arm_args(self, name: str) -> list[str]:
        """``--arm NAME RUN...`` of each arm of experiment ``name``, as a list of words."""
        found = self.experiments[name]
        return [w for arm in found.arms
                for w in ["--arm", arm, *(f"{self.results}/runs/{r}" for r in found.arm_runs(arm))]]

    def experiment_pages(self) -> list[str]:
        """The page of every experiment of the config."""
        if not self.experiments:
            raise ProjectError("experiments: the config has no experiments: section; add one with"
                               " --configfile config/experiments/<name>.yaml")
        return [f"{self.results}/report/experiments/{n}/index.html" for n in self.experiments]

    def sweep_layout(self) -> SweepLayout:
        """The config's sweep; an error when it has none."""
        if self.sweep is None:
            raise ProjectError("sweep: the config has no sweep: section; see config/sweeps/")
        return self.sweep

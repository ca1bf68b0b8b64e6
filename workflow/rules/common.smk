import json
import re
import shlex

from snakemake.utils import min_version, validate

from hpcdl import workloads
from hpcdl.data import stages as data_stages
from hpcdl.launch import job_resources, stage_prefix, validate_execution
from hpcdl.mixup_comparison.runs import mixup_runs
from hpcdl.preflight import workflow_flags as preflight_flags
from hpcdl.study.runs import StudyError, study_runs
from hpcdl.sweep import space as sweeps
from hpcdl.systems import SystemConfigError, scaled_runs
from hpcdl.train import spec as specs

min_version("9.0")

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results"]


wildcard_constraints:
    run="[A-Za-z0-9_.-]+",


def checked_data():
    """The configured workload's data plan (its registry entry's declaration), checked now: a
    bad data setting stops the workflow before any job runs."""
    name = config["workload"]
    try:
        return data_stages.plan(workloads.entry(name).data, name, config)
    except workloads.UnknownWorkload as err:
        raise WorkflowError(f"invalid workload in the config: {err.args[0]}")
    except data_stages.DataSettingsError as err:
        raise WorkflowError(f"invalid data settings in the config:\n{err}")


DATA = checked_data()


def data_dir():
    """Directory of the configured workload's data: <results>/data/<workload>/<source>."""
    return DATA.dir


def training_inputs():
    """The files a training waits for: the data's manifest, its lists, or its re-pack."""
    return list(DATA.inputs)


def training_data(wildcards=None, input=None):
    """The directory ``hpcdl train --data-dir`` reads."""
    return DATA.data_dir


def get_stage_args(stage):
    """Input function: a data stage's arguments for one job, as the JSON of ``hpcdl <command> --json``."""
    return lambda wildcards: json.dumps(stage.args(dict(wildcards.items())))


def get_stage_launch(stage):
    """Launch prefix of a data stage: its ranks under the execution's launcher, or none."""
    return launch(stage.tasks, stage.nodes) if stage.launched else ""


def get_stage_resources(stage):
    """Scheduler resources of a data stage run under the launcher (others take the defaults)."""
    return resources_of(stage.tasks, stage.nodes) if stage.launched else {}


def report_index():
    return f"{RESULTS}/report/index.html"


# Stop on a launch setting that cannot work (unknown runtime, bad image, missing partition or
# group, more tasks than the allocation) before any job is submitted.
validate_execution(
    config,
    {
        name: resource.raw
        for name, resource in (
            workflow.resource_settings.default_resources or {}
        ).items()
    },
)


def launch(tasks, nodes=1, readonly=(), gpus=False):
    """Launch prefix of a stage of ``tasks`` ranks on ``nodes`` nodes (hpcdl.launch.stage_prefix)."""
    return stage_prefix(
        config["execution"],
        tasks,
        nodes,
        os.getcwd(),
        RESULTS,
        tuple(readonly),
        config["train"].get("staging_dir", ""),
        gpus,
    )


def resources_of(tasks, nodes=1, gpus=False):
    """Scheduler resources of a stage (hpcdl.launch.job_resources)."""
    return job_resources(config["execution"], tasks, nodes, gpus)


def checked_spec(train=None, where="the config", params=None):
    """The run's settings from the config (``train`` replaces its train: section, ``params`` the
    workload's), checked now: a bad value or a cross-field rule stops the workflow before any
    job runs."""
    try:
        return specs.from_config(config, train, params)
    except specs.SpecError as err:
        raise WorkflowError(f"invalid training settings in {where}:\n{err}")


SPEC = checked_spec()
PLACEMENT = specs.placement(config["train"])
TRAIN_LAUNCH = launch(
    PLACEMENT.tasks, PLACEMENT.nodes, readonly=[data_dir()], gpus=True
)

PREFLIGHT = config.get("preflight") or {}
try:
    PREFLIGHT_FLAGS = preflight_flags(PREFLIGHT, config["train"].get("device", "auto"))
except ValueError as err:
    raise WorkflowError(f"invalid preflight: section in the config:\n{err}")


def preflight_step(runs=None):
    """Shell text running ``hpcdl preflight`` with a training's launcher in its own allocation,
    before a multi-rank training (``preflight.enabled``), else nothing; ``runs``: the scaling or
    study runs by name, else the configured run."""

    def step(wildcards, input):
        run = runs[wildcards.run] if runs else None
        tasks = run.resources["tasks"] if run else PLACEMENT.tasks
        if not PREFLIGHT.get("enabled", False) or tasks < 2:
            return ""
        out = f"{RESULTS}/runs/{wildcards.run}/preflight.json"
        return (
            f"{run.launch if run else TRAIN_LAUNCH} hpcdl preflight"
            f" --data {shlex.quote(training_data(wildcards, input))} {PREFLIGHT_FLAGS}"
            f" --out {shlex.quote(out)} && "
        )

    return step


SCALED = scaled_runs(
    config,
    os.path.join(workflow.basedir, "schemas/system.schema.yaml"),
    os.getcwd(),
    data_dir(),
)
SCALED_SPECS = {
    run: checked_spec(scaled.train, f"scaling run {run} (config + {scaled.system})")
    for run, scaled in SCALED.items()
}
MIXUP = mixup_runs(config)
MIXUP_SPECS = {
    run: checked_spec(arm.train, f"mixup_comparison run {run}", arm.params)
    for run, arm in MIXUP.items()
}


def checked_study(kind):
    """Runs of the scaling study or comparison (rules/study.smk), checked now."""
    try:
        return study_runs(
            config,
            kind,
            os.path.join(workflow.basedir, "schemas/system.schema.yaml"),
            os.getcwd(),
            data_dir(),
        )
    except (StudyError, SystemConfigError) as err:
        raise WorkflowError(f"invalid study: section in the config:\n{err}")


STUDY = {**checked_study("study"), **checked_study("compare")}
STUDY_SPECS = {
    run: checked_spec(r.train, f"study run {run}", r.params) for run, r in STUDY.items()
}


def study_targets(kind, arm=None):
    """run.json of every run of ``kind`` (of one arm of the comparison)."""
    return [
        f"{RESULTS}/runs/{run}/run.json"
        for run, r in STUDY.items()
        if run.startswith(f"{kind}_") and (arm is None or r.arm == arm)
    ]


def compare_arms(wildcards, input):
    """``--arm NAME RUN...`` of each arm, in the config's order."""
    arms = dict.fromkeys(
        r.arm for run, r in STUDY.items() if run.startswith("compare_")
    )
    return " ".join(
        f"--arm {arm} "
        + " ".join(os.path.dirname(p) for p in study_targets("compare", arm))
        for arm in arms
    )


# On this machine a study run has it to itself: concurrent runs would distort the timings.
STUDY_THREADS = (
    workflow.cores if config["execution"].get("scheduler", "local") == "local" else 1
)


def run_settings(wildcards):
    """JSON settings of run ``wildcards.run``: a scaling run's, or the config's under that name."""
    spec = (
        {**SCALED_SPECS, **MIXUP_SPECS, **STUDY_SPECS}
        .get(wildcards.run, SPEC)
        .as_dict()
    )
    spec["train"]["run_name"] = wildcards.run
    return json.dumps(spec, sort_keys=True)


def scaling_targets(layout):
    """Input function: run.json of every scaling run of ``layout`` (``strong`` or ``weak``)."""
    paths = [
        f"{RESULTS}/runs/{run}/run.json"
        for run in SCALED
        if run.startswith(f"{layout}_")
    ]

    def targets(wildcards):
        if not paths:
            key = (
                "scaling.strong lists no system"
                if layout == "strong"
                else "scaling.weak has no instances"
            )
            raise WorkflowError(f"{layout}_scaling: {key}; see config/README.md")
        return paths

    return targets


def mixup_targets(wildcards):
    """run.json of every run of the MixUp comparison; an error naming what is missing."""
    if not MIXUP:
        raise WorkflowError(
            "mixup_comparison: needs workload classify and a mixup_comparison: section;"
            " see config/README.md"
        )
    return [f"{RESULTS}/runs/{run}/run.json" for run in MIXUP]


def checked_sweep():
    """The config's sweep (every point checked now: an unknown key or a bad value stops the
    workflow before any job runs), or None without a sweep: section."""
    if "sweep" not in config:
        return None
    try:
        return sweeps.build(sweeps.definition(config))
    except sweeps.SweepError as err:
        raise WorkflowError(f"invalid sweep in the config:\n{err}")


SWEEP = checked_sweep()
# LSF arrays hold at most this many elements (profiles/lsf/submit.py); more make more arrays.
LSF_ARRAY_MAX = 1000


def sweep_dir():
    return f"{RESULTS}/sweeps/{SWEEP.options.name}"


def sweep_elements(rung):
    """Array elements of a halving rung: sweep.elements, no more than the rung's points."""
    return min(SWEEP.options.elements, sweeps.rung_sizes(SWEEP)[rung])


def sweep_markers(rung):
    """Done-markers of rung ``rung``'s jobs: one per SLURM or local array element, one per LSF
    array of up to 1000 elements."""
    elements = sweep_elements(rung)
    if config["execution"].get("scheduler", "local") == "lsf":
        arrays = -(-elements // LSF_ARRAY_MAX)
        return [f"{sweep_dir()}/done/r{rung}_a{a}.json" for a in range(arrays)]
    return [f"{sweep_dir()}/done/r{rung}_e{e}.json" for e in range(elements)]


def sweep_targets(wildcards):
    """Input function: the marker of the whole sweep, or of the array backend's last rung."""
    if SWEEP is None:
        raise WorkflowError(
            "sweep: the config has no sweep: section; see config/sweeps/"
        )
    if SWEEP.options.backend != "array":
        return [f"{sweep_dir()}/done/all.json"]
    return [f"{sweep_dir()}/done/rung{SWEEP.options.rungs}.json"]


def sweep_rung_jobs(wildcards):
    """Input function: the array jobs of rung ``wildcards.rung``."""
    return sweep_markers(int(wildcards.rung))


def sweep_rung_inputs(wildcards):
    """An array job's rung can be selected only from the whole rung before it (one marker, so
    a rung of 1,000 elements does not wait on each of the 1,000 before it)."""
    rung = int(wildcards.rung)
    return [f"{sweep_dir()}/done/rung{rung - 1}.json"] if rung > 0 else []


def sweep_lsf_array_size(wildcards):
    """Elements of LSF array ``wildcards.array`` of rung ``wildcards.rung``."""
    elements = sweep_elements(int(wildcards.rung))
    return min(LSF_ARRAY_MAX, elements - int(wildcards.array) * LSF_ARRAY_MAX)


def one_rank_resources(gpus=False):
    """Resources of a one-rank job: one GPU (not the node's) where there are GPUs."""
    resources = resources_of(1, gpus=gpus)
    if "gres" in resources:
        resources["gres"] = "gpu:1"
    return resources

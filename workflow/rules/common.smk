import json
import re
import shlex

from snakemake.utils import min_version

from hpcdl import configcheck, workloads
from hpcdl.data import stages as data_stages
from hpcdl.experiments import runs as experiments
from hpcdl.launch import job_resources, stage_prefix, validate_execution
from hpcdl.preflight import workflow_flags as preflight_flags
from hpcdl.sweep import space as sweeps
from hpcdl.systems import SystemConfigError
from hpcdl.train import spec as specs

min_version("9.0")

# One line per problem, naming the key and the config file that set it (hpcdl.configcheck).
try:
    configcheck.check(
        config,
        os.path.join(workflow.basedir, "schemas/config.schema.yaml"),
        configcheck.sources(
            workflow.configfiles,
            workflow.config_settings.configfiles,
            workflow.config_settings.config,
        ),
        choices={"workload": list(workloads.REGISTRY)},
    )
except configcheck.ConfigError as err:
    raise WorkflowError(str(err))

RESULTS = config["results"]
# The run this config trains by default (train.run_name).
RUN = config["train"]["run_name"]


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
    before a multi-rank training (``preflight.enabled``), else nothing; ``runs``: the experiment
    runs by name, else the configured run."""

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


def checked_experiments():
    """The config's experiments (hpcdl.experiments.runs), every run's settings checked now."""
    try:
        return experiments.experiments(
            config,
            os.path.join(workflow.basedir, "schemas/system.schema.yaml"),
            os.getcwd(),
            data_dir(),
        )
    except (experiments.ExperimentError, SystemConfigError) as err:
        raise WorkflowError(f"invalid experiments: section in the config:\n{err}")


EXPERIMENTS = checked_experiments()
EXPERIMENT_RUNS = {n: r for e in EXPERIMENTS.values() for n, r in e.runs.items()}
EXPERIMENT_SPECS = {
    n: checked_spec(r.train, r.where, r.params) for n, r in EXPERIMENT_RUNS.items()
}
# On this machine an experiment's run has it to itself: concurrent runs would distort the timings.
EXPERIMENT_THREADS = (
    workflow.cores if config["execution"].get("scheduler", "local") == "local" else 1
)


def get_experiment_runs(wildcards):
    """run.json of every run of experiment ``wildcards.name``."""
    return [
        f"{RESULTS}/runs/{run}/run.json" for run in EXPERIMENTS[wildcards.name].runs
    ]


def get_experiment_arms(wildcards, input):
    """``--arm NAME RUN...`` of each arm of experiment ``wildcards.name``, as a list of words."""
    found = EXPERIMENTS[wildcards.name]
    return [
        w
        for arm in found.arms
        for w in ["--arm", arm, *(f"{RESULTS}/runs/{r}" for r in found.arm_runs(arm))]
    ]


def get_experiment_pages(wildcards):
    """The page of every experiment; an error naming what is missing when there is none."""
    if not EXPERIMENTS:
        raise WorkflowError(
            "experiments: the config has no experiments: section; add one with"
            " --configfile config/experiments/<name>.yaml"
        )
    return [f"{RESULTS}/report/experiments/{n}/index.html" for n in EXPERIMENTS]


def run_settings(wildcards):
    """JSON settings of run ``wildcards.run``: an experiment run's, or the config's under that name."""
    spec = EXPERIMENT_SPECS.get(wildcards.run, SPEC).as_dict()
    spec["train"]["run_name"] = wildcards.run
    return json.dumps(spec, sort_keys=True)


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


def refresh_index():
    """Rewrite the index of every run, experiment and sweep under the results directory."""
    if os.path.isdir(f"{RESULTS}/runs"):
        shell(
            "mkdir -p {root:q}/logs/report && hpcdl index {root:q} --output"
            " {root:q}/report/index.html >> {root:q}/logs/report/index.log 2>&1 || true",
            root=RESULTS,
        )

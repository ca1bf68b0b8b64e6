# Wiring only: every check and every path, launch line and resource comes from hpcdl.project.
import json
import re

from snakemake.utils import min_version

from hpcdl import configcheck, workloads
from hpcdl.project import LSF_ARRAY_MAX, Project, ProjectError

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
        sections=workloads.config_sections(),
    )
except configcheck.ConfigError as err:
    raise WorkflowError(str(err))


def checked_project():
    """The config's data, runs, experiments and sweep (hpcdl.project), checked now."""
    try:
        return Project.load(
            config,
            workflow.basedir,
            lambda: workflow.cores,
            {
                name: resource.raw
                for name, resource in (
                    workflow.resource_settings.default_resources or {}
                ).items()
            },
        )
    except ProjectError as err:
        raise WorkflowError(str(err))


P = checked_project()
RESULTS = P.results
# The run this config trains by default (train.run_name).
RUN = P.run
DATA = P.data
PLACEMENT = P.placement
EXPERIMENTS = P.experiments
EXPERIMENT_RUNS = P.experiment_runs
SWEEP = P.sweep


wildcard_constraints:
    run="[A-Za-z0-9_.-]+",


def training_inputs():
    """The files a training waits for: the data's manifest, its lists, or its re-pack."""
    return list(DATA.inputs)


def training_data(wildcards=None, input=None):
    """The directory ``hpcdl train --data-dir`` reads."""
    return DATA.data_dir


def get_stage_args(stage):
    """Input function: a data stage's arguments for one job, as ``hpcdl <command> --json``."""
    return lambda wildcards: json.dumps(stage.args(dict(wildcards.items())))


def get_stage_launch(stage):
    """Launch prefix of a data stage: its ranks under the execution's launcher, or none."""
    return P.launch(stage.tasks, stage.nodes) if stage.launched else ""


def get_stage_resources(stage):
    """Scheduler resources of a data stage run under the launcher (others take the defaults)."""
    return P.resources(stage.tasks, stage.nodes) if stage.launched else {}


def get_run_settings(wildcards):
    return P.run_settings(wildcards.run)


def get_preflight(wildcards):
    return P.preflight_step(wildcards.run)


def get_experiment_pages_of_runs(wildcards):
    """Each run's page (so the index links it), which waits for the run itself."""
    return [f"{RESULTS}/report/{r}.html" for r in EXPERIMENTS[wildcards.name].runs]


def get_experiment_arms(wildcards):
    return P.experiment_arm_args(wildcards.name)


def get_experiment_pages(wildcards):
    try:
        return P.experiment_pages()
    except ProjectError as err:
        raise WorkflowError(str(err))


def get_sweep_target(wildcards):
    try:
        return P.sweep_layout().target()
    except ProjectError as err:
        raise WorkflowError(str(err))


def get_rung_jobs(wildcards):
    return SWEEP.markers(int(wildcards.rung))


def get_rung_before(wildcards):
    return SWEEP.before(int(wildcards.rung))


def refresh_index():
    """Rewrite the index of every run, experiment and sweep under the results directory."""
    if os.path.isdir(f"{RESULTS}/runs"):
        shell(
            "mkdir -p {root:q}/logs/report && hpcdl index {root:q} --output"
            " {root:q}/report/index.html >> {root:q}/logs/report/index.log 2>&1 || true",
            root=RESULTS,
        )

import json
import re

from snakemake.utils import min_version, validate

from hpcdl.launch import job_resources, stage_prefix, validate_execution
from hpcdl.systems import scaled_runs
from hpcdl.train import spec as specs

min_version("9.0")

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results"]
WORKLOAD = config["workload"]
SOURCE = config["dataset"]["source"]
SPLITS = ["train", "validation"]
# stage_compressed stages from the gzip TFRecord re-pack instead of the .npy pairs.
TRAIN_FORMAT = "gzip" if config["train"].get("stage_compressed") else "npy"


wildcard_constraints:
    source="synth|download",
    fmt="npy|gzip",
    split="train|validation",
    run="[A-Za-z0-9_.-]+",


def data_dir(source=SOURCE):
    """Directory holding the workload's raw dataset (train/ and validation/)."""
    return f"{RESULTS}/data/{WORKLOAD}/{source}"


def converted_dir(fmt="npy", source=SOURCE):
    """Directory of the converted dataset in format ``fmt`` (one sub-directory per split)."""
    return f"{data_dir(source)}/{fmt}"


def training_inputs():
    """What a training run reads: the file lists, or the re-pack it stages from."""
    if TRAIN_FORMAT == "gzip":
        return expand(
            "{dir}/{split}/convert.json", dir=converted_dir("gzip"), split=SPLITS
        )
    return expand(
        "{dir}/{split}/files_{kind}.lst",
        dir=converted_dir(),
        split=SPLITS,
        kind=["data", "label"],
    )


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


def checked_spec(train=None, where="the config"):
    """The run's settings from the config (``train`` replaces its train: section), checked now:
    a bad value or a cross-field rule stops the workflow before any job runs."""
    try:
        return specs.from_config(config, train)
    except specs.SpecError as err:
        raise WorkflowError(f"invalid training settings in {where}:\n{err}")


SPEC = checked_spec()
PLACEMENT = specs.placement(config["train"])
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


def run_settings(wildcards):
    """JSON settings of run ``wildcards.run``: a scaling run's, or the config's under that name."""
    spec = SCALED_SPECS.get(wildcards.run, SPEC).as_dict()
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

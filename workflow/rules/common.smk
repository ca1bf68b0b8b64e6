import json
import re

from snakemake.utils import min_version, validate

from hpcdl.launch import job_resources, stage_prefix, validate_execution
from hpcdl.mixup_comparison.runs import mixup_runs
from hpcdl.systems import scaled_runs
from hpcdl.train import spec as specs

min_version("9.0")

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results"]
WORKLOAD = config["workload"]
SOURCE = config["dataset"]["source"]
# The image dataset of the classify workload (hpcdl.arrays registers the names).
IMAGES = config.get("images", {}).get("dataset", "fashion-mnist")
SPLITS = ["train", "validation"]
# stage_compressed stages from the gzip TFRecord re-pack instead of the .npy pairs.
TRAIN_FORMAT = "gzip" if config["train"].get("stage_compressed") else "npy"


wildcard_constraints:
    source="synth|download",
    dataset="fashion-mnist|mnist|cifar10|csv",
    fmt="npy|gzip",
    split="train|validation",
    run="[A-Za-z0-9_.-]+",


def data_dir(source=SOURCE):
    """Directory holding the workload's dataset: CosmoFlow's raw train/ and validation/ with
    their conversions, or an image dataset's fetched files and arrays."""
    return f"{RESULTS}/data/{WORKLOAD}/{IMAGES if WORKLOAD == 'classify' else source}"


def arrays_dir(dataset=IMAGES):
    """Directory of an image dataset's arrays (train/, validation/, test/, manifest.json)."""
    return f"{RESULTS}/data/classify/{dataset}/arrays"


def converted_dir(fmt="npy", source=SOURCE):
    """Directory of the converted dataset in format ``fmt`` (one sub-directory per split)."""
    return f"{data_dir(source)}/{fmt}"


def training_inputs():
    """What a training run reads: the arrays' manifest, the file lists, or the re-pack it
    stages from."""
    if WORKLOAD == "classify":
        return [f"{arrays_dir()}/manifest.json"]
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


def training_data(wildcards, input):
    """The directory ``hpcdl train --data-dir`` reads: the arrays' (the manifest's folder), or the
    converted dataset's (above a split's folder)."""
    first = input.data[0]
    if WORKLOAD == "classify":
        return os.path.dirname(first)
    return os.path.dirname(os.path.dirname(first))


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


def run_settings(wildcards):
    """JSON settings of run ``wildcards.run``: a scaling run's, or the config's under that name."""
    spec = {**SCALED_SPECS, **MIXUP_SPECS}.get(wildcards.run, SPEC).as_dict()
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


def image_download(dataset, file):
    """The images.downloads entry of ``file`` of ``dataset`` (url, sha256, size)."""
    for entry in config["images"]["downloads"].get(dataset, []):
        if os.path.basename(entry["url"]) == file:
            return entry
    raise WorkflowError(f"images.downloads.{dataset} lists no URL ending in {file}")


def download_checks(entry):
    """``--sha256``/``--size`` flags of the checks an images.downloads entry pins."""
    return " ".join(
        f"--{key} {entry[key]}" for key in ("sha256", "size") if entry.get(key)
    )


def image_sources(wildcards):
    """The files ``hpcdl arrays`` reads for ``wildcards.dataset``."""
    images = config["images"]
    if wildcards.dataset == "fashion-mnist":
        folder = images["fashion_mnist_dir"]
        return (
            [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
            if os.path.isdir(folder)
            else [folder]
        )
    if wildcards.dataset == "csv":
        return [p for p in (images["csv"]["train"], images["csv"].get("test", "")) if p]
    return [
        f"{RESULTS}/data/classify/{wildcards.dataset}/raw/{os.path.basename(e['url'])}"
        for e in images["downloads"].get(wildcards.dataset, [])
    ]


def image_source_arg(wildcards, input):
    """The INPUT argument of ``hpcdl arrays``: the IDX folder, the tarball or the training CSV."""
    if wildcards.dataset in ("fashion-mnist", "mnist"):
        return os.path.dirname(input.sources[0])
    return input.sources[0]


def image_options(wildcards, input):
    """``hpcdl arrays`` flags from the images: section."""
    images = config["images"]
    flags = [
        f"--{key.replace('_', '-')} {images[key]}"
        for key in (
            "validation_fraction",
            "split_seed",
            "train_samples",
            "test_samples",
        )
    ]
    if wildcards.dataset == "csv" and len(input.sources) > 1:
        flags.append(f"--test {input.sources[1]}")
    return " ".join(flags)


def mixup_targets(wildcards):
    """run.json of every run of the MixUp comparison; an error naming what is missing."""
    if not MIXUP:
        raise WorkflowError(
            "mixup_comparison: needs workload classify and a mixup_comparison: section;"
            " see config/README.md"
        )
    return [f"{RESULTS}/runs/{run}/run.json" for run in MIXUP]

import json
import re
import shlex

from snakemake.utils import min_version

from hpcdl import configcheck
from hpcdl.launch import job_resources, stage_prefix, validate_execution
from hpcdl.mixup_comparison.runs import mixup_runs
from hpcdl.preflight import workflow_flags as preflight_flags
from hpcdl.study.runs import StudyError, study_runs
from hpcdl.sweep import space as sweeps
from hpcdl.systems import SystemConfigError, scaled_runs
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
    )
except configcheck.ConfigError as err:
    raise WorkflowError(str(err))

RESULTS = config["results"]
WORKLOAD = config["workload"]
SOURCE = config["dataset"]["source"]
# The image dataset of the classify workload (hpcdl.arrays registers the names).
IMAGES = config.get("images", {}).get("dataset", "fashion-mnist")
# The data of the segment workload (rules/segment.smk): cells | download | folder.
SEGMENT_SOURCE = config.get("segment_data", {}).get("source", "cells")
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
    if WORKLOAD == "segment":
        return f"{RESULTS}/data/segment/{SEGMENT_SOURCE}"
    return f"{RESULTS}/data/{WORKLOAD}/{IMAGES if WORKLOAD == 'classify' else source}"


def arrays_dir(dataset=IMAGES):
    """Directory of an image dataset's arrays (train/, validation/, test/, manifest.json)."""
    return f"{RESULTS}/data/classify/{dataset}/arrays"


def segment_arrays_dir():
    """Directory of the segment workload's arrays: hpcdl cells' output, or hpcdl masks'."""
    return data_dir() if SEGMENT_SOURCE == "cells" else f"{data_dir()}/arrays"


def converted_dir(fmt="npy", source=SOURCE):
    """Directory of the converted dataset in format ``fmt`` (one sub-directory per split)."""
    return f"{data_dir(source)}/{fmt}"


def training_inputs():
    """What a training run reads: the arrays' manifest, the file lists, or the re-pack it
    stages from."""
    if WORKLOAD == "classify":
        return [f"{arrays_dir()}/manifest.json"]
    if WORKLOAD == "segment":
        return [f"{segment_arrays_dir()}/manifest.json"]
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
    if WORKLOAD in ("classify", "segment"):
        return os.path.dirname(first)
    return os.path.dirname(os.path.dirname(first))


# Array jobs the conversion of each split is first spread over (0: none).
CONVERT_ELEMENTS = config["convert"].get("elements", 0)


def convert_elements(wildcards):
    """Input function: the done-markers of a split's convert_element jobs."""
    return [
        f"{RESULTS}/data/cosmoflow/{wildcards.source}/{wildcards.fmt}/{wildcards.split}_elements/e{e}.json"
        for e in range(CONVERT_ELEMENTS)
    ]


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


# The segment workload's data options (rules/segment.smk).
def segment_data():
    """The segment_data: section (empty when the config has none)."""
    return config.get("segment_data", {})


if (
    WORKLOAD == "segment"
    and SEGMENT_SOURCE == "download"
    and not segment_data().get("download", {}).get("url")
):
    raise WorkflowError(
        "invalid segment_data: section in the config:\nsegment_data.download.url:"
        " segment_data.source download needs the archive's url (and its sha256 and size)"
    )


def cells_options(wildcards):
    """``hpcdl cells`` flags from segment_data.cells."""
    cells = segment_data().get("cells", {})
    flags = [
        f"--{key} {cells[key]}"
        for key in ("size", "train", "validation", "test", "seed")
        if key in cells
    ]
    return " ".join(flags + (["--nuclei"] if cells.get("nuclei") else []))


def masks_source(wildcards):
    """The folder ``hpcdl masks`` reads: the extracted archive, or the configured folder."""
    if wildcards.origin == "download":
        return f"{RESULTS}/data/segment/download/raw"
    return segment_data().get("folder", "")


def masks_inputs(wildcards):
    """What ``hpcdl masks`` waits for: the download's done-marker, or the folder itself."""
    if wildcards.origin == "download":
        return [f"{masks_source(wildcards)}/manifest.json"]
    return [masks_source(wildcards)]


def masks_options(wildcards):
    """``hpcdl masks`` flags from segment_data."""
    data = segment_data()
    flags = [f"--classes {','.join(data.get('classes', ['background', 'foreground']))}"]
    flags += [
        f"--{key.replace('_', '-')} {data[key]}"
        for key in ("validation_fraction", "split_seed")
        if key in data
    ]
    return " ".join(flags)

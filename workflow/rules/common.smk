from dataclasses import replace

from snakemake.utils import validate

from hpcdl.launch import Launch, launch_prefix, validate_execution

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results"]
SOURCE = config["dataset"]["source"]
SPLITS = ["train", "validation"]


wildcard_constraints:
    source="synth|download",
    fmt="npy|gzip",
    split="train|validation",
    run="[A-Za-z0-9_.-]+",


def data_dir(source=SOURCE):
    """Directory holding the raw TFRecord dataset (train/ and validation/)."""
    return f"{RESULTS}/data/{source}"


def converted_dir(fmt="npy", source=SOURCE):
    """Directory of the converted dataset in format ``fmt`` (one sub-directory per split)."""
    return f"{data_dir(source)}/{fmt}"


def training_lists():
    """The file lists a training run reads, for both splits."""
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
    """Command prefix that starts ``tasks`` processes of a parallel stage on ``nodes`` nodes.

    ``gpus``: one GPU per task (training); conversion runs on CPUs only.
    In a container the working directory is mounted read-write at the same path (results stay
    where the workflow expects them), ``readonly`` directories on top of it read-only, and the
    node-local staging directory when training stages its data.
    """
    cwd = os.getcwd()
    mounts = [f"{cwd}:{cwd}"]
    mounts += [f"{os.path.abspath(d)}:{os.path.abspath(d)}:ro" for d in readonly]
    if config["train"].get("staging_dir"):
        mounts.append(
            f"{config['train']['staging_dir']}:{config['train']['staging_dir']}"
        )
    spec = Launch.from_config(config["execution"], tasks, nodes, tuple(mounts))
    return launch_prefix(spec if gpus else replace(spec, gpus_per_node=0))


def parallel_resources(tasks, nodes=1, gpus=False):
    """Scheduler resources of a job that runs ``tasks`` ranks on ``nodes`` nodes.

    ``mpi`` marks the job as one that starts its own ranks (the SLURM executor then leaves the
    shell line alone instead of wrapping it in ``srun -n1``); ``tasks_per_gpu`` stops it from
    asking for ``tasks`` ranks per GPU.
    """
    execution = config["execution"]
    resources = {"tasks": tasks, "nodes": nodes}
    if tasks > 1 and execution["launcher"] != "none":
        resources["mpi"] = execution["launcher"]
    if gpus and execution.get("gpus_per_node", 0):
        resources.update(gres=f"gpu:{execution['gpus_per_node']}", tasks_per_gpu=1)
    return resources


# Flags of `hpcdl train` taken from the `train:` config section (key -> flag).
TRAIN_FLAGS = [
    "seed",
    "batch_size",
    "epochs",
    "target_mae",
    "initial_lr",
    "base_lr",
    "warmup_epochs",
    "lr_scheduler_epochs",
    "lr_scheduler_decays",
    "dropout",
    "weight_decay",
    "staging_dir",
]


def train_args(cfg):
    """Render the `train:` config section as `hpcdl train` command-line flags."""
    args = []
    for key in TRAIN_FLAGS:
        value = cfg.get(key)
        if value is None or value == "":
            continue
        values = value if isinstance(value, list) else [value]
        args.append(f"--{key.replace('_', '-')} " + " ".join(str(v) for v in values))
    if cfg.get("shuffle"):
        args.append("--shuffle")
    return " ".join(args)

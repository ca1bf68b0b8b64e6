import re
from dataclasses import replace

from snakemake.utils import validate

from hpcdl.launch import Launch, LaunchError, launch_prefix, validate_execution
from hpcdl.systems import load_system, run_layout, run_train_config, scaling_runs

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


def launch(tasks, nodes=1, readonly=(), gpus=False, execution=None, staging_dir=None):
    """Command prefix that starts ``tasks`` processes of a parallel stage on ``nodes`` nodes.

    ``gpus``: one GPU per task (training); conversion runs on CPUs only.
    In a container the working directory and the results directory are mounted read-write at
    the same paths (outputs land where the workflow expects them), ``readonly`` directories on top of it read-only, and the
    node-local staging directory when training stages its data. ``execution`` and
    ``staging_dir`` replace the config's for a run on another system (scaling runs).
    """
    execution = config["execution"] if execution is None else execution
    if staging_dir is None:
        staging_dir = config["train"].get("staging_dir")
    cwd = os.getcwd()
    mounts = [f"{cwd}:{cwd}"]
    # Results outside the working directory (e.g. on scratch) must be visible at the same path.
    results = os.path.abspath(RESULTS)
    if os.path.commonpath([cwd, results]) != cwd:
        mounts.append(f"{results}:{results}")
    mounts += [f"{os.path.abspath(d)}:{os.path.abspath(d)}:ro" for d in readonly]
    if staging_dir:
        mounts.append(f"{staging_dir}:{staging_dir}")
    spec = Launch.from_config(execution, tasks, nodes, tuple(mounts))
    return launch_prefix(spec if gpus else replace(spec, gpus_per_node=0))


def parallel_resources(tasks, nodes=1, gpus=False, execution=None):
    """Scheduler resources of a job that runs ``tasks`` ranks on ``nodes`` nodes.

    ``mpi`` marks the job as one that starts its own ranks (the SLURM executor then leaves the
    shell line alone instead of wrapping it in ``srun -n1``); ``tasks_per_gpu`` stops it from
    asking for ``tasks`` ranks per GPU. ``execution`` replaces the config's (scaling runs).
    """
    execution = config["execution"] if execution is None else execution
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


def scaled_runs(scaling):
    """Every run of the ``scaling:`` config section: name -> train flags, launch prefix, resources.

    Built while the workflow is parsed, so an unknown or inconsistent system, or a layout the
    launcher cannot start, stops the workflow before any job is submitted. Each run takes the
    system's nodes, ranks, batch, learning rates, staging directory, GPUs and walltime.
    """
    directory = scaling.get("systems_dir", "config/systems")
    schema = os.path.join(workflow.basedir, "schemas/system.schema.yaml")
    systems = {}
    runs = {}
    for run, (name, offset) in scaling_runs(scaling).items():
        if name not in systems:
            systems[name] = load_system(name, directory, schema)
        system = systems[name]
        seed = config["train"]["seed"] + offset
        train = run_train_config(config["train"], system, seed)
        tasks, nodes, execution = run_layout(config["execution"], system)
        resources = parallel_resources(tasks, nodes, gpus=True, execution=execution)
        try:
            prefix = launch(
                tasks,
                nodes,
                readonly=[data_dir()],
                gpus=True,
                execution=execution,
                staging_dir=train.get("staging_dir"),
            )
        except LaunchError as err:
            raise LaunchError(f"{directory}/{name}.yaml: {err}") from None
        runs[run] = {
            "args": train_args(train),
            "launch": prefix,
            "resources": {**resources, "runtime": system["walltime"]},
        }
    return runs


def scaling_targets(runs, layout):
    """Input function: run.json of every scaling run of ``layout`` (``strong`` or ``weak``)."""
    paths = [
        f"{RESULTS}/runs/{run}/run.json" for run in runs if run.startswith(f"{layout}_")
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

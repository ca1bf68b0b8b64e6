from snakemake.utils import validate

from hpcdl.launch import launch_prefix

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


def launch(tasks):
    """Command prefix that starts ``tasks`` processes of a parallel stage."""
    return launch_prefix(config["execution"]["launcher"], tasks)


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

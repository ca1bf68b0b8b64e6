"""The CosmoFlow workload's data, declared without torch: embedded synthetic universes (``hpcdl
synth``) or the real dataset's tarball (``hpcdl download``), as TFRecords per split, converted to
``.npy`` pairs with their file lists (``hpcdl convert``, ``hpcdl lists``) or re-packed as gzip
TFRecords (``train.stage_compressed``). ``convert.elements`` > 0 first spreads each split's
conversion over that many one-task jobs (one SLURM array); the whole conversion after them finds
every file converted, cleans up and writes the summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpcdl import settings
from hpcdl.data.stages import DataDecl, DataPlan, DataSettingsError, Download, Stage
from hpcdl.settings import setting

SPLITS = ("train", "validation")
WILDCARDS = {"fmt": "npy|gzip", "split": "|".join(SPLITS)}


@dataclass(frozen=True)
class DatasetSettings:
    """Where the CosmoFlow data comes from; the download: section is read for source download."""

    source: str = setting("synth", "synth: embedded synthetic universes (synth:); download: the real dataset"
                          " tarball (download:)", choices=("synth", "download"))


@dataclass(frozen=True)
class SynthSettings:
    """The synthetic universes of source synth (hpcdl synth)."""

    crop_size: int = setting(32, "side length n of each n³×4 crop (the model needs a multiple of 32)", minimum=8)
    train: int = setting(512, "training universes (one TFRecord file each)", minimum=1)
    validation: int = setting(128, "validation universes", minimum=1)
    seed: int = setting(1234, "seed; the same seed gives byte-identical files", minimum=0)
    workers: int = setting(1, "local processes generating files (also the job's threads)", minimum=1)


@dataclass(frozen=True)
class ConvertSettings:
    """The conversion of each split's TFRecords to .npy pairs or gzip TFRecords (hpcdl convert)."""

    tasks: int = setting(1, "MPI ranks of each split's conversion job (mpirun -np N locally, srun tasks on SLURM)", minimum=1)
    nodes: int = setting(1, "nodes the conversion job spreads its ranks over on a cluster", minimum=1)
    elements: int = setting(0, "one-task array jobs that first convert a byte-balanced share of each split's files each, side"
                            " by side (SLURM: --slurm-array-jobs convert_element makes them one array); the conversion job"
                            " after them finds every file converted (0: none)",
                            minimum=0)


def plan(root: str, sections: Mapping[str, Any], train: Mapping[str, Any]) -> DataPlan:
    """Source -> TFRecords per split -> .npy pairs and lists (or the gzip re-pack)."""
    source = sections["dataset"].source
    d = f"{root}/{source}"
    manifest = f"{d}/manifest.json"
    if source == "synth":
        synth = sections["synth"]
        first = Stage("synth", "synth", {"manifest": manifest}, lambda w: {"out": d, **settings.as_dict(synth)},
                      threads=synth.workers)
    else:
        download = sections["download"]
        if not download.url:
            raise DataSettingsError(["download.url: dataset.source download needs the tarball's url"])
        first = Stage("download", "download", {"manifest": manifest}, lambda w: {**download.args(), "out": d})
    convert = sections["convert"]

    def converting(w: Mapping[str, str]) -> dict[str, Any]:
        return {"input_dir": f"{d}/{w['split']}", "output_dir": f"{d}/{w['fmt']}/{w['split']}", "to": w["fmt"]}

    element = f"{d}/{{fmt}}/{{split}}_elements/e{{element}}.json"
    summary = f"{d}/{{fmt}}/{{split}}/convert.json"
    stages = [first]
    if convert.elements:
        stages.append(Stage(
            "convert_element", "convert", {"summary": element},
            lambda w: {**converting(w), "element": int(w["element"]), "elements": convert.elements,
                       "summary": element.format(**w)},
            inputs=(manifest,), wildcards={**WILDCARDS, "element": r"\d+"}, launched=True))
    elements = tuple(f"{d}/{{fmt}}/{{split}}_elements/e{e}.json" for e in range(convert.elements))
    stages.append(Stage(
        "convert", "convert", {"summary": summary}, lambda w: {**converting(w), "summary": summary.format(**w)},
        inputs=(manifest, *elements), wildcards=WILDCARDS, launched=True, tasks=convert.tasks, nodes=convert.nodes))
    lists = {kind: f"{d}/npy/{{split}}/files_{kind}.lst" for kind in ("data", "label")}
    stages.append(Stage("lists", "lists", lists, lambda w: {"directory": f"{d}/npy/{w['split']}"},
                        inputs=(f"{d}/npy/{{split}}/convert.json",), wildcards={"split": WILDCARDS["split"]}))
    # stage_compressed stages from the gzip TFRecord re-pack instead of the .npy pairs.
    fmt = "gzip" if train.get("stage_compressed") else "npy"
    if fmt == "gzip":
        inputs = tuple(f"{d}/gzip/{split}/convert.json" for split in SPLITS)
    else:
        inputs = tuple(f"{d}/npy/{split}/files_{kind}.lst" for split in SPLITS for kind in ("data", "label"))
    return DataPlan(d, inputs, f"{d}/{fmt}", tuple(stages))


DATA = DataDecl({"dataset": DatasetSettings, "synth": SynthSettings, "download": Download,
                 "convert": ConvertSettings}, plan)

"""The segment workload's data, declared without torch: per-split image and mask arrays from
synthetic fluorescence microscopy with exact masks (``hpcdl cells``, the embedded default, no
network), or PNG/TIFF images and masks converted by ``hpcdl masks`` from a downloaded archive
(``hpcdl download``: resumable, size and SHA-256 pinned) or from a local folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpcdl import settings
from hpcdl.data.stages import DataDecl, DataPlan, Download, Stage, needs
from hpcdl.settings import Namer, setting


@dataclass(frozen=True)
class CellsSettings:
    """Synthetic fluorescence microscopy with exact masks (hpcdl cells); the same seed gives byte-identical arrays."""

    size: int = setting(64, "image side in pixels", minimum=16)
    train: int = setting(512, "training images", minimum=1)
    validation: int = setting(128, "validation images", minimum=1)
    test: int = setting(128, "test images", minimum=0)
    seed: int = setting(0, "random seed", minimum=0)
    nuclei: bool = setting(False, "cells with a brighter nucleus: classes background, cell, nucleus")


@dataclass(frozen=True)
class SegmentDataSettings:
    """The data of the segment workload and how it is split."""

    source: str = setting("cells", "cells: embedded synthetic microscopy (segment_data.cells); download: an archive"
                          " of train/ and validation/, each with images/ and masks/ (segment_data.download); folder:"
                          " a local folder with images/ and masks/ (or those splits)",
                          choices=("cells", "download", "folder"))
    cells: CellsSettings = setting(CellsSettings(), "the synthetic images of source cells")
    download: Download = setting(Download(), "an archive (.tar, .tar.gz) holding train/ and validation/ (optionally test/), each with images/ and masks/, fetched and extracted by hpcdl download into <data>/raw/")
    folder: str = setting("", "a local folder with images/ and masks/ (PNG or TIFF, paired by file stem), or with those split folders")
    classes: tuple[str, ...] = setting(("background", "foreground"), "class names, background first: mask value i"
                                       " is class i (0 and 255 in a two-class mask are 0 and 1)", pattern="[^,]+")
    validation_fraction: float = setting(0.1, "share carved out for validation where the data has no"
                                         " validation split (seeded)", exclusive_minimum=0, exclusive_maximum=1)
    split_seed: int = setting(0, "seed of that carve", minimum=0)

    def cross_errors(self, namer: Namer) -> list[str]:
        found = [] if len(set(self.classes)) == len(self.classes) >= 2 else [
            f"{namer('classes')}: needs at least two distinct names, got {list(self.classes)}"]
        if self.source == "download":
            found += needs(self.download.url, "download.url", "segment_data.source download needs the archive's"
                           " url (and its sha256 and size)", namer)
        if self.source == "folder":
            found += needs(self.folder, "folder", "segment_data.source folder needs the folder", namer)
        return found


def plan(root: str, sections: Mapping[str, Any], train: Mapping[str, Any]) -> DataPlan:
    """cells, or (download ->) masks."""
    data = sections["segment_data"]
    d = f"{root}/{data.source}"
    if data.source == "cells":
        stage = Stage("cells", "cells", {"manifest": f"{d}/manifest.json"},
                      lambda w: {"out": d, **settings.as_dict(data.cells)})
        return DataPlan(d, (f"{d}/manifest.json",), d, (stage,))
    stages = []
    if data.source == "download":
        src = f"{d}/raw"
        stages.append(Stage("download", "download", {"manifest": f"{src}/manifest.json"},
                            lambda w: {**data.download.args(), "out": src}))
        inputs: tuple[str, ...] = (f"{src}/manifest.json",)
    else:
        src = data.folder
        inputs = (src,)
    out = f"{d}/arrays"
    stages.append(Stage("masks", "masks", {"manifest": f"{out}/manifest.json"},
                        lambda w: {"src": src, "out": out, "classes": ",".join(data.classes),
                                   "validation_fraction": data.validation_fraction, "split_seed": data.split_seed},
                        inputs=inputs))
    return DataPlan(d, (f"{out}/manifest.json",), out, tuple(stages))


DATA = DataDecl({"segment_data": SegmentDataSettings}, plan)

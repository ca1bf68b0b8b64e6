"""Container images of the pipeline: the Apptainer recipe, enroot import and Apptainer runs.

``hpcdl container recipe``  regenerates ``containers/hpcdl.def`` from ``containers/Dockerfile``
                            with spython (``--check``: only report drift, as a diff);
``hpcdl container import``  turns a registry image into a squashfs file for pyxis
                            (``enroot import``), written under a temporary name and renamed.

Apptainer runs need no command of their own: the apptainer runtime of :mod:`hpcdl.launch`
prefixes each rank with ``apptainer exec``.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hpcdl.atomic import TMP_PREFIX, write_text
from hpcdl.launch import LaunchError, check_image, enroot_ref

# Flag defaults, relative to the repository root where the command is run (like snakemake).
DOCKERFILE = Path("containers/Dockerfile")
DEFFILE = Path("containers/hpcdl.def")
# `apptainer run IMAGE ARGS` runs `hpcdl ARGS`; Docker's CMD only prints the usage, so that LSF
# and pyxis, which pass their own command, are never wrapped by an entrypoint.
RUNSCRIPT = "hpcdl"
HEADER = """\
# Apptainer recipe of the hpcdl image. GENERATED from containers/Dockerfile by spython; do not
# edit by hand. Regenerate after changing the Dockerfile (tests fail while the two differ):
#   hpcdl container recipe
# Build from the repository root (the %files sources are relative to it):
#   apptainer build hpcdl.sif containers/hpcdl.def
"""


class ContainerError(RuntimeError):
    """A container operation that cannot run; the message names the tool or file and why."""


def render_recipe(dockerfile: Path) -> str:
    """The Apptainer definition spython derives from ``dockerfile``, with the header above.

    Two adjustments keep the result buildable: labels become Apptainer's ``KEY value`` lines
    (spython copies Docker's ``KEY=value``, which Apptainer would read as a key with no value),
    and the runscript is ``exec hpcdl "$@"`` rather than spython's ``/bin/bash`` + CMD.
    """
    from spython.main.parse.parsers import DockerParser
    from spython.main.parse.writers import SingularityWriter

    dockerfile = Path(dockerfile).resolve()
    if not dockerfile.is_file():
        raise ContainerError(f"{dockerfile}: Dockerfile not found")
    # spython checks COPY sources against the working directory: make it the build context.
    with contextlib.chdir(dockerfile.parent.parent):
        parser = DockerParser(str(dockerfile))
    for layer in parser.recipe.values():
        layer.labels = [_apptainer_label(token) for label in layer.labels for token in label]
    body = SingularityWriter(parser.recipe).convert(runscript=RUNSCRIPT, force=True)
    return HEADER + body.strip("\n") + "\n"


def _apptainer_label(token: str) -> list[str]:
    key, _, value = token.partition("=")
    return [key, " ".join(shlex.split(value))]


def recipe_drift(committed: Path, dockerfile: Path) -> str:
    """A unified diff from ``committed`` to the freshly generated recipe; empty when equal."""
    fresh = render_recipe(dockerfile)
    old = committed.read_text() if committed.is_file() else ""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            fresh.splitlines(keepends=True),
            fromfile=f"{committed} (committed)",
            tofile=f"{committed} (generated from {dockerfile.name})",
        )
    )


def enroot_uri(ref: str) -> str:
    """``ref`` as enroot's ``docker://[REGISTRY#]IMAGE[:TAG]``, rejecting files and bad names."""
    bare = ref.removeprefix("docker://")
    if not bare or bare.endswith((".sqsh", ".sif")) or bare.startswith(("/", "./", "../")):
        raise ContainerError(
            f"image {ref!r}: enroot imports a registry reference such as ghcr.io/hpcdl/hpcdl:0.1.0, not a file"
        )
    try:
        check_image("pyxis", bare, "image")
    except LaunchError as err:
        raise ContainerError(str(err)) from None
    return f"docker://{enroot_ref(bare)}"


@dataclass(frozen=True)
class ImportSummary:
    """One finished ``enroot import``."""

    uri: str
    output: Path
    bytes: int


def enroot_import(ref: str, output: Path) -> ImportSummary:
    """Import registry image ``ref`` into the squashfs file ``output`` (for pyxis/enroot)."""
    output = Path(output)
    if output.suffix != ".sqsh":
        raise ContainerError(f"{output}: pyxis reads squashfs images; name the output *.sqsh")
    uri = enroot_uri(ref)
    enroot = shutil.which("enroot")
    if enroot is None:
        raise ContainerError(
            f"enroot not found on PATH: it is needed to import {uri}; run this on a node where"
            " enroot is installed (https://github.com/NVIDIA/enroot)"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    # enroot refuses to overwrite, and a killed import must never look like a finished image.
    tmp = output.with_name(f"{TMP_PREFIX}{output.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        result = subprocess.run([enroot, "import", "-o", str(tmp), uri], check=False)
        if result.returncode != 0:
            raise ContainerError(f"enroot import {uri} failed with exit status {result.returncode}")
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return ImportSummary(uri=uri, output=output, bytes=output.stat().st_size)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    recipe = sub.add_parser("recipe", help="regenerate the Apptainer recipe from the Dockerfile")
    recipe.add_argument("--dockerfile", type=Path, default=DOCKERFILE, help="source Dockerfile")
    recipe.add_argument("--output", type=Path, default=DEFFILE, help="Apptainer definition to write")
    recipe.add_argument("--check", action="store_true", help="write nothing; exit 1 with a diff on drift")
    imp = sub.add_parser("import", help="enroot import a registry image into a .sqsh file")
    imp.add_argument("image", help="registry reference, e.g. ghcr.io/hpcdl/hpcdl:0.1.0 or ghcr.io#hpcdl/hpcdl:0.1.0")
    imp.add_argument("output", type=Path, help="squashfs file to write (*.sqsh)")


def main(args: argparse.Namespace) -> int:
    """Run ``hpcdl container ACTION``."""
    try:
        if args.action == "recipe":
            if args.check:
                drift = recipe_drift(args.output, args.dockerfile)
                if drift:
                    print(f"hpcdl container: {args.output} is out of date; run `hpcdl container recipe`",
                          file=sys.stderr)
                    sys.stdout.write(drift)
                    return 1
                print(f"{args.output} matches {args.dockerfile}")
                return 0
            write_text(args.output, render_recipe(args.dockerfile))
            print(f"wrote {args.output} from {args.dockerfile}")
            return 0
        summary = enroot_import(args.image, args.output)
        print(f"imported {summary.uri} -> {summary.output} ({summary.bytes / 1e6:.1f} MB)")
        return 0
    except (ContainerError, OSError) as err:
        print(f"hpcdl container {args.action}: {err}", file=sys.stderr)
        return 1

"""Compose the command that starts a parallel stage (conversion, training) on this system.

A launch is a *launcher* (how processes start: ``mpirun``, SLURM ``srun`` or ``none``) times a
*container runtime* (where they run: ``none``, ``pyxis`` flags on ``srun``, ``apptainer exec``
inside each task, or ``lsf-docker`` where LSF already started the whole job in the image, so the
prefix adds nothing). The workflow calls :func:`validate_execution` once at start, so a bad
setting stops the run before any job is submitted, and :func:`launch_prefix` for each rule.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

LAUNCHERS = ("none", "mpirun", "srun")
RUNTIMES = ("none", "pyxis", "apptainer", "lsf-docker")
SCHEDULERS = ("local", "slurm", "lsf")
# Runtimes that need the launcher to start the container (pyxis only exists as srun flags; LSF
# starts the Docker container itself, so the processes inside are started by mpirun or directly).
RUNTIME_LAUNCHERS = {
    "none": LAUNCHERS,
    "pyxis": ("srun",),
    "apptainer": LAUNCHERS,
    "lsf-docker": ("none", "mpirun"),
}
# Docker reference grammar (distribution/reference): [host[:port]/]path[:tag][@digest].
_DOCKER_REF = re.compile(
    r"^(?:(?P<host>[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)


class LaunchError(ValueError):
    """An execution setting that cannot work; the message names the key, the value and why."""


@dataclass(frozen=True)
class Launch:
    """How one parallel stage starts: ``tasks`` processes on ``nodes`` nodes, maybe in a container."""

    launcher: str = "mpirun"
    runtime: str = "none"
    tasks: int = 1
    nodes: int = 1
    tasks_per_node: int = 0  # 0: as many as needed, ceil(tasks / nodes)
    gpus_per_node: int = 0
    image: str = ""
    mounts: tuple[str, ...] = ()
    workdir: str = ""
    srun_mpi: str = "pmix"

    @classmethod
    def from_config(
        cls, execution: Mapping[str, Any], tasks: int, nodes: int = 1, mounts: tuple[str, ...] = ()
    ) -> Launch:
        """The launch of ``tasks`` ranks on ``nodes`` nodes under the ``execution`` config section.

        ``mounts`` (``host[:container[:ro]]``) come before the configured ``execution.mounts``.
        """
        return cls(
            launcher=str(execution.get("launcher", "mpirun")),
            runtime=str(execution.get("runtime", "none")),
            tasks=int(tasks),
            nodes=int(nodes),
            tasks_per_node=int(execution.get("tasks_per_node", 0) or 0),
            gpus_per_node=int(execution.get("gpus_per_node", 0) or 0),
            image=str(execution.get("image", "") or ""),
            mounts=(*mounts, *(str(m) for m in execution.get("mounts", []) or [])),
            workdir=str(execution.get("workdir", "") or ""),
            srun_mpi=str(execution.get("srun_mpi", "pmix") or "pmix"),
        )

    @property
    def per_node(self) -> int:
        """Tasks started on each node."""
        return self.tasks_per_node or -(-self.tasks // self.nodes)


def _check_docker_ref(ref: str, key: str) -> None:
    bare = ref.removeprefix("docker://")
    # enroot/pyxis write the registry as `registry#image`; the reference is otherwise the same.
    bare = bare.replace("#", "/", 1)
    if not _DOCKER_REF.match(bare):
        raise LaunchError(
            f"{key}: {ref!r} is not a valid image reference (expected [registry/]name[:tag][@digest],"
            " lower-case name, e.g. nvcr.io/nvidia/pytorch:24.05-py3)"
        )


def _is_file(image: str) -> bool:
    return image.endswith((".sqsh", ".sif")) or image.startswith(("/", "./", "../"))


def check_image(runtime: str, image: str, key: str = "execution.image") -> None:
    """Reject an image reference that cannot exist for ``runtime``: a malformed name or a missing file."""
    if runtime == "none":
        return
    if not image:
        raise LaunchError(f"{key}: runtime {runtime!r} needs a container image, got an empty value")
    if runtime == "lsf-docker" and "#" in image:
        raise LaunchError(f"{key}: {image!r}: Docker names the registry with '/', not enroot's '#'")
    if _is_file(image):
        if runtime == "pyxis" and not image.endswith(".sqsh"):
            raise LaunchError(f"{key}: {image!r}: pyxis reads squashfs images ending in .sqsh")
        if runtime == "apptainer" and not image.endswith(".sif"):
            raise LaunchError(f"{key}: {image!r}: apptainer reads image files ending in .sif")
        if runtime == "lsf-docker":
            raise LaunchError(f"{key}: {image!r}: LSF Docker needs a registry reference, not a file")
        if not Path(image).is_file():
            raise LaunchError(f"{key}: image file {image!r} does not exist")
        return
    _check_docker_ref(image, key)


def enroot_ref(ref: str) -> str:
    """A registry reference in enroot's ``[REGISTRY#]IMAGE[:TAG]`` form, without ``docker://``.

    Without ``#`` enroot pulls from Docker Hub, so a leading registry host (Docker's rule: a first
    component with ``.`` or ``:``, or ``localhost``) is joined with ``#`` instead of ``/``.
    """
    bare = ref.removeprefix("docker://")
    if "#" not in bare:
        first, sep, rest = bare.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            bare = f"{first}#{rest}"
    return bare


def runtime_image(runtime: str, image: str) -> str:
    """``image`` as ``runtime`` reads it.

    pyxis takes a file only when the path starts with ``/`` or ``./`` and adds ``docker://`` to
    anything else itself; apptainer takes registry images only as ``docker://registry/name``.
    """
    if _is_file(image):
        return os.path.abspath(image)
    if runtime == "pyxis":
        return enroot_ref(image)
    return "docker://" + image.removeprefix("docker://").replace("#", "/", 1)


def validate(launch: Launch, stage: str = "stage") -> None:
    """Raise :class:`LaunchError` when ``launch`` cannot start as asked."""
    if launch.launcher not in LAUNCHERS:
        raise LaunchError(f"execution.launcher: unknown launcher {launch.launcher!r} (one of {', '.join(LAUNCHERS)})")
    if launch.runtime not in RUNTIMES:
        raise LaunchError(f"execution.runtime: unknown runtime {launch.runtime!r} (one of {', '.join(RUNTIMES)})")
    if launch.launcher not in RUNTIME_LAUNCHERS[launch.runtime]:
        allowed = " or ".join(RUNTIME_LAUNCHERS[launch.runtime])
        raise LaunchError(
            f"execution.launcher: runtime {launch.runtime!r} needs launcher {allowed}, got {launch.launcher!r}"
        )
    if launch.tasks < 1 or launch.nodes < 1:
        raise LaunchError(f"{stage}: tasks ({launch.tasks}) and nodes ({launch.nodes}) must be at least 1")
    if launch.tasks_per_node and launch.tasks > launch.nodes * launch.tasks_per_node:
        raise LaunchError(
            f"{stage}: {launch.tasks} tasks do not fit the allocation of {launch.nodes} node(s) x "
            f"{launch.tasks_per_node} tasks per node"
        )
    if launch.nodes > 1 and launch.launcher == "none":
        raise LaunchError(f"{stage}: {launch.nodes} nodes need a launcher (mpirun or srun), got 'none'")
    if launch.runtime != "lsf-docker":  # LSF starts that image itself (profile resource lsf_image)
        check_image(launch.runtime, launch.image)


def launch_prefix(launch: Launch) -> str:
    """The shell prefix that starts ``launch.tasks`` processes of the command that follows it."""
    validate(launch)
    words: list[str] = []
    if launch.launcher == "mpirun" and launch.tasks > 1:
        words += ["mpirun", "-np", str(launch.tasks), "--oversubscribe"]
        if launch.nodes > 1:
            words += ["--map-by", f"ppr:{launch.per_node}:node"]
    elif launch.launcher == "srun":
        words += ["srun", f"--nodes={launch.nodes}", f"--ntasks={launch.tasks}"]
        words += [f"--ntasks-per-node={launch.per_node}", f"--mpi={launch.srun_mpi}"]
        if launch.tasks == 1:
            # The SLURM executor runs a one-task job inside an `srun -n1` step of its own, which
            # holds the job's CPUs: this step shares them instead of waiting for them forever.
            words += ["--overlap"]
        if launch.gpus_per_node:
            words += ["--gpus-per-task=1"]
        if launch.runtime == "pyxis":
            words += [f"--container-image={runtime_image('pyxis', launch.image)}"]
            if launch.mounts:
                words += [f"--container-mounts={','.join(launch.mounts)}"]
            words += [f"--container-workdir={launch.workdir or Path.cwd()}"]
    if launch.runtime == "apptainer":
        words += ["apptainer", "exec"]
        if launch.gpus_per_node:
            words += ["--nv"]
        for mount in launch.mounts:
            words += ["--bind", mount]
        words += ["--pwd", launch.workdir or str(Path.cwd()), runtime_image("apptainer", launch.image)]
    return shlex.join(words)


def stage_prefix(
    execution: Mapping[str, Any],
    tasks: int,
    nodes: int,
    workdir: str,
    results: str,
    readonly: tuple[str, ...] = (),
    staging_dir: str = "",
    gpus: bool = False,
) -> str:
    """Launch prefix of one workflow stage: ``tasks`` ranks on ``nodes`` nodes under ``execution``.

    In a container the working directory ``workdir`` is mounted read-write at the same path, and
    so is ``results`` when it lies outside it (e.g. on scratch), so outputs land where the
    workflow expects them; ``readonly`` directories go on top read-only, and the node-local
    ``staging_dir`` read-write. Relative ``results`` and ``readonly`` paths are relative to
    ``workdir``, which is also the container's working directory unless ``execution.workdir`` is
    set. ``gpus``: one GPU per task (training); other stages use CPUs only.
    """
    cwd = os.path.abspath(workdir)

    def absolute(path: str) -> str:
        return os.path.normpath(os.path.join(cwd, path))

    mounts = [f"{cwd}:{cwd}"]
    results = absolute(results)
    if os.path.commonpath([cwd, results]) != cwd:
        mounts.append(f"{results}:{results}")
    mounts += [f"{absolute(d)}:{absolute(d)}:ro" for d in readonly]
    if staging_dir:
        mounts.append(f"{staging_dir}:{staging_dir}")
    spec = Launch.from_config(execution, tasks, nodes, tuple(mounts))
    spec = replace(spec, workdir=spec.workdir or cwd)
    return launch_prefix(spec if gpus else replace(spec, gpus_per_node=0))


def job_resources(execution: Mapping[str, Any], tasks: int, nodes: int = 1, gpus: bool = False) -> dict[str, Any]:
    """Scheduler resources of a job that runs ``tasks`` ranks on ``nodes`` nodes.

    ``mpi`` marks the job as one that starts its own ranks (the SLURM executor then leaves the
    shell line alone instead of wrapping it in ``srun -n1``); ``tasks_per_gpu`` stops it from
    asking for ``tasks`` ranks per GPU.
    """
    resources: dict[str, Any] = {"tasks": tasks, "nodes": nodes}
    if tasks > 1 and execution["launcher"] != "none":
        resources["mpi"] = execution["launcher"]
    if gpus and execution.get("gpus_per_node", 0):
        resources.update(gres=f"gpu:{execution['gpus_per_node']}", tasks_per_gpu=1)
    return resources


def validate_execution(config: Mapping[str, Any], default_resources: Mapping[str, Any] | None = None) -> None:
    """Check the execution settings of a whole pipeline config before anything is submitted.

    ``default_resources`` are the profile's ``default-resources`` (raw values): a SLURM run needs
    ``slurm_partition`` and ``slurm_account``, an LSF run ``lsf_group``, ``lsf_queue``,
    ``lsf_job_group`` and a valid ``lsf_image``.
    """
    execution = config.get("execution", {})
    scheduler = execution.get("scheduler", "local")
    if scheduler not in SCHEDULERS:
        raise LaunchError(f"execution.scheduler: unknown scheduler {scheduler!r} (one of {', '.join(SCHEDULERS)})")
    resources = dict(default_resources or {})
    required = {"slurm": ("slurm_partition", "slurm_account"), "lsf": ("lsf_group", "lsf_queue", "lsf_job_group")}
    for key in required.get(scheduler, ()):
        if not str(resources.get(key) or "").strip():
            raise LaunchError(
                f"default-resources: {key} is empty; set it under default-resources in"
                f" profiles/{scheduler}/config.yaml (or your copy of that profile)"
            )
    if scheduler == "lsf":
        check_image("lsf-docker", str(resources.get("lsf_image") or ""), "default-resources: lsf_image")
    for stage in ("convert", "train"):
        section = config.get(stage, {})
        validate(Launch.from_config(execution, section.get("tasks", 1), section.get("nodes", 1)), stage)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--launcher", default="mpirun", choices=LAUNCHERS, help="how processes start")
    parser.add_argument("--runtime", default="none", help=f"container runtime: {', '.join(RUNTIMES)}")
    parser.add_argument("--tasks", type=int, default=1, help="processes in total")
    parser.add_argument("--nodes", type=int, default=1, help="nodes the processes spread over")
    parser.add_argument("--tasks-per-node", type=int, default=0, help="0: ceil(tasks / nodes)")
    parser.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node (one task per GPU)")
    parser.add_argument("--image", default="", help="docker reference, .sqsh (pyxis) or .sif (apptainer)")
    parser.add_argument("--mount", action="append", default=[], help="host[:container[:ro]] (repeatable)")
    parser.add_argument("--workdir", default="", help="working directory inside the container")
    parser.add_argument("--srun-mpi", default="pmix", help="srun --mpi plugin (pmix, pmi2, none)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to launch (optional)")


def main(args: argparse.Namespace) -> int:
    launch = Launch(
        launcher=args.launcher,
        runtime=args.runtime,
        tasks=args.tasks,
        nodes=args.nodes,
        tasks_per_node=args.tasks_per_node,
        gpus_per_node=args.gpus_per_node,
        image=args.image,
        mounts=tuple(args.mount),
        workdir=args.workdir,
        srun_mpi=args.srun_mpi,
    )
    try:
        prefix = launch_prefix(launch)
    except LaunchError as err:
        print(f"hpcdl launch-cmd: {err}", file=sys.stderr)
        return 2
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    print(" ".join(part for part in (prefix, shlex.join(command)) if part))
    return 0

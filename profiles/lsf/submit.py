#!/usr/bin/env python3
"""Submit one Snakemake job script to LSF with Docker (RIS Compute1): prints the LSF job id.

Called by the cluster-generic executor as ``submit.py --logdir DIR JOBSCRIPT``; LSF writes each
job's output and its final report to ``DIR/<rule>/<jobid>.log`` (``status.py`` reads it there).
Everything comes from the job's resources (profile ``default-resources``/``set-resources`` and the
rule's own) and its ``threads``:

* ``lsf_group`` -> ``-G``, ``lsf_queue`` -> ``-q``, ``lsf_job_group`` -> ``-g`` (caps how many
  of this workflow's jobs run at once), ``lsf_image`` -> ``-a 'docker(IMAGE)'``;
* ``tasks``/``nodes`` -> ``-n TASKS -R 'affinity[core(1)] span[ptile=TASKS/NODES]'``, with
  ``LSF_DOCKER_NETWORK=host`` and ``LSF_DOCKER_IPC=host`` so ranks on several hosts can talk;
  a one-task job with ``threads`` > 1 -> ``-n THREADS -R 'span[hosts=1]'`` (its slots on one host);
* ``gres`` (``gpu:G``, set by the workflow for training) -> ``-gpu "num=G"`` (per host), and
  ``lsf_gpu_select`` (RIS: ``gpuhost``) -> ``select[...]`` so the job lands on a GPU host;
* ``mem_mb`` -> ``-M``/``rusage[mem]``, ``runtime`` (minutes) -> ``-W``;
* ``lsf_array`` (N > 1) -> a job array ``-J name[1-N]`` of the same script (LSF caps arrays at
  1000 elements; each element reads ``LSB_JOBINDEX``).
``LSF_DOCKER_VOLUMES`` mounts the working directory at the same path, then ``lsf_volumes``, then
whatever ``LSF_DOCKER_VOLUMES`` the user exported (site storage). The job sees the image's own
environment (``LSF_DOCKER_PRESERVE_ENVIRONMENT=false``), so ``python`` is the image's, not a host
virtualenv's; export ``LSF_DOCKER_PRESERVE_ENVIRONMENT=true`` before ``snakemake`` to pass yours.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from snakemake.utils import read_job_properties

MAX_ARRAY = 1000
REQUIRED = ("lsf_group", "lsf_queue", "lsf_job_group", "lsf_image")


def bsub_command(
    props: dict, jobscript: str, cwd: str, logroot: Path, environ: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The ``bsub`` argv and the extra environment for one job's properties.

    ``environ`` is the submitting environment: an exported ``LSF_DOCKER_VOLUMES`` is kept and an
    exported ``LSF_DOCKER_PRESERVE_ENVIRONMENT`` wins over the default ``false``.
    """
    environ = environ or {}
    res = props.get("resources", {})
    missing = [key for key in REQUIRED if not str(res.get(key) or "").strip()]
    if missing:
        raise ValueError(f"resource(s) {', '.join(missing)} not set (profiles/lsf/config.yaml default-resources)")
    name = props.get("rule") or props.get("groupid") or "snakejob"
    logdir = Path(cwd, logroot, name)
    logdir.mkdir(parents=True, exist_ok=True)
    tasks, nodes = int(res.get("tasks") or 1), int(res.get("nodes") or 1)
    threads = int(props.get("threads") or 1)
    array = int(res.get("lsf_array") or 1)
    if array > MAX_ARRAY:
        raise ValueError(f"lsf_array={array}: LSF job arrays hold at most {MAX_ARRAY} elements")
    job_name = f"{name}[1-{array}]" if array > 1 else name
    log = logdir / ("%J_%I.log" if array > 1 else "%J.log")
    argv = ["bsub", "-G", str(res["lsf_group"]), "-q", str(res["lsf_queue"]), "-g", str(res["lsf_job_group"])]
    argv += ["-a", f"docker({res['lsf_image']})", "-J", job_name, "-o", str(log), "-cwd", cwd]
    gpus = re.fullmatch(r"gpu(?::\w+)?:(\d+)", str(res.get("gres") or ""))
    require = [f"select[{res['lsf_gpu_select']}]"] if gpus and res.get("lsf_gpu_select") else []
    if res.get("mem_mb"):
        argv += ["-M", f"{int(res['mem_mb'])}MB"]
        require.append(f"rusage[mem={int(res['mem_mb'])}MB]")
    if tasks > 1:
        ptile = -(-tasks // nodes)
        argv += ["-n", str(tasks)]
        require.append(f"affinity[core(1)] span[ptile={ptile}]")
    elif threads > 1:
        argv += ["-n", str(threads)]
        require.append("span[hosts=1]")
    if require:
        argv += ["-R", " ".join(require)]
    if gpus:
        argv += ["-gpu", f"num={gpus.group(1)}"]
    if res.get("runtime"):
        argv += ["-W", str(int(res["runtime"]))]
    argv += ["/bin/bash", jobscript]
    volumes = [f"{cwd}:{cwd}", *str(res.get("lsf_volumes") or "").split()]
    volumes += environ.get("LSF_DOCKER_VOLUMES", "").split()
    env = {
        # Docker refuses a mount point named twice.
        "LSF_DOCKER_VOLUMES": " ".join(dict.fromkeys(volumes)),
        "LSF_DOCKER_PRESERVE_ENVIRONMENT": environ.get("LSF_DOCKER_PRESERVE_ENVIRONMENT", "false"),
    }
    if tasks > 1:
        env.update(LSF_DOCKER_NETWORK="host", LSF_DOCKER_IPC="host")
    return argv, env


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] != "--logdir":
        print("usage: submit.py --logdir DIR JOBSCRIPT", file=sys.stderr)
        return 2
    jobscript = argv[3]
    try:
        props = read_job_properties(jobscript)
        command, extra_env = bsub_command(props, jobscript, os.getcwd(), Path(argv[2]), dict(os.environ))
    except ValueError as err:
        print(f"submit.py: {jobscript}: {err}", file=sys.stderr)
        return 1
    proc = subprocess.run(command, env={**os.environ, **extra_env}, capture_output=True, text=True, check=False)
    found = re.search(r"Job <(\d+)>", proc.stdout)
    if proc.returncode != 0 or not found:
        print(
            f"submit.py: bsub failed ({proc.returncode}): {proc.stdout.strip()} {proc.stderr.strip()}", file=sys.stderr
        )
        return 1
    print(found.group(1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

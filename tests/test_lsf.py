"""The LSF profile (``profiles/lsf``: cluster-generic executor, ``submit.py``, ``status.py``).

TEST DOUBLE: ``tests/lsf_shim`` holds stand-ins for ``bsub``, ``bjobs`` and ``bkill``; they are not
LSF. ``bsub`` records its argv and ``LSF_DOCKER_*`` environment and runs the job script on this
machine (no queue, no Docker image, no GPU). They go first on PATH; everything else is real:
Snakemake with the profile as shipped (only the site settings filled in), the job scripts it writes,
mpirun, training and the report. The shim passes the submitting environment to the job, so jobs
find this virtualenv's ``python`` and ``hpcdl`` where a real RIS job uses the image's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_tool, tool_env
from test_sweep_pipeline import SCENARIO, check_halving

SHIM = REPO / "tests" / "lsf_shim"
PROFILE = REPO / "profiles" / "lsf"
IMAGE = "ghcr.io/hpcdl/hpcdl:0.1.0"  # profiles/lsf/config.yaml default
SITE = {"lsf_group": "compute-jdoe", "lsf_job_group": "/jdoe/hpcdl"}

_spec = importlib.util.spec_from_file_location("lsf_submit", PROFILE / "submit.py")
submit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(submit)


def shim_env(tmp_path: Path) -> dict[str, str]:
    """Environment putting the LSF test double first on PATH, its state under ``tmp_path``."""
    return {"PATH": f"{SHIM}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}", "LSF_SHIM_DIR": str(tmp_path / "shim")}


def shim_calls(tmp_path: Path, command: str = "bsub") -> list:
    """Every call of ``command`` the double recorded (``bsub``: ``{"id", "argv", "env"}``, else argv)."""
    record = tmp_path / "shim" / f"{command}.jsonl"
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def bsub_calls(tmp_path: Path) -> list[dict]:
    return shim_calls(tmp_path, "bsub")


def workdir(tmp_path: Path, pipeline: dict, **resources: str) -> tuple[Path, Path]:
    """A working directory that sees the repository's workflow, config and profiles, and a copy of
    the LSF profile whose ``default-resources`` are updated by ``resources`` and whose config files
    end with ``pipeline`` (as a user adds a config of their own). Returns (workdir, profile)."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("workflow", "config", "profiles"):
        (work / name).symlink_to(REPO / name)
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    profile["default-resources"].update(resources)
    profile["configfile"] = [*profile["configfile"], str(tmp_path / "pipeline.yaml")]
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(profile))
    return work, tmp_path / "profile"


def snakemake_lsf(tmp_path: Path, work: Path, profile: Path, *targets: str, timeout: float = 900):
    return run_tool(
        [str(BIN / "snakemake"), "--profile", str(profile), *targets], cwd=work, timeout=timeout, **shim_env(tmp_path)
    )


TINY = {
    "synth": {"crop_size": 32, "train": 4, "validation": 2, "seed": 11, "workers": 2},
    "convert": {"tasks": 2},
    "execution": {"gpus_per_node": 2},  # two training ranks, one GPU each
    "train": {"run_name": "lsf", "tasks": 2, "batch_size": 2, "epochs": 1, "warmup_epochs": 0},
}


@pytest.mark.mpi
@pytest.mark.slow
def test_whole_pipeline_through_the_profile(tmp_path):
    work, profile = workdir(tmp_path, TINY, **SITE)
    result = snakemake_lsf(tmp_path, work, profile)
    assert result.returncode == 0, result.stdout + result.stderr[-6000:]

    # The pipeline's outputs.
    run = json.loads((work / "results/runs/lsf/run.json").read_text())
    assert (run["epochs_run"], run["world_size"], run["launcher"]) == (1, 2, "mpirun")
    assert (work / "results/report/index.html").is_file() and (work / "results/report/lsf.html").is_file()
    for split, count in (("train", 4), ("validation", 2)):
        assert len((work / f"results/data/cosmoflow/synth/npy/{split}/files_data.lst").read_text().split()) == count

    # One bsub per job, each with exactly the options its rule's resources ask for.
    jobs = bsub_calls(tmp_path)
    assert sorted(call["argv"][call["argv"].index("-J") + 1] for call in jobs) == [
        "convert",
        "convert",
        "lists",
        "lists",
        "spec",
        "synth",
        "train",
    ]

    def head(rule: str) -> list[str]:
        return [
            "-G",
            "compute-jdoe",
            "-q",
            "general",
            "-g",
            "/jdoe/hpcdl",
            "-a",
            f"docker({IMAGE})",
            "-J",
            rule,
            "-o",
            f"{work}/results/logs/lsf/{rule}/%J.log",
            "-cwd",
            str(work),
        ]

    expected = {
        "synth": [*head("synth"), "-M", "4000MB", "-n", "2", "-R", "rusage[mem=4000MB] span[hosts=1]", "-W", "30"],
        "convert": [
            *head("convert"),
            "-M",
            "4000MB",
            "-n",
            "2",
            "-R",
            "rusage[mem=4000MB] affinity[core(1)] span[ptile=2]",
            "-W",
            "30",
        ],
        "lists": [*head("lists"), "-M", "4000MB", "-R", "rusage[mem=4000MB]", "-W", "30"],
        "spec": [*head("spec"), "-M", "4000MB", "-R", "rusage[mem=4000MB]", "-W", "30"],
        "train": [
            *head("train"),
            "-M",
            "16000MB",
            "-n",
            "2",
            "-R",
            "select[gpuhost] rusage[mem=16000MB] affinity[core(1)] span[ptile=2]",
            "-gpu",
            "num=2",
            "-W",
            "240",
        ],
    }
    for call in jobs:
        rule = call["argv"][call["argv"].index("-J") + 1]
        assert call["argv"][1:-1] == [*expected[rule], "/bin/bash"], rule
        assert call["argv"][-1].startswith(str(work / ".snakemake")), call["argv"][-1]
        multi = rule in ("convert", "train")
        assert call["env"] == {
            "LSF_DOCKER_VOLUMES": f"{work}:{work}",
            "LSF_DOCKER_PRESERVE_ENVIRONMENT": "false",
            **({"LSF_DOCKER_NETWORK": "host", "LSF_DOCKER_IPC": "host"} if multi else {}),
        }, rule
        # Status went through bjobs; LSF's report closes every job's log.
        assert ["-noheader", "-o", "stat", call["id"]] in shim_calls(tmp_path, "bjobs")
        log = work / f"results/logs/lsf/{rule}/{call['id']}.log"
        assert log.read_text().rstrip().endswith("Successfully completed."), log


@pytest.mark.parametrize(
    ("resources", "needle"),
    [
        ({"lsf_job_group": "/jdoe/hpcdl"}, "lsf_group is empty"),
        ({"lsf_group": "compute-jdoe"}, "lsf_job_group is empty"),
        ({**SITE, "lsf_image": "ghcr.io/hpcdl/HPCDL:0.1.0"}, "'ghcr.io/hpcdl/HPCDL:0.1.0' is not a valid image"),
        ({**SITE, "lsf_image": "results/hpcdl.sif"}, "LSF Docker needs a registry reference"),
    ],
)
def test_bad_site_settings_stop_before_any_bsub(tmp_path, resources, needle):
    work, profile = workdir(tmp_path, TINY, **resources)
    result = snakemake_lsf(tmp_path, work, profile, timeout=300)
    assert result.returncode != 0
    assert needle in result.stdout + result.stderr
    assert bsub_calls(tmp_path) == []
    assert not (work / "results").exists()


@pytest.mark.slow
def test_failed_job_is_reported_failed(tmp_path):
    (tmp_path / "broken.tar").write_text("not a tar archive")
    pipeline = {**TINY, "dataset": {"source": "download"}, "download": {"url": f"file://{tmp_path}/broken.tar"}}
    work, profile = workdir(tmp_path, pipeline, **SITE)
    result = snakemake_lsf(tmp_path, work, profile, "data", timeout=300)
    assert result.returncode != 0
    assert "Error in rule download" in result.stdout + result.stderr
    [call] = bsub_calls(tmp_path)
    assert (tmp_path / "shim" / f"{call['id']}.state").read_text() == "EXIT"
    assert ["-noheader", "-o", "stat", call["id"]] in shim_calls(tmp_path, "bjobs")
    log = (work / f"results/logs/lsf/download/{call['id']}.log").read_text()
    assert log.rstrip().endswith("Exited with exit code 1.")
    assert "cannot extract" in (work / "results/logs/download.log").read_text()


def live_processes(group: int) -> list[int]:
    """Processes of process group ``group`` that are still running (zombies excluded)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp
            if int(fields[2]) == group and fields[0] != "Z":
                pids.append(int(stat.parent.name))
    return pids


def status_checks_running() -> bool:
    """Whether a ``status.py`` of the profile is running (the executor polls job states with it)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if b"status.py" in cmdline.read_bytes():
                return True
    return False


@pytest.mark.slow
def test_interrupt_cancels_submitted_jobs_with_bkill(tmp_path):
    os.mkfifo(tmp_path / "stalled.tar")  # a download that never gets a byte
    pipeline = {**TINY, "dataset": {"source": "download"}, "download": {"url": f"file://{tmp_path}/stalled.tar"}}
    work, profile = workdir(tmp_path, pipeline, **SITE)
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "--profile", str(profile), "data"],
        cwd=work,
        env=tool_env(**shim_env(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Ctrl-C's default action, as at a terminal: a shell that starts the test suite in the
        # background hands its children SIGINT ignored, and Python then never raises
        # KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for _ in range(1200):
            if shim_calls(tmp_path, "bjobs"):
                break
            time.sleep(0.1)
        # While a status check runs the executor holds its jobs aside and would cancel none of them:
        # interrupt between checks (they are 10 s apart).
        for _ in range(300):
            if not status_checks_running():
                break
            time.sleep(0.1)
        time.sleep(1)
        [call] = bsub_calls(tmp_path)
        job_group = int((tmp_path / "shim" / f"{call['id']}.pid").read_text())
        assert live_processes(job_group)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
        assert proc.returncode != 0
        assert shim_calls(tmp_path, "bkill") == [[call["id"]]]
        assert (tmp_path / "shim" / f"{call['id']}.state").read_text() == "EXIT"
        for _ in range(100):
            if not live_processes(job_group):
                break
            time.sleep(0.1)
        assert live_processes(job_group) == []  # nothing of the job is left running
    finally:
        proc.kill()
        proc.wait()
        for pid in (tmp_path / "shim").glob("*.pid"):  # the job, should bkill have missed it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid.read_text()), signal.SIGKILL)


def props(**resources) -> dict:
    """Job properties as Snakemake writes them into a job script, with the profile's defaults."""
    defaults = {**SITE, "lsf_queue": "general", "lsf_image": IMAGE, "runtime": 30, "mem_mb": 4000}
    return {"rule": "grid", "threads": 1, "resources": {**defaults, **resources}}


def array_job(tmp_path: Path, elements: int, fail: int = 0) -> tuple[Path, str]:
    """Submit a job script as an LSF array of ``elements`` through submit.py; element ``fail`` fails."""
    work = tmp_path / "work"
    work.mkdir()
    script = work / "grid.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"# properties = {json.dumps(props(lsf_array=elements))}\n"
        'echo "$LSB_JOBINDEX" > "element_$LSB_JOBINDEX.txt"\n'
        f'[ "$LSB_JOBINDEX" != {fail} ]\n'
    )
    result = run_tool([str(PROFILE / "submit.py"), "--logdir", "logs", str(script)], cwd=work, **shim_env(tmp_path))
    assert result.returncode == 0, result.stderr
    return work, result.stdout.strip()


def lsf_status(tmp_path: Path, work: Path, job_id: str) -> str:
    """``status.py`` answer once the job has left ``running`` (through the bjobs double)."""
    for _ in range(600):
        result = run_tool([str(PROFILE / "status.py"), "--logdir", "logs", job_id], cwd=work, **shim_env(tmp_path))
        assert result.returncode == 0, result.stderr
        if result.stdout.strip() != "running":
            return result.stdout.strip()
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running")


def test_array_elements_read_their_index_and_report_success(tmp_path):
    work, job_id = array_job(tmp_path, 3)
    [call] = bsub_calls(tmp_path)
    argv = call["argv"]
    assert argv[argv.index("-J") + 1] == "grid[1-3]"
    assert argv[argv.index("-o") + 1] == f"{work}/logs/grid/%J_%I.log"
    assert lsf_status(tmp_path, work, job_id) == "success"
    for index in (1, 2, 3):
        assert (work / f"element_{index}.txt").read_text() == f"{index}\n"
        assert (work / f"logs/grid/{job_id}_{index}.log").read_text().endswith("Successfully completed.\n")
    # After CLEAN_PERIOD bjobs no longer knows the job; LSF's reports in the logs still tell.
    (tmp_path / "shim" / f"{job_id}.state").unlink()
    assert lsf_status(tmp_path, work, job_id) == "success"


def test_array_with_a_failed_element_is_failed(tmp_path):
    work, job_id = array_job(tmp_path, 3, fail=2)
    assert lsf_status(tmp_path, work, job_id) == "failed"
    assert (work / f"logs/grid/{job_id}_2.log").read_text().endswith("Exited with exit code 1.\n")
    assert (work / "element_3.txt").exists()  # the other elements still ran
    (tmp_path / "shim" / f"{job_id}.state").unlink()
    assert lsf_status(tmp_path, work, job_id) == "failed"


def test_submit_refuses_an_unset_group_without_calling_bsub(tmp_path):
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n# properties = {json.dumps(props(lsf_group=''))}\ntrue\n")
    result = run_tool([str(PROFILE / "submit.py"), "--logdir", "logs", str(script)], cwd=tmp_path, **shim_env(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"submit.py: {script}: resource(s) lsf_group not set (profiles/lsf/config.yaml default-resources)"
    )
    assert bsub_calls(tmp_path) == []


def argv_env(tmp_path: Path, environ: dict[str, str] | None = None, threads: int = 1, **resources):
    job = {**props(**resources), "threads": threads}
    return submit.bsub_command(job, "job.sh", str(tmp_path), Path("logs"), environ)


@pytest.mark.parametrize(
    ("gres", "select", "gpu"),
    [
        ("gpu:4", "gpuhost", ["select[gpuhost] ", "-gpu", "num=4"]),
        ("gpu:a100:2", "gpuhost", ["select[gpuhost] ", "-gpu", "num=2"]),
        ("gpu:1", "", ["", "-gpu", "num=1"]),
        ("", "gpuhost", [""]),
    ],
)
def test_gpus_multi_node_span_and_host_network(tmp_path, gres, select, gpu):
    argv, env = argv_env(tmp_path, tasks=16, nodes=2, gres=gres, lsf_gpu_select=select)
    assert argv[argv.index("-n") : argv.index("-W")] == [
        "-n",
        "16",
        "-R",
        f"{gpu[0]}rusage[mem=4000MB] affinity[core(1)] span[ptile=8]",
        *gpu[1:],
    ]
    assert env["LSF_DOCKER_NETWORK"] == env["LSF_DOCKER_IPC"] == "host"


def test_threads_ask_for_slots_on_one_host(tmp_path):
    argv, env = argv_env(tmp_path, threads=4)
    assert argv[argv.index("-n") : argv.index("-W")] == ["-n", "4", "-R", "rusage[mem=4000MB] span[hosts=1]"]
    assert "LSF_DOCKER_NETWORK" not in env


def test_exported_docker_settings_are_kept(tmp_path):
    cwd = str(tmp_path)
    _, env = argv_env(
        tmp_path,
        lsf_volumes="/scratch1/fs1/lab:/scratch1/fs1/lab",
        environ={
            "LSF_DOCKER_VOLUMES": f"/storage1/fs1/lab:/storage1/fs1/lab {cwd}:{cwd}",
            "LSF_DOCKER_PRESERVE_ENVIRONMENT": "true",
        },
    )
    assert env["LSF_DOCKER_VOLUMES"] == (
        f"{cwd}:{cwd} /scratch1/fs1/lab:/scratch1/fs1/lab /storage1/fs1/lab:/storage1/fs1/lab"
    )
    assert env["LSF_DOCKER_PRESERVE_ENVIRONMENT"] == "true"


def test_array_limits(tmp_path):
    argv, _ = argv_env(tmp_path, lsf_array=1000)
    assert argv[argv.index("-J") + 1] == "grid[1-1000]"
    argv, _ = argv_env(tmp_path, lsf_array=1)
    assert argv[argv.index("-J") + 1] == "grid" and argv[argv.index("-o") + 1].endswith("/%J.log")
    with pytest.raises(ValueError, match="lsf_array=1001: LSF job arrays hold at most 1000 elements"):
        argv_env(tmp_path, lsf_array=1001)


@pytest.mark.slow
def test_sweep_runs_as_lsf_arrays_under_the_job_group(tmp_path):
    """The CI sweep scenario on LSF: each rung is one `bsub -J sweep_lsf_array[1-2]` under the
    job group, each element takes its share from LSB_JOBINDEX; rung 1 selected from rung 0."""
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (make deps)")
    scenario = {**yaml.safe_load(SCENARIO.read_text()), "results": "results"}
    work, profile = workdir(tmp_path, scenario, **SITE)
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings["configfile"].insert(-1, "config/classify.yaml")  # the scenario is layered over it
    (profile / "config.yaml").write_text(yaml.safe_dump(settings))
    result = snakemake_lsf(tmp_path, work, profile, "sweep")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    check_halving(work / "results/sweeps/ci")
    arrays = [c for c in bsub_calls(tmp_path) if c["argv"][c["argv"].index("-J") + 1].startswith("sweep_lsf")]
    assert len(arrays) == 2  # one array per rung
    for call in arrays:  # exactly these arguments: one slot and one GPU per element, on a GPU host
        assert call["argv"][1:-1] == [
            "-G", "compute-jdoe", "-q", "general", "-g", "/jdoe/hpcdl", "-a", f"docker({IMAGE})",
            "-J", "sweep_lsf_array[1-2]", "-o", f"{work}/results/logs/lsf/sweep_lsf_array/%J_%I.log",
            "-cwd", str(work), "-M", "4000MB", "-R", "select[gpuhost] rusage[mem=4000MB]", "-gpu", "num=1",
            "-W", "30", "/bin/bash",
        ], call["argv"]
    logs = sorted(p.name for p in (work / "results/logs/lsf/sweep_lsf_array").glob("*.log"))
    assert len(logs) == 4 and all(p.endswith(("_1.log", "_2.log")) for p in logs)

"""The SLURM path on a real two-node cluster on this host (``tests/slurm/cluster.py``).

One cluster per session: munged, slurmctld and two slurmds (``node1``, ``node2``). The pipeline
test runs ``snakemake --profile profiles/slurm`` (layered with ``tests/slurm/profile``) end to end:
every rule is an ``sbatch`` job, conversion a two-rank ``srun --mpi=pmix`` step, training one gloo
rank on each node through ``srun``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_tool
from helpers.browser import PAGE_HARNESS, harness_result
from test_sweep_pipeline import SCENARIO, check_halving

sys.path.insert(0, str(Path(__file__).parent / "slurm"))
import cluster  # noqa: E402  (tests/slurm/cluster.py, not a package)

pytestmark = pytest.mark.slurm


class Cluster:
    """A started test cluster: its state directory and client environment."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.conf = str(state / "slurm.conf")

    def run(self, *args: str, timeout: float = 120, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
        """Run a SLURM client (or anything that talks to the cluster) in the cluster's environment."""
        return run_tool(list(args), cwd=cwd, timeout=timeout, SLURM_CONF=self.conf)

    def log(self, name: str = "slurmctld.log") -> str:
        return (self.state / name).read_text(errors="replace")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The two-node cluster; always stopped again, and stopping must leave no daemon behind."""
    state = tmp_path_factory.mktemp("slurm")
    try:
        cluster.start(state)
    except cluster.ClusterError as err:
        pytest.fail(f"the test SLURM cluster did not start:\n{err}", pytrace=False)
    pidfiles = [*(state / n / "slurmd.pid" for n in cluster.NODES), state / "slurmctld.pid", state / "munge/munged.pid"]
    pids = [int(p.read_text().split()[0]) for p in pidfiles]
    try:
        yield Cluster(state)
    finally:
        cluster.stop(state)
        left = [pid for pid in pids if _alive(pid)]
        assert not left, f"daemons still running after stop: {left}\n{cluster.logs(state)}"


def test_both_nodes_idle(slurm):
    result = slurm.run("sinfo", "-h", "-N", "-o", "%N %P %t %c")
    assert result.returncode == 0, result.stderr
    rows = sorted(line.split() for line in result.stdout.splitlines())
    assert rows == [["node1", "debug*", "idle", "2"], ["node2", "debug*", "idle", "2"]]


def test_srun_places_one_rank_on_each_node(slurm):
    result = slurm.run("srun", "-N2", "-n2", "bash", "-c", 'echo "$SLURM_PROCID $SLURM_NODEID $SLURMD_NODENAME"')
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["0 0 node1", "1 1 node2"]


@pytest.mark.mpi
def test_srun_pmix_starts_one_mpi_world_over_both_nodes(slurm):
    code = "from mpi4py import MPI; c = MPI.COMM_WORLD; print(c.Get_rank(), c.Get_size(), c.allreduce(c.Get_rank() + 1))"
    result = slurm.run("srun", "--mpi=pmix", "-N2", "-n2", str(BIN / "python"), "-c", code)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted("0 2 3 1 2 3".split())


def test_sbatch_wait_returns_the_job_exit_status(slurm, tmp_path):
    out = tmp_path / "job.out"
    ok = slurm.run(
        "sbatch", "--wait", "-N2", "-n2", f"--output={out}", "--wrap", "srun bash -c 'echo $SLURMD_NODENAME'"
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    job = re.search(r"Submitted batch job (\d+)", ok.stdout).group(1)
    assert sorted(out.read_text().split()) == ["node1", "node2"]
    assert f"JobId={job} NodeList=node[1-2]" in slurm.log()

    failed = slurm.run("sbatch", "--wait", f"--output={tmp_path / 'fail.out'}", "--wrap", "exit 3")
    assert failed.returncode != 0


def _pipeline_config(tmp_path: Path) -> Path:
    """Tiny synthetic data; convert on 2 ranks, train 2 nodes x 1 gloo rank, all through srun."""
    config = {
        "results": str(tmp_path / "results"),
        "synth": {"crop_size": 32, "train": 16, "validation": 8, "seed": 3, "workers": 1},
        "convert": {"tasks": 2},
        "execution": {
            "scheduler": "slurm",
            "launcher": "srun",
            "runtime": "none",
            "gpus_per_node": 0,
            "tasks_per_node": 0,
            "srun_mpi": "pmix",
        },
        "train": {"run_name": "slurm", "tasks": 2, "nodes": 2, "seed": 0, "batch_size": 4, "epochs": 2,
                  "warmup_epochs": 0},
        # An unreachable target: the run does all its epochs.
        "cosmoflow": {"target_mae": 0.001},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# Every stage through srun on the test cluster, no container, no GPU.
SRUN = {"scheduler": "slurm", "launcher": "srun", "runtime": "none", "gpus_per_node": 0, "tasks_per_node": 0,
        "srun_mpi": "pmix"}


def _job_ids(logdir: Path, rule: str) -> list[str]:
    """SLURM job ids of ``rule``'s jobs: the plugin names each job's log ``<jobid>.log``."""
    return sorted(p.stem for p in (logdir / f"rule_{rule}").rglob("*.log"))


def _allocation(slurm: Cluster, job: str) -> tuple[str, str]:
    """(nodes, CPUs) a finished job held; MinJobAge keeps it known to scontrol."""
    shown = slurm.run("scontrol", "--oneliner", "show", "job", job).stdout
    return re.search(r" NumNodes=(\d+) ", shown)[1], re.search(r" NumCPUs=(\d+) ", shown)[1]


def test_pipeline_runs_through_slurm(slurm, tmp_path):
    logdir = tmp_path / "slurm_logs"
    result = slurm.run(
        str(BIN / "snakemake"),
        "--profile", "profiles/slurm",
        "--workflow-profile", "tests/slurm/profile",
        "--configfile", "profiles/slurm/pipeline.yaml", str(_pipeline_config(tmp_path)),
        "--slurm-logdir", str(logdir),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    results = tmp_path / "results"

    run = json.loads((results / "runs/slurm/run.json").read_text())
    assert run["status"] == "aborted" and run["epochs_run"] == 2
    assert (run["world_size"], run["nodes"], run["local_world_size"], run["launcher"]) == (2, 2, 1, "srun")
    assert len((results / "runs/slurm/metrics.jsonl").read_text().splitlines()) == 2
    assert run["spec"] == json.loads((results / "runs/slurm/spec.json").read_text())
    assert run["target"]["threshold"] == 0.001
    assert "slurm" in (results / "report/index.html").read_text()
    for split, files in (("train", 16), ("validation", 8)):
        summary = json.loads((results / f"data/cosmoflow/synth/npy/{split}/convert.json").read_text())
        assert (summary["ok"], summary["failed"], summary["ranks"]) == (files, 0, 2)
        assert all(rank["files"] for rank in summary["per_rank"])

    # Every rule ran as its own SLURM job but the pages, local rules of the submitting host;
    # training's job held both nodes and ran a step on each.
    jobs = {rule: _job_ids(logdir, rule) for rule in ("synth", "convert", "lists", "spec", "train", "run_page")}
    assert {rule: len(ids) for rule, ids in jobs.items()} == {
        "synth": 1, "convert": 2, "lists": 2, "spec": 1, "train": 1, "run_page": 0
    }
    del jobs["run_page"]
    ctld = slurm.log()
    for ids in jobs.values():
        for job in ids:
            assert re.search(rf"_job_complete: JobId={job} WEXITSTATUS 0", ctld), job
    # Allocations from scontrol: slurmctld logs a job started by backfill without its CPUs.
    for job in jobs["convert"]:
        assert _allocation(slurm, job) == ("1", "2"), job
    (train,) = jobs["train"]
    assert _allocation(slurm, train) == ("2", "2")
    for node in cluster.NODES:
        assert f"launch task StepId={train}.0 " in slurm.log(f"{node}/slurmd.log"), node


def test_classify_runs_through_slurm(slurm, tmp_path):
    """The classify workload's arrays, training on 2 nodes x 1 gloo rank as SLURM jobs, pages on the submitting host."""
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (make deps)")
    config = tmp_path / "classify.yaml"
    config.write_text(yaml.safe_dump({
        "results": str(tmp_path / "results"),
        "execution": SRUN,
        "images": {"train_samples": 600, "test_samples": 200},
        "train": {"run_name": "slurm-classify", "tasks": 2, "nodes": 2, "batch_size": 32, "epochs": 1},
        "classify": {"filters": 4, "dense_width": 16, "target_accuracy": 0.999},
    }))
    logdir = tmp_path / "slurm_logs"
    result = slurm.run(
        str(BIN / "snakemake"),
        "--profile", "profiles/slurm",
        "--workflow-profile", "tests/slurm/profile",
        "--configfile", "profiles/slurm/pipeline.yaml", "config/classify.yaml", str(config),
        "--slurm-logdir", str(logdir),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    run = json.loads((tmp_path / "results/runs/slurm-classify/run.json").read_text())
    assert (run["workload"], run["world_size"], run["nodes"], run["launcher"]) == ("classify", 2, 2, "srun")
    assert sum(map(sum, run["tallies"]["test"]["confusion"])) == 200
    jobs = {rule: _job_ids(logdir, rule) for rule in ("arrays", "spec", "train")}
    assert {rule: len(ids) for rule, ids in jobs.items()} == {"arrays": 1, "spec": 1, "train": 1}
    assert 'href="slurm-classify.html"' in (tmp_path / "results/report/index.html").read_text()
    (train,) = jobs["train"]
    assert _allocation(slurm, train) == ("2", "2")


@pytest.mark.mpi
@pytest.mark.slow
def test_sweep_runs_as_slurm_job_arrays(slurm, tmp_path):
    """The CI sweep scenario with --slurm-array-jobs: each rung's two elements are one sbatch
    --array (two tasks of one array job id), rung 1 selected from rung 0 across the jobs."""
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (make deps)")
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        **yaml.safe_load(SCENARIO.read_text()),
        "results": str(tmp_path / "results"),
        "execution": SRUN,
    }))
    logdir = tmp_path / "slurm_logs"
    result = slurm.run(
        str(BIN / "snakemake"), "sweep",
        "--profile", "profiles/slurm",
        "--workflow-profile", "tests/slurm/profile",
        "--configfile", "profiles/slurm/pipeline.yaml", "config/classify.yaml", str(config),
        "--slurm-logdir", str(logdir), "--slurm-array-jobs", "sweep_element",
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    check_halving(tmp_path / "results/sweeps/ci")
    # The plugin names an array task's log <array job id>_<task>.log: two arrays of two tasks.
    tasks = sorted(p.stem for p in (logdir / "rule_sweep_element").rglob("*.log"))
    arrays: dict[str, list[str]] = {}
    for name in tasks:
        job, _, index = name.partition("_")
        arrays.setdefault(job, []).append(index)
    assert sorted(map(sorted, arrays.values())) == [["1", "2"], ["1", "2"]], tasks
    ctld = slurm.log()
    for job in arrays:
        assert re.search(rf"_job_complete: JobId={job}_[12]\(\d+\) WEXITSTATUS 0", ctld), job


def test_experiment_runs_through_slurm(slurm, tmp_path):
    """An experiment of two arms (ddp, fsdp) over the two local systems: the 1-rank runs on one
    node, the 2-rank runs on both; its page renders in Chromium from those runs."""
    config = _pipeline_config(tmp_path)
    settings = yaml.safe_load(config.read_text())
    settings["experiments"] = {"cmp": {"systems": ["LOCAL_1x1x8", "LOCAL_2x1x4"], "seeds": 1, "train": {"epochs": 1},
                                       "arms": {"ddp": {"train": {"strategy": "ddp"}},
                                                "fsdp": {"train": {"strategy": "fsdp"}}}}}
    config.write_text(yaml.safe_dump(settings))
    logdir = tmp_path / "slurm_logs"
    result = slurm.run(
        str(BIN / "snakemake"), "experiments",
        "--profile", "profiles/slurm",
        "--workflow-profile", "tests/slurm/profile",
        "--configfile", "profiles/slurm/pipeline.yaml", str(config),
        "--slurm-logdir", str(logdir),
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    runs = tmp_path / "results/runs"
    layouts = {"LOCAL_1x1x8": (1, 1, "srun"), "LOCAL_2x1x4": (2, 2, "srun")}
    expected = {f"cosmoflow-cmp-{arm}-{system}-s0": layout for system, layout in layouts.items()
                for arm in ("ddp", "fsdp")}
    for run, layout in expected.items():
        summary = json.loads((runs / run / "run.json").read_text())
        assert (summary["world_size"], summary["nodes"], summary["launcher"]) == layout, run
        assert summary["spec"]["train"]["strategy"] == run.split("-")[2]
    # profiles/slurm turns the preflight on: the 2-rank runs' allocations were checked by srun first
    preflight = json.loads((runs / "cosmoflow-cmp-ddp-LOCAL_2x1x4-s0/preflight.json").read_text())
    assert (preflight["ok"], preflight["world_size"], preflight["launcher"]) == (True, 2, "srun")
    assert not (runs / "cosmoflow-cmp-ddp-LOCAL_1x1x8-s0/preflight.json").exists()  # one rank: nothing to check
    site = tmp_path / "results/report/experiments/cmp"
    summary = json.loads((site / "summary.json").read_text())
    assert sorted(summary["runs"]) == sorted(expected) and summary["missing"] == []
    assert [v.split(":")[0] for v in summary["verdicts"]] == [
        "fsdp vs ddp at LOCAL_1x1x8 (1 rank)", "fsdp vs ddp at LOCAL_2x1x4 (2 ranks)"]
    shown = harness_result(site, PAGE_HARNESS.format(page="index.html"), tmp_path / "chromium")
    assert shown["title"] == "cmp" and shown["images"] == shown["decoded"] >= 4
    allocations = sorted(_allocation(slurm, job)[0] for job in _job_ids(logdir, "experiment_train"))
    assert allocations == ["1", "1", "2", "2"]

"""Hyperparameter sweeps: the space checked up front, every point run exactly once whatever runs it,
reruns after kill -9, failed trials recorded, successive halving, and the report page.

* definitions: unknown keys, bad values and bad axes are one error each, before anything runs;
  random draws are reproducible and inside their distributions;
* results file: a torn last line (a killed writer) is cut off by the next writer, never read;
* array elements and halving rungs (in-process, a scoring runner): every task once, the rung
  after keeps the best 1/eta;
* real trainings on Debian's Fashion-MNIST: ``mpirun -np 3 hpcdl sweep`` (one point fails: its
  batch cannot be filled), ``kill -9`` of a local pool then a rerun, the page in Chromium and
  the best point's spec.json trained by ``hpcdl train``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_tool, tool_env
from helpers.browser import PAGE_HARNESS, harness_result
from helpers.fashion import fashion_subset
from hpcdl import records
from hpcdl.sweep import execute, lock, plan, report, results
from hpcdl.sweep.results import Trial
from hpcdl.sweep.run import _Share, close_rung
from hpcdl.sweep.space import SweepError, build, rung_epochs, rung_sizes
from hpcdl.sweep.trial import Task, Where

QUICK = {"epochs": 1, "batch_size": 32, "initial_lr": 0.001, "base_lr": 0.02, "warmup_epochs": 0,
         "stop_at_target": False, "device": "cpu"}
SMALL = {"filters": 4, "dense_width": 16}


def definition(space: dict, **options) -> dict:
    return {"workload": "classify", "train": {**QUICK, **options.pop("train", {})}, "params": SMALL,
            "space": space, **options}


# -- definitions -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("space", "options", "message"), [
    ({"filterz": [4, 8]}, {}, "sweep.space.filterz: unknown setting of the engine or the classify workload"),
    ({"kernel_size": [3, 4]}, {}, "sweep point kernel_size=4: classify.kernel_size"),
    ({"base_lr": [0.01, 0.01]}, {}, "sweep.space.base_lr: a value is listed twice"),
    ({"base_lr": {"distribution": "loguniform", "low": 0.001, "high": 0.1}}, {},
     "sweep.space.base_lr: a distribution needs mode: random"),
    ({"base_lr": {"distribution": "loguniform", "low": 0, "high": 0.1}}, {"mode": "random", "samples": 3},
     "loguniform needs low > 0"),
    ({"filters": [4]}, {"mode": "random"}, "sweep.samples: random mode needs samples > 0"),
    ({"filters": [4]}, {"backend": "slurm"}, "sweep.backend"),
    ({"filters": [4]}, {"heatmap": ["filters", "dropout"]}, "sweep.heatmap: expected two keys of sweep.space"),
    ({"epochs": [1, 3]}, {"rungs": 1}, "sweep.space.epochs: successive halving sets each rung's epochs"),
    ({"run_name": ["a", "b"]}, {}, "sweep.space.run_name: every trial's run is named by the sweep"),
])
def test_bad_definitions_are_one_clear_error(space: dict, options: dict, message: str) -> None:
    with pytest.raises(SweepError) as caught:
        build(definition(space, **options))
    assert message in str(caught.value)


def test_bad_point_is_named_by_the_cli_before_anything_runs(tmp_path: Path) -> None:
    bad = json.dumps(definition({"batch_size": [32, 0]}))
    result = run_tool([str(BIN / "hpcdl"), "sweep-plan", str(tmp_path / "sweep.json"), "--json", bad])
    assert result.returncode == 2 and "sweep point batch_size=0: train.batch_size" in result.stderr
    assert not (tmp_path / "sweep.json").exists()


def test_grid_and_random_points() -> None:
    grid = build(definition({"filters": [4, 8, 16], "base_lr": [0.01, 0.1]}))
    assert [p.values for p in grid.points[:2]] == [{"filters": 4, "base_lr": 0.01}, {"filters": 4, "base_lr": 0.1}]
    assert len({p.id for p in grid.points}) == 6
    space = {"base_lr": {"distribution": "loguniform", "low": 1e-3, "high": 1e-1},
             "dropout": {"distribution": "uniform", "low": 0.0, "high": 0.5},
             "filters": {"distribution": "int", "low": 2, "high": 9}, "pool": ["max", "avg"]}
    one, two = (build(definition(space, mode="random", samples=40, seed=7)) for _ in range(2))
    assert [p.values for p in one.points] == [p.values for p in two.points]  # seeded: the same draws
    values = [p.values for p in one.points]
    assert all(1e-3 <= v["base_lr"] <= 1e-1 and 0 <= v["dropout"] <= 0.5 and 2 <= v["filters"] <= 9 for v in values)
    assert {v["pool"] for v in values} == {"max", "avg"} and {type(v["filters"]) for v in values} == {int}
    # log-uniform: about as many draws below the geometric middle (0.01) as above
    assert 10 <= sum(v["base_lr"] < 0.01 for v in values) <= 30
    other = build(definition(space, mode="random", samples=40, seed=8))
    assert [p.values for p in other.points] != values


def test_workflow_sweep_keeps_the_config_train_section(tmp_path: Path) -> None:
    """The definition the workflow writes (its config validated by the schema, which fills
    defaults) keeps config/classify.yaml's train: values under sweep.train's, under the point's."""
    overlay = {"results": str(tmp_path / "results"), "sweep": {
        "name": "keep", "backend": "local", "tasks": 1, "space": {"dropout": [0.1, 0.2], "momentum": [0.5]},
        "train": {"epochs": 1}}}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(overlay))
    plan = tmp_path / "results/sweeps/keep/sweep.json"
    result = run_tool([str(BIN / "snakemake"), str(plan), "--cores", "1", "--configfile", "config/classify.yaml",
                       str(tmp_path / "sweep.yaml")], cwd=REPO, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    sweep = build(json.loads(plan.read_text()))
    config = yaml.safe_load((REPO / "config/classify.yaml").read_text())["train"]
    for point in sweep.points:
        train = sweep.spec(point).train
        assert (train.weight_decay, train.shuffle, train.lr_scheduler_decays) == (
            config["weight_decay"], True, tuple(config["lr_scheduler_decays"]))
        assert (train.epochs, train.momentum) == (1, 0.5)  # sweep.train, then the point
    best = report.best_files(sweep, finished(Task(sweep.points[1], 0, 1, True), Where(0, 0, 1, "s"), 0.5), tmp_path)
    written = yaml.safe_load((tmp_path / "best/config.yaml").read_text())
    assert written["train"]["weight_decay"] == config["weight_decay"] and written["train"]["shuffle"] is True
    assert written["classify"]["dropout"] == 0.2 and best.params.dropout == 0.2


# -- results file ----------------------------------------------------------------------------------
def test_torn_last_line_is_cut_by_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / results.TRIALS
    results.append(path, '{"a": 1}\n')
    with open(path, "ab") as f:
        f.write(b'{"a": 2, "torn')  # a writer killed mid-line
    assert [row for _, row in results._lines(path)] == [{"a": 1}]
    results.append(path, '{"a": 3}\n')
    assert path.read_text() == '{"a": 1}\n{"a": 3}\n'


# -- arrays and halving, in-process ----------------------------------------------------------------
def scoring(task: Task, where: Where) -> Trial:
    """A runner that scores a point by its values (more filters, smaller rate: better)."""
    value = task.point.values["filters"] / 100 - task.point.values["base_lr"] + task.epochs / 1000
    return finished(task, where, value)


def finished(task: Task, where: Where, value: float) -> Trial:
    return Trial(id=task.point.id, run=f"r{task.point.index}", rung=task.rung, point=task.point.values, seed=0,
                 epochs=task.epochs,
                 status="aborted", value=value, metric="accuracy", mode="max", final=value, test={}, history=[],
                 error=None, wall_s=0.0, started=time.time(), host="here", rank=where.rank, session=where.session)


def test_array_elements_and_rungs_run_every_task_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = build(definition({"filters": [2, 4, 6, 8, 10], "base_lr": [0.01, 0.02, 0.03]},
                             rungs=2, eta=3, train={"epochs": 9}))
    assert (rung_sizes(sweep), rung_epochs(sweep)) == ([15, 5, 2], [1, 3, 9])
    for rung, elements in ((0, 4), (1, 2), (2, 3)):  # more elements than points in the last rung
        if rung:
            assert close_rung(sweep, tmp_path, tmp_path / "runs", rung - 1, tmp_path / f"rung{rung - 1}.json") == 0
        with pytest.raises(plan.IncompleteRung):
            plan.rung_tasks(sweep, results.read(tmp_path), rung + 1)
        for g in range(elements):
            share = _Share(sweep, tmp_path, tmp_path / "runs", rung, g, elements)
            execute.run_serial(share, scoring, Where(g, 0, 1, f"s{rung}{g}"))
    done = results.read(tmp_path)
    lines = (tmp_path / results.TRIALS).read_text().splitlines()
    assert len(lines) == len(done) == 15 + 5 + 2  # nothing twice
    best_first = plan.ranked([done[(p.id, 0)] for p in sweep.points])
    kept = {t.id for t in best_first[:5]}
    assert {pid for pid, rung in done if rung == 1} == kept
    assert {pid for pid, rung in done if rung == 2} == {t.id for t in plan.ranked(
        [done[(pid, 1)] for pid in kept])[:2]}
    assert all(t.epochs == rung_epochs(sweep)[t.rung] for t in done.values())
    rerun = execute.Dispatch(sweep, tmp_path, tmp_path / "runs")  # the whole sweep again: nothing left to hand out
    assert rerun.next() is None


def killing(task: Task, where: Where) -> Trial:
    """:func:`scoring`, but the trials of 6 and 8 filters die as the out-of-memory killer kills."""
    if task.point.values["filters"] in (6, 8):
        os.kill(os.getpid(), signal.SIGKILL)
    return scoring(task, where)


def test_killed_pool_worker_fails_its_trial_and_the_pool_goes_on(tmp_path: Path) -> None:
    sweep = build(definition({"filters": [2, 4, 6, 8, 10], "base_lr": [0.01]}))
    runs = tmp_path / "runs"
    execute.run_local(execute.Dispatch(sweep, tmp_path, runs), killing, 2, "cpu", "s")
    done = results.read(tmp_path)
    assert len((tmp_path / results.TRIALS).read_text().splitlines()) == len(done) == 5  # each point once
    killed = sorted((t for t in done.values() if not t.ok), key=lambda t: t.point["filters"])
    assert [(t.point["filters"], t.status, t.error) for t in killed] == [
        (f, "error", "killed by signal 9 (likely out of memory)") for f in (6, 8)]
    assert [t.run for t in killed] == ["sweep-t2", "sweep-t3"]
    assert (runs / "sweep-t2" / "error.txt").read_text() == "killed by signal 9 (likely out of memory)\n"
    assert all(t.ok for t in done.values() if t.point["filters"] not in (6, 8))


def test_rerun_after_a_dead_session_runs_what_it_had_in_flight_last(tmp_path: Path) -> None:
    """An MPI job dies with any of its ranks (the out-of-memory killer's SIGKILL): a rerun first
    finishes every task the dead job had not started, then retries the ones it had running."""
    sweep = build(definition({"filters": [2, 4, 6, 8], "base_lr": [0.01]}))
    dead = execute.Dispatch(sweep, tmp_path, tmp_path / "runs")
    dead.session = "dead"
    handed = [dead.next(), dead.next()]  # filters 2 and 4 running; 2 finishes, then the job dies
    dead.finished(scoring(handed[0], Where(0, 0, 1, "dead")))
    execute.run_serial(execute.Dispatch(sweep, tmp_path, tmp_path / "runs"), scoring, Where(0, 0, 1, "rerun"))
    lines = [json.loads(x) for x in (tmp_path / results.TRIALS).read_text().splitlines()]
    assert [r["point"]["filters"] for r in lines] == [2, 6, 8, 4]  # each once, the suspect last


# -- real trials -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fashion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fashion_subset(tmp_path_factory)


def plan_file(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "sweep.json"
    result = run_tool([str(BIN / "hpcdl"), "sweep-plan", str(path), "--json", json.dumps(data)])
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def mpi_sweep(fashion: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """``mpirun -np 3 hpcdl sweep`` over 8 points; batch 4,096 cannot be filled by 1,080 images."""
    root = tmp_path_factory.mktemp("mpi_sweep")
    path = plan_file(root, definition({"filters": [4, 8], "batch_size": [32, 4096], "base_lr": [0.02, 0.1]},
                                      progress_every=0.5))
    result = run_tool(["mpirun", "-np", "3", str(BIN / "hpcdl"), "sweep", "--definition", str(path),
                       "--data-dir", str(fashion), "--output-dir", str(root / "out"), "--runs-dir", str(root / "runs")],
                      timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return root, result


@pytest.mark.mpi
def test_mpirun_three_ranks_each_point_once_failures_recorded(mpi_sweep) -> None:
    root, result = mpi_sweep
    lines = [json.loads(x) for x in (root / "out" / results.TRIALS).read_text().splitlines()]
    sweep = build(json.loads((root / "sweep.json").read_text()))
    assert sorted(r["id"] for r in lines) == sorted(p.id for p in sweep.points)  # each point exactly once
    assert {r["rank"] for r in lines} == {0, 1, 2}  # every rank trained, the coordinator too
    failed = [r for r in lines if r["point"]["batch_size"] == 4096]
    assert len(failed) == 4 and all(r["status"] == "error" and r["value"] is None for r in failed)
    assert all("cannot fill one global batch of 4096" in r["error"] for r in failed)
    good = [r for r in lines if r["point"]["batch_size"] == 32]
    assert all(r["status"] == "aborted" and 0.1 < r["value"] <= 1 for r in good)  # above chance (0.1)
    assert all(len(r["history"]) == 1 and r["history"][0]["val_accuracy"] == r["value"] for r in good)
    assert all(r["seed"] == 0 and r["wall_s"] > 0 and r["host"] for r in lines)
    assert result.stdout.count("] p") == 8 and "progress: 8/8 done (100.0 %)" in result.stdout
    # each trial an ordinary run under the runs directory, named after the sweep and its point
    assert sorted(r["run"] for r in lines) == sorted(f"sweep-t{p.index}" for p in sweep.points)
    for r in good:
        summary = records.read_summary(root / "runs" / r["run"])
        assert (summary.run_name, summary.best, summary.spec["train"]["batch_size"]) == (r["run"], r["value"], 32)
    assert not list((root / "runs").glob("*/checkpoint.pt"))


@pytest.mark.mpi
@pytest.mark.browser
def test_report_page_and_best_point_trains(mpi_sweep, fashion: Path, tmp_path: Path) -> None:
    root, _ = mpi_sweep
    page = tmp_path / "page"
    result = run_tool([str(BIN / "hpcdl"), "sweep-report", str(root / "out"), "--output", str(page)])
    assert result.returncode == 0, result.stderr
    summary = json.loads((page / "summary.json").read_text())
    assert (summary["points"], summary["trials"], summary["failed"], summary["missing"]) == (8, 8, 4, [])
    lines = [json.loads(x) for x in (root / "out" / results.TRIALS).read_text().splitlines()]
    best = max((r for r in lines if r["value"] is not None), key=lambda r: r["value"])
    assert (summary["kind"], summary["name"], summary["workload"]) == ("sweep", "sweep", "classify")
    assert summary["best"]["id"] == best["id"] and summary["best"]["run"] == best["run"]
    assert sorted(summary["runs"]) == sorted(r["run"] for r in lines)
    busy = sum(r["wall_s"] for r in lines)
    assert summary["busy_s"] == pytest.approx(busy)
    assert 0 < summary["efficiency"] <= 1 and summary["speedup"] == pytest.approx(busy / summary["wall_s"])
    seen = harness_result(page, PAGE_HARNESS.format(page="index.html"), tmp_path / "chromium")
    assert {"Leaderboard", "Metric against each hyperparameter", "Parallel coordinates and heat map",
            "Time: cluster against a local run", "Failed trials"} <= set(seen["headings"])
    trained = [r["run"] for r in lines if r["value"] is not None]
    assert all(run in seen["text"] for run in trained)  # the leaderboard: the four points that trained
    assert seen["images"] == 5 and seen["decoded"] == 5  # 3 keys, parallel coordinates, heat map
    assert "complete: every point has a result" in seen["text"] and "cannot fill one global batch" in seen["text"]
    spec = json.loads((page / "best" / "spec.json").read_text())
    assert spec["train"]["run_name"] == "sweep-best"  # not the trial's run, which it would resume
    assert {k: spec["train"][k] for k in ("batch_size", "base_lr")} == {
        k: best["point"][k] for k in ("batch_size", "base_lr")} and spec["params"]["filters"] == best["point"]["filters"]
    trained = run_tool([str(BIN / "hpcdl"), "train", "--spec", str(page / "best" / "spec.json"), "--data-dir",
                        str(fashion), "--output-dir", str(tmp_path / "best_run")])
    assert trained.returncode == 0, trained.stderr
    run = json.loads((tmp_path / "best_run" / "run.json").read_text())
    # the same settings and seed: the same result, up to a prediction or two (other thread count)
    assert run["best"] == pytest.approx(best["value"], abs=0.02)


def test_kill_9_midway_then_rerun_loses_and_repeats_nothing(fashion: Path, tmp_path: Path) -> None:
    path = plan_file(tmp_path, definition({"filters": [4, 8], "dense_width": [16, 32], "base_lr": [0.02, 0.05]},
                                          train={"epochs": 2}))
    out = tmp_path / "out"
    cmd = [str(BIN / "hpcdl"), "sweep", "--definition", str(path), "--data-dir", str(fashion),
           "--output-dir", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, env=tool_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    trials = out / results.TRIALS
    deadline = time.time() + 300
    while time.time() < deadline and (not trials.exists() or trials.read_text().count("\n") < 2):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = trials.read_text().count("\n")
    assert 2 <= before < 8, "killed midway"
    rerun = run_tool(cmd, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    ids = [json.loads(x)["id"] for x in trials.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 8  # no duplicate, no lost trial
    assert f"{8 - before} trial(s) run here" in rerun.stdout
    assert all(math.isfinite(json.loads(x)["value"]) for x in trials.read_text().splitlines())
    sessions = results.sessions(out)
    # the killed session never ended
    assert [s["event"] for s in sessions if s["event"] != "task"] == ["start", "start", "end"]
    changed = run_tool([str(BIN / "hpcdl"), "sweep", "--definition", str(plan_file(tmp_path, definition(
        {"filters": [4, 16]}))), "--data-dir", str(fashion), "--output-dir", str(out)])
    assert changed.returncode == 2 and "holds the results of another definition" in changed.stderr


def test_second_sweep_on_a_directory_stops_at_once(fashion: Path, tmp_path: Path) -> None:
    path = plan_file(tmp_path, definition({"filters": [4, 8]}))
    out = tmp_path / "out"
    cmd = [str(BIN / "hpcdl"), "sweep", "--definition", str(path), "--data-dir", str(fashion),
           "--output-dir", str(out), "--runs-dir", str(tmp_path / "runs"), "--workers", "1"]
    started = time.monotonic()
    procs = [subprocess.Popen(cmd, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    ended: dict[int, float] = {}
    while len(ended) < 2 and time.monotonic() - started < 600:
        for i, proc in enumerate(procs):
            if i not in ended and proc.poll() is not None:
                ended[i] = time.monotonic() - started
        time.sleep(0.05)
    outputs = [proc.communicate() for proc in procs]
    codes = sorted((proc.returncode, i) for i, proc in enumerate(procs))
    (ran, winner), (refused, loser) = codes
    assert (ran, refused) == (0, 2), outputs
    assert ended[loser] < 5
    line = outputs[loser][1].strip()
    assert "\n" not in line and f"{out} is in use by sweep pid {procs[winner].pid} on " in line, line
    ids = [json.loads(x)["id"] for x in (out / results.TRIALS).read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 2  # each point once
    assert (out / ".sweep.lock").read_text() == ""  # the holder's name goes with it
    # array elements of one sweep share the directory; a whole sweep beside them is refused
    with lock.holding(out, shared=True), lock.holding(out, shared=True):
        with pytest.raises(lock.Busy, match="in use by array elements of a sweep"):
            with lock.holding(out, shared=False):
                pass


def test_each_trial_runs_with_the_values_of_its_point(fashion: Path, tmp_path: Path) -> None:
    """An engine setting, a workload parameter, a schedule list and the epochs, read back from
    each trial's run record: what it trained with, not only what was planned."""
    space = {"epochs": [2, 1], "weight_decay": [0.001, 0.01], "dropout": [0.1], "lr_scheduler_epochs": [[1, 1.5]]}
    path = plan_file(tmp_path, definition(space, train={"lr_scheduler_decays": [0.5, 0.25]}))
    result = run_tool([str(BIN / "hpcdl"), "sweep", "--definition", str(path), "--data-dir", str(fashion),
                       "--output-dir", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"), "--workers", "2"])
    assert result.returncode == 0, result.stderr[-3000:]
    trials = [json.loads(x) for x in (tmp_path / "out" / results.TRIALS).read_text().splitlines()]
    assert len(trials) == 4
    for trial in trials:
        point, run = trial["point"], tmp_path / "runs" / trial["run"]
        summary = records.read_summary(run)
        train, params = summary.spec["train"], summary.spec["params"]
        assert (train["epochs"], train["weight_decay"], params["dropout"], train["lr_scheduler_epochs"]) == (
            point["epochs"], point["weight_decay"], point["dropout"], point["lr_scheduler_epochs"])
        epochs = records.read_epochs(run)
        assert summary.epochs_run == len(epochs) == trial["epochs"] == point["epochs"]
        # the schedule used: the base rate at the end of epoch 1, 0.25 of it after epoch 1.5
        assert epochs[0].lr == pytest.approx(0.02)
        assert all(e.lr == pytest.approx(0.005) for e in epochs[1:])

"""Experiments: the experiments: section checked key by key and expanded to ordinary runs (world
sizes and system files), the statistics and page on run directories written here with known
values, the workflow's plans under srun/pyxis, mpirun and LSF, and one real tiny experiment
(CosmoFlow, 1 and 2 gloo ranks x 2 seeds x 2 arms) through the workflow, its page in Chromium.

Known values of the written runs (accuracies as fractions, three epochs, three seeds per arm):

* none: validation [.80 .85 .88], [.78 .86 .90], [.82 .84 .89]; clean-training accuracy at the last
  epoch .92, .93, .94 (gaps .04, .03, .05); test .87, .89, .88 (mean .88, std .01);
* a0.2: validation [.81 .86 .89], [.79 .87 .91], [.83 .85 .90]; test .885, .895, .89: +0.01, the
  intervals mean ± 2·se overlap;
* a0.4: test .91, .92, .93: +0.04, the intervals do not overlap.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import BIN, REPO, run_tool, train_command
from helpers.browser import PAGE_HARNESS, harness_result
from hpcdl import records
from hpcdl.experiments import report, stats
from hpcdl.experiments.gather import gather
from hpcdl.experiments.runs import ENGINE_THREADS, ExperimentError, experiment, experiments
from hpcdl.systems import SystemConfigError

SNAKEMAKE = str(BIN / "snakemake")
SCHEMA = REPO / "workflow/schemas/system.schema.yaml"
SYSTEMS = REPO / "config/systems"
PYXIS = {"scheduler": "slurm", "launcher": "srun", "runtime": "pyxis", "image": "ghcr.io#hpcdl/hpcdl:0.1.0",
         "srun_mpi": "pmix"}
SITE = ["--default-resources", "slurm_partition=gpu", "slurm_account=m1234"]
ARMS = {"b4": {"train": {"batch_size": 4}}, "b2": {"train": {"batch_size": 2}}}


def base_config(layer: str = "", **sections: Any) -> dict[str, Any]:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    if layer:
        config.update(yaml.safe_load((REPO / layer).read_text()))
    config.update(sections)
    return config


def expand(section: dict[str, Any], name: str = "x", **config: Any) -> dict:
    return experiment(name, base_config(experiments={name: section}, **config), SCHEMA, str(REPO), "data").runs


# --- the section, checked key by key --------------------------------------------------------------


@pytest.mark.parametrize(("section", "message"), [
    ({"world_sizes": [1, 0]}, "experiments.x.world_sizes: 0 is not a positive number of ranks"),
    ({"world_sizes": [2, -1]}, "experiments.x.world_sizes: -1 is not a positive number of ranks"),
    ({"world_sizes": [1, 1]}, "experiments.x.world_sizes: a world size is listed twice"),
    ({"seeds": 0}, "experiments.x.seeds must be >= 1, got 0"),
    ({"seed": 3}, "experiments.x.seed: unknown setting (known: title, seeds, "),
    ({"train": {"tasks": 4}}, "experiments.x.train.tasks: an experiment sets the ranks and nodes"),
    ({"train": {"no_such_key": 1}}, "experiments.x.train.no_such_key: unknown setting of train"),
    ({"arms": {"a": {"train": {"foo": 1}}}}, "experiments.x.arms.a.train.foo: unknown setting of train (known: "),
    ({"arms": {"a": {"cosmoflow": {"filters": 3}}}}, "experiments.x.arms.a.cosmoflow.filters: unknown setting of"),
    ({"arms": {"a": {"classify": {}}}}, "experiments.x.arms.a: takes train: and cosmoflow: overrides only"),
    ({"arms": {}}, "experiments.x.arms: expected a mapping of one or more named arms"),
    ({"arms": {"a-b": {}}}, "experiments.x.arms: arm name 'a-b' is not letters, digits, _ and . only"),
    ({"systems": ["NOPE_1x1x1"]}, "no such system 'NOPE_1x1x1'"),
    ({"systems": ["../etc/passwd"]}, "experiments.x.systems: '../etc/passwd' is not a plain system name"),
])
def test_bad_experiments_are_refused_naming_the_key(section, message):
    with pytest.raises((ExperimentError, SystemConfigError)) as err:
        expand(section)
    assert message in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_experiment_name_must_be_plain():
    with pytest.raises(ExperimentError, match="experiment name 'a-b' is not letters"):
        experiments(base_config(experiments={"a-b": {}}), SCHEMA, str(REPO), "data")


def test_runs_seeds_and_linear_lr_scaling():
    runs = expand({"world_sizes": [2, 1], "seeds": 2, "train": {"epochs": 3}, "arms": ARMS}, "cmp")
    assert sorted(runs) == sorted(f"cosmoflow-cmp-{a}-w{n}-s{k}" for a in ARMS for n in (1, 2) for k in (0, 1))
    run = runs["cosmoflow-cmp-b2-w2-s1"]
    assert (run.arm, run.world_size, run.seed_index, run.point) == ("b2", 2, 1, "w2")
    assert run.train["seed"] == 1 and run.train["epochs"] == 3 and run.train["batch_size"] == 2
    assert run.train["run_name"] == "cosmoflow-cmp-b2-w2-s1"
    # base_lr holds at the smallest point's global batch (1 rank x 2): 2 ranks scale it by 2.
    assert run.train["scale_lr"] is True and run.train["reference_batch"] == 2
    assert run.resources["tasks"] == 2 and run.launch == f"{ENGINE_THREADS} mpirun -np 2 --oversubscribe"
    assert runs["cosmoflow-cmp-b4-w1-s0"].launch == ENGINE_THREADS
    # without arms: one arm "base" with the config's settings; --config hands numbers over as text
    assert list(expand({"world_sizes": [1], "seeds": "2"})) == ["cosmoflow-x-base-w1-s0", "cosmoflow-x-base-w1-s1"]
    # systems replace world_sizes
    systems = expand({"world_sizes": [1, 2], "systems": ["LOCAL_1x1x8", "LOCAL_2x1x4"], "seeds": 1})
    assert sorted(systems) == ["cosmoflow-x-base-LOCAL_1x1x8-s0", "cosmoflow-x-base-LOCAL_2x1x4-s0"]
    assert systems["cosmoflow-x-base-LOCAL_2x1x4-s0"].train["reference_batch"] == 8


def test_system_runs_take_the_system_settings_and_local_layout(tmp_path):
    config = base_config(train={"run_name": "demo", "tasks": 2, "seed": 5, "epochs": 40, "momentum": 0.8},
                         experiments={"s": {"systems": ["LOCAL_1x1x8", "LOCAL_2x1x4"], "seeds": 2, "scale_lr": False,
                                            "systems_dir": str(SYSTEMS)}})
    runs = experiment("s", config, SCHEMA, str(tmp_path), "data").runs
    assert {n: r.train["seed"] for n, r in runs.items()} == {
        "cosmoflow-s-base-LOCAL_1x1x8-s0": 5, "cosmoflow-s-base-LOCAL_1x1x8-s1": 6,
        "cosmoflow-s-base-LOCAL_2x1x4-s0": 5, "cosmoflow-s-base-LOCAL_2x1x4-s1": 6}
    for name, run in runs.items():
        system = name.split("-")[3]
        assert run.system == f"{SYSTEMS}/{system}.yaml" and run.where.endswith(f"(config + {SYSTEMS}/{system}.yaml)")
        assert run.train["batch_size"] == (8 if system == "LOCAL_1x1x8" else 4)
        assert (run.train["base_lr"], run.train["warmup_epochs"], run.train["staging_dir"]) == (0.008, 0, "")
        assert (run.train["epochs"], run.train["momentum"]) == (40, 0.8)  # the config's
        assert "scale_lr" not in run.train
    one = runs["cosmoflow-s-base-LOCAL_1x1x8-s0"]
    assert one.launch == ENGINE_THREADS and one.resources == {"tasks": 1, "nodes": 1, "runtime": 30}
    two = runs["cosmoflow-s-base-LOCAL_2x1x4-s1"]
    assert two.launch == f"{ENGINE_THREADS} mpirun -np 2 --oversubscribe"
    assert two.resources == {"tasks": 2, "nodes": 1, "mpi": "mpirun", "runtime": 30}
    assert config["train"]["seed"] == 5  # the config itself is not changed


def test_system_runs_under_srun_pyxis_take_the_system_nodes_gpus_and_mounts(tmp_path):
    config = base_config(execution=PYXIS, train={"run_name": "d", "tasks": 8, "batch_size": 8},
                         experiments={"s": {"systems": ["DGXA100_16x8x1", "DGXA100_4x8x1"], "seeds": 1}})
    data = str(tmp_path / "results/data/cosmoflow/synth")
    work = tmp_path / "work"
    config["results"] = str(tmp_path / "results")
    runs = experiment("s", config, SCHEMA, str(work), data).runs
    for system, nodes, walltime, base_lr in (("DGXA100_16x8x1", 16, 240, 0.032), ("DGXA100_4x8x1", 4, 480, 0.016)):
        run = runs[f"cosmoflow-s-base-{system}-s0"]
        words = run.launch.split()
        assert words[:9] == [*ENGINE_THREADS.split(), "srun", f"--nodes={nodes}", f"--ntasks={nodes * 8}",
                             "--ntasks-per-node=8", "--mpi=pmix", "--gpus-per-task=1"]
        results = tmp_path / "results"
        mounts = f"{work}:{work},{results}:{results},{data}:{data}:ro,/raid/scratch/hpcdl:/raid/scratch/hpcdl"
        assert f"--container-mounts={mounts}" in words and words[-1] == f"--container-workdir={work}"
        assert run.resources == {"tasks": nodes * 8, "nodes": nodes, "mpi": "srun", "gres": "gpu:8",
                                 "tasks_per_gpu": 1, "runtime": walltime}
        assert (run.train["batch_size"], run.train["base_lr"], run.train["staging_dir"]) == (
            1, base_lr, "/raid/scratch/hpcdl")
        # the smallest point's global batch (4 nodes x 8 ranks x 1) keeps base_lr
        assert run.train["reference_batch"] == 32


def write_system(directory: Path, name: str, **changes: Any) -> Path:
    directory.mkdir(exist_ok=True)
    system = yaml.safe_load((SYSTEMS / "DGXA100_4x8x1.yaml").read_text())
    system.update(changes)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump(system))
    return directory


@pytest.mark.parametrize(("name", "changes", "needle"), [
    ("DGXA100_4x8x1", {"walltime": "2h"}, "walltime: '2h': not an integer"),
    ("DGXA100_4x8x1", {"nodes": 2}, "says nodes x tasks_per_node x batch_size = 4x8x1 but the file sets 2x8x1"),
    ("DGXA100_2x8x1", {}, "name 'DGXA100_4x8x1' does not match the file name 'DGXA100_2x8x1'"),
    ("DGXA100_4x8x1", {"gpus_per_node": 4}, "tasks_per_node 8 is more ranks per node than its gpus_per_node 4"),
])
def test_bad_system_file_is_named(tmp_path, name, changes, needle):
    directory = write_system(tmp_path / "systems", name, **changes)
    with pytest.raises(SystemConfigError) as err:
        expand({"systems": [name], "systems_dir": str(directory)})
    assert str(err.value).startswith(f"{directory / name}.yaml: ") and needle in str(err.value)


def test_unknown_system_lists_the_known_ones_and_a_launch_error_names_the_system():
    with pytest.raises(SystemConfigError) as err:
        expand({"systems": ["DGXA100_1x8x1", "DGXH100_2x8x1"]})
    assert "config/systems/DGXH100_2x8x1.yaml: no such system 'DGXH100_2x8x1'" in str(err.value)
    assert "known: DGXA100_128x8x1, DGXA100_16x8x1, DGXA100_1x8x1, DGXA100_4x8x1, LOCAL_1x1x8, LOCAL_2x1x4" in str(err.value)
    with pytest.raises(ExperimentError) as err:
        expand({"systems": ["LOCAL_2x1x4"]}, execution={"scheduler": "slurm", "launcher": "none"})
    assert str(err.value) == "config/systems/LOCAL_2x1x4.yaml: stage: 2 nodes need a launcher (mpirun or srun), got 'none'"


def test_the_shipped_examples_expand_as_documented():
    def shipped(name: str, layer: str = "") -> dict:
        config = base_config(layer, **yaml.safe_load((REPO / f"config/experiments/{name}.yaml").read_text()))
        return experiments(config, SCHEMA, str(REPO), "data")[name].runs

    ddp_fsdp = shipped("ddp_vs_fsdp")
    assert {(r.arm, r.world_size, r.train["strategy"]) for r in ddp_fsdp.values()} == {
        (a, n, a) for a in ("ddp", "fsdp") for n in (1, 2)}
    mixup = shipped("mixup", "config/classify.yaml")
    assert sorted(mixup) == [f"classify-mixup-{a}-w2-s{k}" for a in ("a0.2", "none") for k in range(3)]
    run = mixup["classify-mixup-a0.2-w2-s1"]
    classify = yaml.safe_load((REPO / "config/classify.yaml").read_text())
    assert run.params == {**classify["classify"], "mixup_alpha": 0.2}
    assert mixup["classify-mixup-none-w2-s0"].params["mixup_alpha"] == 0.0
    assert (run.train["epochs"], run.train["stop_at_target"], run.train["train_eval_samples"]) == (6, False, 6000)
    assert run.train["seed"] == classify["train"].get("seed", 0) + 1
    assert sorted({r.world_size for r in shipped("scaling").values()}) == [1, 2, 4]
    strong = shipped("strong_scaling")
    assert sorted(strong) == ["cosmoflow-strong_scaling-base-LOCAL_1x1x8-s0", "cosmoflow-strong_scaling-base-LOCAL_2x1x4-s0"]
    # the mixup arms override the classify section: another workload refuses them, naming why
    with pytest.raises(ExperimentError, match=r"experiments.mixup.arms.none: takes train: and cosmoflow: overrides"):
        shipped("mixup")


# --- statistics and page, on run directories with known values -------------------------------------

VAL = {"none": [[.80, .85, .88], [.78, .86, .90], [.82, .84, .89]],
       "a0.2": [[.81, .86, .89], [.79, .87, .91], [.83, .85, .90]],
       "a0.4": [[.81, .86, .89], [.79, .87, .91], [.83, .85, .90]]}
TRAIN_LAST = {"none": [.92, .93, .94], "a0.2": [.95, .96, .97], "a0.4": [.95, .96, .97]}
TEST = {"none": [.87, .89, .88], "a0.2": [.885, .895, .89], "a0.4": [.91, .92, .93]}


def write_run(root: Path, arm: str, seed: int, test: bool = True, epochs: int = 3, world_size: int = 2,
              epoch_time: float = 10.0) -> Path:
    """A run directory as ``hpcdl train`` leaves it; the clean-training accuracy is validation +
    0.01 before the last epoch."""
    name = f"classify-mx-{arm}-w{world_size}-s{seed}"
    val, last = VAL[arm][seed][:epochs], TRAIN_LAST[arm][seed]
    run = root / name
    run.mkdir(parents=True)
    seconds = epoch_time + 0.1 * seed
    lines = [records.EpochRecord(e, 1.0 / e, 0.01, 1000.0 / seconds, seconds, 10.0 * e, {
        "val_loss": 1.0 - v, "val_accuracy": v, "trainset_loss": 0.5,
        "trainset_accuracy": last if e == 3 else v + 0.01}).to_json() for e, v in enumerate(val, 1)]
    (run / records.METRICS).write_text("\n".join(lines) + "\n")
    summary = records.RunSummary(
        run_name=name, workload="classify", status="aborted",
        target={"metric": "accuracy", "mode": "max", "threshold": 0.95}, best=max(val), final=val[-1],
        epochs_run=len(val), time_to_train_s=30.0 + 10 * seed, staging_s=1.0, world_size=world_size,
        local_world_size=world_size, nodes=1, launcher="mpirun", device="cpu", global_batch_size=64,
        train_samples=1000, eval_samples=200, parameters=1234, metric_names=["val_loss", "val_accuracy"],
        mlperf_benchmark=None, spec={"workload": "classify", "train": {"seed": seed}, "params": {"filters": 8}},
        test={"test_loss": 0.3, "test_accuracy": TEST[arm][seed]} if test else {})
    (run / records.SUMMARY).write_text(summary.to_json())
    return run


def arm_dirs(root: Path, arms: tuple[str, ...] = ("none", "a0.2"), seeds: int = 3, **kw: Any) -> dict[str, list[Path]]:
    return {arm: [write_run(root, arm, k, **kw) for k in range(seeds)] for arm in arms}


def analyse(groups: dict[str, list[Path]]) -> tuple[dict[str, list[stats.Point]], list[stats.Verdict]]:
    measured, _ = gather(groups)
    arms = {a: stats.points(measured, a) for a in groups}
    return arms, stats.verdicts(arms, "accuracy")


def page(groups: dict[str, list[Path]], out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    args = ["--name", "mx", "--title", "MixUp", "--output", str(out)]
    for arm, dirs in groups.items():
        args += ["--arm", arm, *map(str, dirs)]
    code = report.main(parser.parse_args(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_point_statistics_and_curves(tmp_path):
    groups = arm_dirs(tmp_path)
    arms, _ = analyse(groups)
    (none,) = arms["none"]
    assert (none.point, none.world_size, none.seeds) == ("w2", 2, [0, 1, 2])
    assert none.finals["test_accuracy"] == stats.Spread(pytest.approx(.88), pytest.approx(.01), .87, .89, 3)
    assert none.finals["val_accuracy"] == stats.Spread(pytest.approx(.89), pytest.approx(.01), .88, .90, 3)
    assert none.finals["gap_accuracy"] == stats.Spread(pytest.approx(.04), pytest.approx(.01), pytest.approx(.03),
                                                       pytest.approx(.05), 3)
    assert arms["a0.2"][0].finals["gap_accuracy"].mean == pytest.approx(.06)
    assert none.epoch_time_s.mean == pytest.approx(10.1)
    assert none.throughput.mean == pytest.approx(statistics.fmean(1000 / t for t in (10.0, 10.1, 10.2)))
    bands = stats.curves(gather(groups)[0])[("none", "w2")]
    assert bands["val_accuracy"] == [stats.BandPoint(1, pytest.approx(.80), .78, .82),
                                     stats.BandPoint(2, pytest.approx(.85), .84, .86),
                                     stats.BandPoint(3, pytest.approx(.89), .88, .90)]
    assert bands["gap_accuracy"][2] == stats.BandPoint(3, pytest.approx(.04), pytest.approx(.03), pytest.approx(.05))


def test_band_keeps_only_epochs_every_seed_has(tmp_path):
    groups = {"none": [write_run(tmp_path, "none", 0), write_run(tmp_path, "none", 1, epochs=2)]}
    bands = stats.curves(gather(groups)[0])[("none", "w2")]
    assert [p.epoch for p in bands["val_accuracy"]] == [1, 2] and [p.epoch for p in bands["gap_accuracy"]] == [1, 2]


def test_verdicts_judge_the_seed_spread(tmp_path):
    _, (within, beyond, between) = analyse(arm_dirs(tmp_path, ("none", "a0.2", "a0.4")))
    assert (within.base, within.other, within.metric, within.metric_exceeds_spread) == (
        "none", "a0.2", "test_accuracy", False)
    assert within.metric_delta == pytest.approx(0.01)
    assert within.text.startswith("a0.2 vs none at 2 ranks: ")
    assert within.text.endswith("; test accuracy +0.01, which is within the seed spread (sd none 0.01, a0.2 0.005;"
                                " 3 seeds each).")
    assert (beyond.other, beyond.metric_exceeds_spread) == ("a0.4", True)
    assert "test accuracy +0.04, which exceeds the seed spread" in beyond.text
    assert (between.base, between.other) == ("a0.2", "a0.4")  # every pair of arms


def test_single_seed_no_test_split_and_no_finite_metric(tmp_path):
    _, (single,) = analyse(arm_dirs(tmp_path / "one", seeds=1))
    assert single.metric_exceeds_spread is None and single.time_exceeds_spread is None
    assert "cannot be judged against (a single seed) the seed spread" in single.text and "1 seed each" in single.text
    _, (fallback,) = analyse(arm_dirs(tmp_path / "val", test=False))
    assert fallback.metric == "val_accuracy" and "final validation accuracy +0.01, which is within" in fallback.text
    groups = arm_dirs(tmp_path / "div", test=False)
    for run in groups["a0.2"]:  # the last epoch's accuracy non-finite, as a diverged run records it
        lines = (run / records.METRICS).read_text().splitlines()
        last = json.loads(lines[-1])
        last["metrics"].update(val_accuracy=None, trainset_accuracy=None)
        (run / records.METRICS).write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    _, (diverged,) = analyse(groups)
    assert diverged.metric_delta is None and diverged.text.endswith("; no finite accuracy to compare.")


def test_speedup_beyond_the_ideal_is_flagged_with_its_cause(tmp_path):
    # 1-rank runs 20 s per epoch, 2-rank runs 1 s: 20x at 2 ranks, far beyond the seeds' spread
    groups = {"none": [write_run(tmp_path, "none", k, world_size=n, epoch_time=t) for n, t in ((1, 20.0), (2, 1.0))
                       for k in range(3)]}
    arms, _ = analyse(groups)
    (flag,) = stats.flags(arms)
    assert (flag.world_size, flag.ideal) == (2, 2.0) and flag.speedup == pytest.approx(20.1 / 1.1)
    assert flag.text.startswith("none: 18.27x speed-up at 2 ranks against the ideal 2.00x (914 % efficiency)")
    assert "1-rank runs are slower per sample (49.8 samples/s per rank) than 2-rank runs (457 samples/s per rank)" \
        in flag.text and "CPU threads" in flag.text and "loaded" in flag.text
    # 1.9x at 2 ranks is below the ideal: nothing to flag
    ok = {"none": [write_run(tmp_path / "ok", "none", k, world_size=n, epoch_time=t) for n, t in ((1, 2.0), (2, 1.05))
                   for k in range(3)]}
    assert stats.flags(analyse(ok)[0]) == []


def test_page_and_summary(tmp_path, capsys):
    out = tmp_path / "site"
    groups = arm_dirs(tmp_path / "runs")
    code, stdout, stderr = page(groups, out, capsys)
    assert code == 0 and stderr == ""
    line = stdout.splitlines()[0]
    assert line.startswith("a0.2 vs none at 2 ranks:") and stdout.splitlines()[-1] == (
        f"6 finished run(s), 0 failed or unfinished: {out / 'index.html'}")
    html = (out / "index.html").read_text()
    assert line in html and "do not overlap" in html  # the verdict and its rule
    assert "<script" not in html and "http" not in html
    assert html.count("data:image/png;base64,") == len(list(out.glob("*.png"))) >= 5
    names = [d.name for dirs in groups.values() for d in dirs]
    assert all(html.count(f"<td>{n}</td>") == 1 for n in names)
    assert "final test accuracy" in html and "final train − validation accuracy" in html
    assert "<td>0.88 ± 0.01</td>" in html and "<td>0.04 ± 0.01</td>" in html
    summary = json.loads((out / "summary.json").read_text())
    assert {k: summary[k] for k in ("kind", "name", "workload", "title")} == {
        "kind": "experiment", "name": "mx", "workload": "classify", "title": "MixUp"}
    assert sorted(summary["runs"]) == sorted(names) and summary["verdicts"] == [line]
    assert summary["missing"] == [] and summary["flags"] == []
    assert summary["arms"]["none"][0]["finals"]["test_accuracy"]["n"] == 3
    assert not list(out.glob(".*")) and not list(out.glob("*.tmp*"))  # written atomically, nothing left over


def test_unreadable_and_unfinished_runs_are_named(tmp_path, capsys):
    groups = arm_dirs(tmp_path / "runs")
    (groups["none"][1] / records.SUMMARY).write_text("{")
    out = tmp_path / "site"
    code, stdout, stderr = page(groups, out, capsys)
    assert code == 1
    (error,) = stderr.splitlines()
    assert error.startswith(f"hpcdl experiment-report: error: {groups['none'][1]}: did not finish: ")
    assert "+0.015, which is within the seed spread (sd none 0.00707, a0.2 0.005; 3 seeds a0.2, 2 none)" in stdout and "5 finished run(s), 1 failed" in stdout
    html = (out / "index.html").read_text()
    assert "Runs that failed or did not finish" in html and str(groups["none"][1]) in html
    missing = json.loads((out / "summary.json").read_text())["missing"]
    assert [(m["directory"], m["epochs"]) for m in missing] == [(str(groups["none"][1]), 3)]


# --- the workflow's plans -------------------------------------------------------------------------


def write_config(tmp_path: Path, **sections: Any) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), **sections}))
    return path


def snakemake(targets: list[str], *configs: Path | str, args: tuple[str, ...] = (), timeout: float = 600):
    return run_tool([SNAKEMAKE, *targets, "--cores", "2", *args, "--configfile", *map(str, configs)], cwd=REPO,
                    timeout=timeout)


def dry_run_jobs(config: Path, *args: str) -> dict[str, dict]:
    """Training jobs of ``snakemake experiments -n -p``: run name -> resources, shell line and the
    settings its spec job hands it."""
    result = snakemake(["experiments"], config, args=("-n", "-p", *args))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs, specs = {}, {}
    for block in result.stdout.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        if rule not in ("spec", "experiment_train"):
            continue
        run = re.search(r"wildcards: run=(\S+)", block)[1]
        shell = re.search(r"Shell command: (.*)", block)[1]
        if rule == "spec":
            words = shlex.split(shell)
            specs[run] = json.loads(words[words.index("--json") + 1])
            continue
        resources = re.search(r"resources: (.*)", block)[1]
        jobs[run] = {"resources": dict(item.split("=", 1) for item in resources.split(", ")), "shell": shell}
    assert sorted(specs) == sorted(jobs), "every experiment run gets a spec job of its own, and no other run"
    for run, job in jobs.items():
        job["spec"] = specs[run]
    return jobs


def test_dgxa100_strong_and_weak_under_srun_pyxis(tmp_path):
    config = write_config(
        tmp_path, execution=PYXIS, train={"run_name": "demo", "tasks": 8, "seed": 10, "batch_size": 8, "epochs": 40},
        experiments={"strong": {"systems": ["DGXA100_1x8x1", "DGXA100_16x8x1"], "seeds": 1, "scale_lr": False},
                     "weak": {"systems": ["DGXA100_4x8x1"], "seeds": 3, "scale_lr": False}})
    jobs = dry_run_jobs(config, *SITE)
    expected = {  # run: nodes, tasks, base_lr, warmup, walltime, seed
        "cosmoflow-strong-base-DGXA100_1x8x1-s0": (1, 8, 0.008, 4, "720", 10),
        "cosmoflow-strong-base-DGXA100_16x8x1-s0": (16, 128, 0.032, 6, "240", 10),
        **{f"cosmoflow-weak-base-DGXA100_4x8x1-s{k}": (4, 32, 0.016, 4, "480", 10 + k) for k in range(3)},
    }
    assert sorted(jobs) == sorted(expected)
    results = tmp_path / "results"
    for run, (nodes, tasks, base_lr, warmup, walltime, seed) in expected.items():
        shell, resources, spec = jobs[run]["shell"], jobs[run]["resources"], jobs[run]["spec"]
        launch = shlex.split(train_command(shell).split(" hpcdl train ", 1)[0])
        assert launch[:9] == [*ENGINE_THREADS.split(), "srun", f"--nodes={nodes}", f"--ntasks={tasks}",
                              "--ntasks-per-node=8", "--mpi=pmix", "--gpus-per-task=1"]
        assert "--container-image=ghcr.io#hpcdl/hpcdl:0.1.0" in launch
        train = shlex.split(train_command(shell).split(" hpcdl train ", 1)[1])
        assert [w for w in train if w.startswith("--")] == ["--spec", "--data-dir", "--output-dir", "--attempt"]
        assert train[train.index("--output-dir") + 1] == f"{results}/runs/{run}"
        assert spec["workload"] == "cosmoflow" and spec["params"] == {"dropout": 0.0, "target_mae": 0.124}
        t = spec["train"]
        assert (t["run_name"], t["batch_size"], t["base_lr"], t["warmup_epochs"], t["seed"]) == (
            run, 1, base_lr, warmup, seed)
        assert t["epochs"] == 40 and t["staging_dir"] == "/raid/scratch/hpcdl"
        assert resources["nodes"] == str(nodes) and resources["tasks"] == str(tasks)
        assert resources["runtime"] == walltime and resources["gres"] == "gpu:8" and resources["mpi"] == "srun"
    assert not results.exists()


def test_lsf_mpirun_spreads_the_ranks_over_the_system_nodes(tmp_path):
    execution = {"scheduler": "lsf", "launcher": "mpirun", "runtime": "lsf-docker", "gpus_per_node": 1}
    config = write_config(tmp_path, execution=execution, experiments={"w": {"systems": ["DGXA100_4x8x1"], "seeds": 1}})
    lsf = ["lsf_group=compute-x", "lsf_queue=general", "lsf_job_group=/x/hpcdl", "lsf_image=ghcr.io/hpcdl/hpcdl:0.1.0"]
    job = dry_run_jobs(config, "--default-resources", *lsf)["cosmoflow-w-base-DGXA100_4x8x1-s0"]
    assert train_command(job["shell"]).startswith(
        f"{ENGINE_THREADS} mpirun -np 32 --oversubscribe --map-by ppr:8:node hpcdl train ")
    assert {k: job["resources"][k] for k in ("tasks", "nodes", "gres", "runtime")} == {
        "tasks": "32", "nodes": "4", "gres": "gpu:8", "runtime": "480"}


@pytest.mark.parametrize(("experiments_", "needle"), [
    ({"x": {"systems": ["LOCAL_2x1x4"], "arms": {"a": {"train": {"foo": 1}}}}},
     "experiments.x.arms.a.train.foo: unknown setting of train"),
    ({"x": {"systems": ["DGXA100_4x8x1"], "systems_dir": "{bad}"}}, "initial_lr (0.001), got 0.0001"),
])
def test_bad_experiment_stops_the_workflow_before_any_job(tmp_path, experiments_, needle):
    if "{bad}" in str(experiments_):  # a system whose settings cannot make a run: named with its file
        directory = write_system(tmp_path / "systems", "DGXA100_4x8x1", train={"initial_lr": 0.001, "base_lr": 0.0001})
        experiments_["x"]["systems_dir"] = str(directory)
        needle = (f"invalid training settings in experiment run cosmoflow-x-base-DGXA100_4x8x1-s0 (config + "
                  f"{directory}/DGXA100_4x8x1.yaml):\ntrain.base_lr must be >= train.initial_lr (0.001), got 0.0001")
    result = snakemake(["experiments"], write_config(tmp_path, experiments=experiments_), args=("-n",))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and needle in output and "Building DAG of jobs" not in output
    assert not (tmp_path / "results").exists()


def test_targets_without_experiments_and_command_line_seeds(tmp_path):
    result = snakemake(["experiments"], write_config(tmp_path), args=("-n",))
    assert result.returncode != 0
    assert "experiments: the config has no experiments: section" in result.stdout + result.stderr
    # `--config` hands nested values over as text; the seed count is still a number
    overrides = ["--config", f"results={tmp_path / 'results'}", "experiments={w: {systems: [LOCAL_2x1x4], seeds: 3}}"]
    result = run_tool([SNAKEMAKE, "experiments", "-n", "--cores", "2", *overrides], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = re.findall(r"^rule experiment_train:\n(?:    .*\n)*?    wildcards: run=(\S+)", result.stdout, re.M)
    assert sorted(runs) == [f"cosmoflow-w-base-LOCAL_2x1x4-s{k}" for k in range(3)]


# --- one real experiment through the workflow ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """.test/config-study: the tiny CosmoFlow set, 1 and 2 ranks x 2 seeds x arms ddp and fsdp, 2 epochs."""
    root = tmp_path_factory.mktemp("experiment")
    config = root / "results.yaml"
    config.write_text(yaml.safe_dump({"results": str(root / "results")}))
    result = snakemake(["experiments"], ".test/config-study/config.yaml", config, args=("--profile", "profiles/local"),
                       timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return root / "results"


def _epoch_time(run: Path) -> float:
    times = [e.epoch_time_s for e in records.read_epochs(run)]
    return statistics.median(times[1:] if len(times) > 1 else times)


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.browser
def test_tiny_experiment_page_and_summary(tiny, tmp_path):
    runs = tiny / "runs"
    names = [f"cosmoflow-tiny-{a}-w{n}-s{k}" for a in ("ddp", "fsdp") for n in (1, 2) for k in (0, 1)]
    assert sorted(p.name for p in runs.iterdir()) == sorted(names)
    for name in names:
        summary = json.loads((runs / name / "run.json").read_text())
        arm, n, k = name.split("-")[2], int(name[-4]), int(name[-1])
        assert (summary["world_size"], summary["spec"]["train"]["seed"], summary["epochs_run"]) == (n, k, 2)
        assert summary["spec"]["train"]["strategy"] == arm
        assert summary["spec"]["train"]["scale_lr"] and summary["spec"]["train"]["reference_batch"] == 4
    # different seeds, different weights: independent runs
    finals = {json.loads((runs / f"cosmoflow-tiny-ddp-w2-s{k}/run.json").read_text())["final"] for k in (0, 1)}
    assert len(finals) == 2
    site = tiny / "report/experiments/tiny"
    summary = json.loads((site / "summary.json").read_text())
    assert {k: summary[k] for k in ("kind", "name", "workload", "title")} == {
        "kind": "experiment", "name": "tiny", "workload": "cosmoflow", "title": "tiny"}
    assert sorted(summary["runs"]) == sorted(names) and summary["missing"] == []
    assert [v.split(":")[0] for v in summary["verdicts"]] == ["fsdp vs ddp at 1 rank", "fsdp vs ddp at 2 ranks"]
    for verdict, n in zip(summary["verdicts"], (1, 2), strict=True):
        t = {a: statistics.fmean(_epoch_time(runs / f"cosmoflow-tiny-{a}-w{n}-s{k}") for k in (0, 1))
             for a in ("ddp", "fsdp")}
        ratio = t["fsdp"] / t["ddp"]
        assert f"{max(ratio, 1 / ratio):.2f}x {'slower' if ratio >= 1 else 'faster'} per epoch" in verdict
    shown = harness_result(site, PAGE_HARNESS.format(page="index.html"), tmp_path / "chromium")
    assert shown["title"] == "tiny" and {"Verdict", "Figures", "Per arm and point", "Runs"} <= set(shown["headings"])
    assert shown["images"] == shown["decoded"] >= 4
    assert all(v in shown["text"] for v in summary["verdicts"]) and all(n in shown["text"] for n in names)
    times = [_epoch_time(runs / f"cosmoflow-tiny-ddp-w1-s{k}") for k in (0, 1)]
    assert f"{statistics.fmean(times):.4g} ± {statistics.stdev(times):.4g} s" in shown["text"]
    assert "not reached" in shown["text"]  # the tiny scenario's target is out of reach


@pytest.mark.mpi
@pytest.mark.slow
def test_experiments_of_two_workloads_share_a_results_dir(tiny, tmp_path):
    """A classify experiment planned in the tiny experiment's results directory trains runs of its
    own and leaves the CosmoFlow ones alone; one of the same name, whose page would overwrite the
    CosmoFlow one, is refused."""
    def plan(name: str):
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({"results": str(tiny), "train": {"run_name": "c", "epochs": 1},
                                          "experiments": {name: {"world_sizes": [1], "seeds": 1}}}))
        return snakemake(["experiments"], "config/classify.yaml", config, args=("-n",))

    result = plan("other")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(re.findall(r"wildcards: run=(\S+)", result.stdout)) == {"classify-other-base-w1-s0"}
    assert set(re.findall(r"wildcards: name=(\S+)", result.stdout)) == {"other"}
    same = plan("tiny")
    assert same.returncode != 0
    assert (f"experiments.tiny: {tiny}/report/experiments/tiny holds the cosmoflow experiment 'tiny'; give this"
            " classify experiment another name") in same.stdout + same.stderr

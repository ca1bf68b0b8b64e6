"""Scheduling overhead of a sweep: ``hpcdl sweep``'s MPI coordinator against Ray Tune, same run.

Every trial only sleeps ``d`` seconds, so all time beyond ``N·d / R`` is the scheduler's:
efficiency = N·d / (R·wall) and per-trial overhead = (R·wall − N·d) / N.

* **hpcdl**: ``mpirun -np R`` of this script in ``--mpi-worker`` mode, which runs the sweep's own
  code (:func:`hpcdl.sweep.execute.run_mpi`, :class:`~hpcdl.sweep.execute.Dispatch`, the
  ``trials.jsonl`` appends under flock and fsync, the progress log) with a runner that sleeps
  instead of training; N points of a real definition (``space: {seed: [0..N-1]}``, checked as
  any sweep is). Wall time: the session's start to end line (after MPI start-up), and mpirun's
  whole run beside it.
* **Ray Tune**: ``Tuner`` over ``tune.grid_search`` of the same N points, a function trainable
  that sleeps ``d`` and reports once, ``max_concurrent_trials=R`` on ``ray.init(num_cpus=R)``
  (one CPU per trial), with ``reuse_actors=True`` (one actor process per slot, reset between
  trials: Ray's fastest setting) and, with ``--ray-default-too``, Ray's default ``False`` (a new
  actor process per trial).
  Wall time: ``Tuner.fit()`` (after ``ray.init``).

Needs Ray Tune (``pip install '.[bench]'``). ``--real DEFINITION --data-dir D`` also times real
trials of a sweep at 2 ranks against 1 (``mpirun -np 2`` against one process).

    python benchmarks/bench_sweep.py [--trials 1000] [--seconds 1] [--ranks 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hpcdl.sweep import execute, results
from hpcdl.sweep.results import Trial
from hpcdl.sweep.space import build
from hpcdl.sweep.trial import Task, Where


def definition(trials: int) -> dict:
    return {"workload": "classify", "name": "bench", "space": {"seed": list(range(trials))},
            "progress_every": 10.0}


class Sleep:
    """A runner that sleeps instead of training and returns a well-formed trial."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, task: Task, where: Where) -> Trial:
        started = time.time()
        time.sleep(self.seconds)
        return Trial(id=task.point.id, run=task.point.id, rung=task.rung, point=task.point.values,
                     seed=task.point.values["seed"], epochs=0, status="aborted", value=0.5, metric="accuracy",
                     mode="max", final=0.5, test={}, history=[], error=None, wall_s=time.time() - started,
                     started=started, host=where.host, rank=where.rank, session=where.session)


def mpi_worker(out: Path, trials: int, seconds: float) -> None:
    """One rank of the hpcdl side (started by mpirun)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    sweep = build(definition(trials))
    dispatch = execute.Dispatch(sweep, out, out / "runs") if comm.Get_rank() == 0 else None
    with open(os.devnull, "w") as quiet:
        sys.stdout = quiet  # the progress lines are not what is measured here
        execute.run_mpi(dispatch, Sleep(seconds), comm, "cpu", execute.new_session())


def run_hpcdl(trials: int, seconds: float, ranks: int, work: Path) -> tuple[float, float]:
    out = work / "hpcdl"
    env = {**os.environ, "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    start = time.perf_counter()
    subprocess.run(["mpirun", "-np", str(ranks), "--oversubscribe", sys.executable, __file__, "--mpi-worker",
                    str(out), "--trials", str(trials), "--seconds", str(seconds)], env=env, check=True)
    whole = time.perf_counter() - start
    done = results.read(out)
    assert len(done) == trials and len(done) == len({k for k in done}), "every point exactly once"
    lines = (out / results.TRIALS).read_text().count("\n")
    assert lines == trials, f"{lines} result lines for {trials} points"
    rows = results.sessions(out)
    session = next(r["time"] for r in rows if r["event"] == "end") - next(r["time"] for r in rows
                                                                        if r["event"] == "start")
    return session, whole


def run_ray(trials: int, seconds: float, ranks: int, work: Path, reuse: bool) -> float:
    import ray
    from ray import tune

    def trainable(config: dict) -> dict:
        time.sleep(seconds)
        return {"score": config["i"]}

    ray.init(num_cpus=ranks, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}),
                       param_space={"i": tune.grid_search(list(range(trials)))},
                       tune_config=tune.TuneConfig(max_concurrent_trials=ranks, reuse_actors=reuse),
                       run_config=tune.RunConfig(storage_path=str(work / f"ray{int(reuse)}"), verbose=0))
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
    ray.shutdown()
    assert len(grid) == trials and not grid.errors
    return wall


def real(definition_path: Path, data_dir: Path, work: Path) -> None:
    """Real trials of a sweep: 2 MPI ranks against one process."""
    walls = {}
    for ranks in (1, 2):
        out = work / f"real{ranks}"
        cmd = ["hpcdl", "sweep", "--definition", str(definition_path), "--data-dir", str(data_dir),
               "--output-dir", str(out)]
        start = time.perf_counter()
        subprocess.run((["mpirun", "-np", "2"] if ranks == 2 else []) + cmd, check=True, stdout=subprocess.DEVNULL)
        walls[ranks] = time.perf_counter() - start
        n = len(results.read(out))
        busy = sum(t.wall_s for t in results.read(out).values())
        print(f"real trials, {ranks} rank(s): {n} trials in {walls[ranks]:.1f} s (trial time summed {busy:.1f} s)")
    print(f"real trials: 2 ranks / 1 rank speed-up {walls[1] / walls[2]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--ranks", type=int, default=16)
    parser.add_argument("--mpi-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--real", type=Path, help="a sweep definition to time at 2 ranks against 1")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--ray-default-too", action="store_true",
                        help="also run Ray Tune with its default reuse_actors=False (slow: a process per trial)")
    args = parser.parse_args()
    if args.mpi_worker:
        mpi_worker(args.mpi_worker, args.trials, args.seconds)
        return
    work = Path(tempfile.mkdtemp(prefix="bench_sweep."))
    n, d, r = args.trials, args.seconds, args.ranks
    ideal = n * d / r
    print(f"{n} trials of {d:g} s on {r} ranks ({os.cpu_count()} cores): ideal wall {ideal:.1f} s")
    session, whole = run_hpcdl(n, d, r, work)
    report = {"hpcdl": session}
    print(f"hpcdl sweep (MPI):  wall {session:.1f} s  efficiency {100 * ideal / session:.1f} %"
          f"  overhead {1000 * (r * session - n * d) / n:.1f} ms/trial"
          f"  (mpirun start to exit {whole:.1f} s: {100 * ideal / whole:.1f} %)")
    for reuse in () if args.skip_ray else (True, False) if args.ray_default_too else (True,):
        wall = run_ray(n, d, r, work, reuse)
        name = f"Ray Tune {__import__('ray').__version__}, reuse_actors={reuse}"
        report[name] = wall
        print(f"{name}: wall {wall:.1f} s  efficiency {100 * ideal / wall:.1f} %"
              f"  overhead {1000 * (r * wall - n * d) / n:.1f} ms/trial")
        print(f"ratio: hpcdl efficiency / ({name}) efficiency = {wall / session:.3f}")
    if args.real:
        real(args.real, args.data_dir, work)
    print(json.dumps(report))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

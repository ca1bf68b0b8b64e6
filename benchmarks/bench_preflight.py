"""Wall time of ``hpcdl preflight`` on R local ranks against the launch it cannot avoid, same run.

* **hpcdl preflight**: ``mpirun -np R hpcdl preflight --data D`` (default sizes 1M, 16M, 64M; the
  data read test over ``D``), start to exit.
* **peer, bare start-up**: ``mpirun -np R python -c ...`` that imports torch, joins a gloo
  process group through :func:`hpcdl.distributed.init_torch` and runs one 4-byte all-reduce:
  what any multi-rank torch job pays before its first step. The difference is what the checks
  cost; the target is the whole preflight in <= 10 s on 2 local ranks.

Best of ``--repeat`` runs each, alternating, so both see the same machine state.

    python benchmarks/bench_preflight.py --data results/data/cosmoflow/synth/npy [--ranks 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PEER = ("import torch, torch.distributed as dist; from hpcdl import distributed as d; "
        "d.init_torch(d.detect(), 'gloo'); t = torch.ones(1); dist.all_reduce(t); "
        "assert t.item() == dist.get_world_size(); dist.destroy_process_group()")


def timed(command: list[str]) -> float:
    """Seconds ``command`` ran; exits with its output when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset directory the preflight read-tests")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    mpirun = [shutil.which("mpirun") or "mpirun", "-np", str(args.ranks), "--oversubscribe"]
    if os.geteuid() == 0:
        os.environ.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    hpcdl = str(Path(sys.executable).with_name("hpcdl"))
    runs: dict[str, list[float]] = {"hpcdl preflight": [], "peer: bare start-up": []}
    for _ in range(args.repeat):
        runs["hpcdl preflight"].append(timed([*mpirun, hpcdl, "preflight", "--data", str(args.data)]))
        runs["peer: bare start-up"].append(timed([*mpirun, sys.executable, "-c", PEER]))
    peer = min(runs["peer: bare start-up"])
    print(f"{args.ranks} local ranks, best of {args.repeat}")
    print(f"{'':<22} {'wall s':>8} {'/ peer':>8}")
    for name, seconds in runs.items():
        print(f"{name:<22} {min(seconds):8.2f} {min(seconds) / peer:8.2f}")
    print(f"checks cost {min(runs['hpcdl preflight']) - peer:.2f} s beyond the start-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())

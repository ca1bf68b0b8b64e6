"""Benchmark ``hpcdl convert`` (TFRecord -> .npy) against its peers, all measured in one run.

Writes N full-size CosmoFlow files (128^3 x 4 int16, Poisson counts of a log-normal density,
gzip level 6 like TensorFlow's writer) into a temporary directory, then times, best of R:

  hpcdl           ``hpcdl.data.convert.convert`` in this process, one worker
  tensorflow      the reference converter's way: TFRecordDataset(GZIP) + parse_single_example +
                  decode_raw + np.save, TensorFlow pinned to one thread
  tfrecord-pkg    the ``tfrecord`` package's ``tfrecord_loader`` + np.save
  floor-zlib      only inflate each file with Python's gzip module and write the bytes out
  floor-isal      the same with isal, one inflate into a buffer sized from the gzip trailer
  floor-isal-sync the same, each file written like hpcdl writes (temp name, fsync, rename)
  mpirun -np 1/2  ``hpcdl convert`` as a whole command (process start included) on 1 and 2 ranks

Peers run round-robin, each run in a fresh interpreter (imports outside the timed region); the
table shows each peer's best wall time, MB/s of decoded output, best CPU time (user + system of
all its threads and child processes: the robust figure on a busy machine) and the ratios
peer/hpcdl (>1: hpcdl is faster).

Usage: ``python benchmarks/bench_convert.py [--files 8] [--repeat 3] [--side 128]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from isal import isal_zlib

from hpcdl.atomic import write_bytes
from hpcdl.data.convert import ConvertConfig, convert
from hpcdl.data.tfrecord import encode_example, frame_record


def make_dataset(directory: Path, files: int, side: int, seed: int = 7) -> int:
    """Write ``files`` gzip TFRecords of one ``side``^3 x 4 sample each; return their total bytes."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(files):
        # Clustered matter: a log-normal density (smoothed along one axis) drives Poisson counts,
        # which gives a realistic mix of empty voxels and dense halos, hence a realistic gzip ratio.
        field = rng.standard_normal((side, side, side, 1)).astype(np.float32)
        field = (field + np.roll(field, 1, axis=0) + np.roll(field, 1, axis=1)) / np.sqrt(3.0)
        density = np.exp(1.2 * field - 0.72) * np.array([0.6, 0.8, 1.0, 1.3], dtype=np.float32)
        x = rng.poisson(density * 2.0).astype("<i2")
        y = rng.uniform(-1, 1, 4).astype(np.float32)
        framed = b"".join(bytes(p) for p in frame_record(encode_example({"x": x.tobytes(), "y": y})))
        path = directory / f"univ_{i:06d}_000.tfrecord"
        path.write_bytes(gzip.compress(framed, compresslevel=6))
        total += path.stat().st_size
    return total


def run_hpcdl(src: Path, dst: Path) -> None:
    summary = convert(src, dst, ConvertConfig("npy", 1))
    assert summary.failed == 0 and summary.count("ok") == len(summary.results)


def run_tensorflow(src: Path, dst: Path) -> None:
    import tensorflow as tf

    spec = {"x": tf.io.FixedLenFeature([], tf.string), "y": tf.io.FixedLenFeature([4], tf.float32)}
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.tfrecord")):
        for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
            example = tf.io.parse_single_example(record, spec)
            x = tf.io.decode_raw(example["x"], tf.int16)
            side = round((x.shape[0] // 4) ** (1 / 3))
            stem = path.name[: -len(".tfrecord")]
            np.save(dst / f"{stem}_data.npy", tf.reshape(x, (side, side, side, 4)).numpy())
            np.save(dst / f"{stem}_label.npy", example["y"].numpy())


def run_tfrecord_pkg(src: Path, dst: Path) -> None:
    from tfrecord.reader import tfrecord_loader

    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.tfrecord")):
        for example in tfrecord_loader(str(path), None, {"x": "byte", "y": "float"}, compression_type="gzip"):
            x = np.frombuffer(example["x"], dtype="<i2")
            side = round((x.size // 4) ** (1 / 3))
            stem = path.name[: -len(".tfrecord")]
            np.save(dst / f"{stem}_data.npy", x.reshape(side, side, side, 4))
            np.save(dst / f"{stem}_label.npy", example["y"])


def isal_inflate(raw: bytes) -> bytes:
    """The fastest inflate isal offers: one call, output buffer sized by the trailer's ISIZE."""
    return isal_zlib.decompress(raw, wbits=31, bufsize=int.from_bytes(raw[-4:], "little"))


def floor(decompress: Callable[[bytes], bytes], durable: bool = False) -> Callable[[Path, Path], None]:
    def run(src: Path, dst: Path) -> None:
        dst.mkdir(parents=True, exist_ok=True)
        for path in sorted(src.glob("*.tfrecord")):
            data = decompress(path.read_bytes())
            if durable:
                write_bytes(dst / path.name, data)
            else:
                (dst / path.name).write_bytes(data)

    return run


def mpirun(ranks: int) -> Callable[[Path, Path], float]:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    hpcdl = str(Path(sys.executable).parent / "hpcdl")

    def run(src: Path, dst: Path) -> float:
        """Run the command; return the stage's own seconds from its summary (launch excluded)."""
        summary = dst.parent / "summary.json"
        cmd = ["mpirun", "--oversubscribe", "-np", str(ranks), hpcdl, "convert", str(src), str(dst),
               "--summary", str(summary)]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        return float(json.loads(summary.read_text())["seconds"])

    return run


def _cpu_seconds() -> float:
    """CPU seconds (user + system, all threads) of this process and its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(fn: Callable[[Path, Path], float | None], src: Path, work: Path) -> tuple[float, float, float]:
    """One run: wall seconds, CPU seconds, and the seconds the peer reports itself (else wall)."""
    dst = work / "out"
    shutil.rmtree(dst, ignore_errors=True)
    cpu, start = _cpu_seconds(), time.perf_counter()
    reported = fn(src, dst)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    shutil.rmtree(dst, ignore_errors=True)
    return wall, cpu, wall if reported is None else reported


PEERS: dict[str, Callable[[Path, Path], float | None]] = {
    "hpcdl": run_hpcdl,
    "tensorflow": run_tensorflow,
    "tfrecord-pkg": run_tfrecord_pkg,
    "floor-zlib": floor(gzip.decompress),
    "floor-isal": floor(isal_inflate),
    "floor-isal-sync": floor(isal_inflate, durable=True),
    "mpirun -np 1": mpirun(1),
    "mpirun -np 2": mpirun(2),
}


def time_peer(name: str, src: Path, work: Path) -> tuple[float, float, float]:
    """One run of one peer in a fresh interpreter: TensorFlow and the ``tfrecord`` package register
    the same protobuf symbols and cannot share a process, and no peer should inherit another's warm
    imports or thread pools."""
    out = subprocess.run(
        [sys.executable, __file__, "--time-peer", name, str(src), str(work)],
        check=True, capture_output=True, text=True,
    ).stdout
    wall, cpu, stage = out.split()[-3:]
    return float(wall), float(cpu), float(stage)


def _child(name: str, src: Path, work: Path) -> None:
    if name == "tensorflow":
        import tensorflow as tf  # pin before TensorFlow starts its thread pools

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if name == "tfrecord-pkg":
        import tfrecord.reader  # noqa: F401  (import outside the timed region, like TensorFlow)
    print(*measure(PEERS[name], src, work))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--time-peer":
        _child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(PEERS), help="peers to leave out")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        work = Path(tmp)
        src = work / "in"
        gz_bytes = make_dataset(src, args.files, args.side)
        raw_mb = args.files * args.side**3 * 4 * 2 / 1e6
        print(f"{args.files} files of {args.side}^3 x 4 int16: {raw_mb:.1f} MB decoded, "
              f"{gz_bytes / 1e6:.1f} MB gzip (ratio {raw_mb * 1e6 / gz_bytes:.2f}); best of {args.repeat}")
        names = [name for name in PEERS if name not in args.skip]
        # Round-robin, so a burst of load from other processes hits every peer, not just one.
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
        for _ in range(args.repeat):
            for name in names:
                runs[name].append(time_peer(name, src, work))
    best = {name: tuple(min(column) for column in zip(*rows, strict=True)) for name, rows in runs.items()}
    wall0, cpu0, _ = best["hpcdl"]
    print(f"{'converter':<16} {'wall s':>7} {'MB/s':>7} {'CPU s':>7} {'wall/hpcdl':>10} {'CPU/hpcdl':>10}")
    for name, (wall, cpu, _) in best.items():
        print(f"{name:<16} {wall:7.3f} {raw_mb / wall:7.1f} {cpu:7.3f} {wall / wall0:10.2f} {cpu / cpu0:10.2f}")
    if "mpirun -np 1" in best and "mpirun -np 2" in best:
        (wall1, _, stage1), (wall2, _, stage2) = best["mpirun -np 1"], best["mpirun -np 2"]
        print(f"speed-up 2 ranks vs 1 rank: {wall1 / wall2:.2f}x whole command, "
              f"{stage1 / stage2:.2f}x conversion stage ({stage1:.3f} s vs {stage2:.3f} s, "
              "process start and MPI init excluded)")

if __name__ == "__main__":
    main()

"""``hpcdl train``: data-parallel CosmoFlow training with MLPerf HPC logging and checkpoints.

Outputs in the run directory (rank 0 only, each written atomically):

* ``metrics.jsonl``: one object per epoch with keys ``epoch`` (1-based), ``train_loss``,
  ``val_loss``, ``val_mae``, ``lr`` (of the epoch's last step), ``samples_per_s`` (global training
  throughput), ``epoch_time_s`` and ``elapsed_s`` (since run_start);
* ``mllog.txt``: the MLPerf HPC log; ``checkpoint.pt``: rewritten after every epoch;
* ``run.json``: the summary, written last as the done-marker.

A run that reaches ``--target-mae`` stops early with status ``success``; one that runs out of
epochs first ends with status ``aborted``. Both are completed runs and exit 0; invalid flags
exit 2, unreadable data exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mlperf_logging.mllog import constants

from hpcdl.atomic import write_text
from hpcdl.distributed import DistEnv, detect, init_torch
from hpcdl.train import checkpoint, data
from hpcdl.train.config import TrainConfig
from hpcdl.train.mllog import MLLog, log_submission
from hpcdl.train.model import CosmoFlow, parameter_count
from hpcdl.train.schedule import Schedule


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl train``."""
    d = TrainConfig()
    a = parser.add_argument
    a("--data-dir", type=Path, required=True, help="dataset with train/ and validation/ (npy + lists)")
    a("--output-dir", type=Path, required=True, help="run directory for metrics, logs, checkpoint")
    a("--run-name", default=d.run_name, help="name recorded in run.json")
    a("--seed", type=int, default=d.seed, help="seed of weights, shuffling and dropout (>= 0; default %(default)s)")
    a("--initial-lr", type=float, default=d.initial_lr, help="learning rate at the start of warmup (>= 0; default %(default)s)")
    a("--base-lr", type=float, default=d.base_lr, help="learning rate after warmup (>= initial-lr; default %(default)s)")
    a("--weight-decay", type=float, default=d.weight_decay, help="SGD weight decay (>= 0; default %(default)s)")
    a("--dropout", type=float, default=d.dropout, help="dropout rate of the dense layers, in (0, 1) when weight-decay is 0 (default %(default)s)")
    a("--warmup-epochs", type=float, default=d.warmup_epochs, help="linear warmup length in epochs (>= 0; default %(default)s)")
    a("--lr-scheduler-epochs", type=float, nargs="+", default=list(d.lr_scheduler_epochs),
      help="the 2 epochs (>= 0) at which the decay factors start (default %(default)s)")
    a("--lr-scheduler-decays", type=float, nargs="+", default=list(d.lr_scheduler_decays),
      help="the 2 factors (of base-lr, each in (0, 1)) in force from those epochs on (default %(default)s)")
    a("--shuffle", action="store_true", help="reshuffle the training set every epoch (from the seed)")
    a("--batch-size", type=int, default=d.batch_size, help="samples per rank per step (default %(default)s)")
    a("--epochs", type=int, default=d.epochs, help="maximum number of epochs (default %(default)s)")
    a("--target-mae", type=float, default=d.target_mae, help="stop once validation MAE <= this (default %(default)s, the MLPerf target)")
    a("--scale-lr", action="store_true", help="scale base-lr by global batch / reference batch")
    a("--reference-batch", type=int, default=d.reference_batch, help="global batch base-lr is tuned for (default %(default)s)")
    a("--staging-dir", default=d.staging_dir, help="node-local directory to stage the data into first")
    a("--stage-compressed", action="store_true",
      help="stage by inflating the gzip TFRecord re-pack in --data-dir instead of copying npy files")
    a("--resume", action="store_true", help="continue from RUN/checkpoint.pt when it exists")
    a("--num-workers", type=int, default=d.num_workers, help="data loader worker processes per rank (default %(default)s)")
    a("--device", default=d.device, help="auto | cpu | cuda (one GPU per local rank; default %(default)s)")
    a("--compile", action="store_true", help="torch.compile the model")
    a("--submission-org", default="hpcdl", help="MLPerf submission_org")
    a("--submission-platform", default="", help="MLPerf submission_platform (default: derived)")
    a("--submission-division", default="closed", help="MLPerf submission_division: closed | open")
    a("--submission-status", default="onprem", help="MLPerf submission_status: onprem | cloud | ...")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The typed configuration of a parsed command line."""
    return TrainConfig(
        run_name=args.run_name,
        seed=args.seed,
        initial_lr=args.initial_lr,
        base_lr=args.base_lr,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        warmup_epochs=args.warmup_epochs,
        lr_scheduler_epochs=tuple(args.lr_scheduler_epochs),  # type: ignore[arg-type]
        lr_scheduler_decays=tuple(args.lr_scheduler_decays),  # type: ignore[arg-type]
        shuffle=args.shuffle,
        batch_size=args.batch_size,
        epochs=args.epochs,
        target_mae=args.target_mae,
        scale_lr=args.scale_lr,
        reference_batch=args.reference_batch,
        staging_dir=args.staging_dir or "",
        stage_compressed=args.stage_compressed,
        resume=args.resume,
        num_workers=args.num_workers,
        device=args.device,
        compile=args.compile,
        submission={
            "org": args.submission_org,
            "platform": args.submission_platform,
            "division": args.submission_division,
            "status": args.submission_status,
        },
    )


def submission_errors(sub: dict[str, str]) -> list[str]:
    """Violations of the values the MLPerf checker accepts."""
    out = []
    if not sub["org"]:
        out.append("--submission-org must not be empty")
    if sub["division"] not in ("closed", "open"):
        out.append(f"--submission-division must be closed or open, got {sub['division']!r}")
    if sub["status"] not in ("cloud", "onprem", "preview", "research"):
        out.append(f"--submission-status must be cloud, onprem, preview or research, got {sub['status']!r}")
    return out


class _Comm:
    """Sums across ranks (a no-op for one process)."""

    def __init__(self, env: DistEnv, device: torch.device) -> None:
        self.active = env.world_size > 1
        self.device = device

    def sum(self, *values: float) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.active:
            dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def _device(choice: str, env: DistEnv) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", env.local_rank % max(1, torch.cuda.device_count()))
    return torch.device("cpu")


def _evaluate(model: torch.nn.Module, split: data.Split, env: DistEnv, cfg: TrainConfig,
              device: torch.device, comm: _Comm) -> tuple[float, float]:
    """Exact (MSE, MAE) over the whole split: per-rank sums and counts, all-reduced."""
    model.eval()
    ds = data.NpyDataset(split, data.val_indices(len(split), env.rank, env.world_size))
    sq = ab = count = 0.0
    with torch.no_grad(), _autocast(device):
        for x, y in data.loader(ds, cfg.batch_size, cfg.num_workers, device.type == "cuda"):
            pred = model(x.to(device, non_blocking=True)).float()
            err = pred - y.to(device, non_blocking=True)
            sq += float(err.pow(2).sum())
            ab += float(err.abs().sum())
            count += err.numel()
    sq, ab, count = comm.sum(sq, ab, count)
    return sq / count, ab / count


def _autocast(device: torch.device) -> torch.autocast:
    # bf16 on GPUs; CPU runs stay in float32 so results are exact and comparable across ranks
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def build_model(crop_size: int, dropout: float, device: torch.device) -> CosmoFlow:
    """The network on ``device``; channels_last_3d on GPUs, the layout cuDNN's 3-D convolutions
    run fastest in."""
    net = CosmoFlow(crop_size, dropout).to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last_3d)
    return net


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               device: torch.device) -> torch.Tensor:
    """One optimisation step on a batch (autocast forward, float32 MSE, SGD); returns the loss."""
    with _autocast(device):
        pred = model(x.to(device, non_blocking=True))
    loss = F.mse_loss(pred.float(), y.to(device, non_blocking=True))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def train(data_dir: Path, run_dir: Path, cfg: TrainConfig) -> tuple[dict[str, Any], bool]:
    """Run the training; return the ``run.json`` summary (rank 0 also writes it) and whether
    this process is rank 0."""
    env = detect()
    device = _device(cfg.device, env)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    init_torch(env, "nccl" if device.type == "cuda" else "gloo")
    comm = _Comm(env, device)
    rank0 = env.rank == 0
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / checkpoint.NAME
    resume = cfg.resume and ckpt_path.is_file()
    log = MLLog(run_dir / "mllog.txt", rank0, resume=resume)
    log.event(constants.CACHE_CLEAR, True)
    log.start(constants.INIT_START)
    accelerators = env.local_world_size if device.type == "cuda" else 0
    submission = dict(cfg.submission)
    submission["platform"] = submission["platform"] or (
        f"{env.nodes}x{accelerators}x{torch.cuda.get_device_name(device)}" if device.type == "cuda"
        else f"{env.nodes}xCPU-{env.local_world_size}ranks"
    )
    log_submission(log, submission, env.nodes, accelerators)

    staging_s = 0.0
    if cfg.staging_dir:
        comm.barrier()
        log.start(constants.STAGING_START)
        t0 = time.perf_counter()
        target = Path(cfg.staging_dir)
        data.stage(data_dir, target, env.local_rank, env.local_world_size, cfg.stage_compressed)
        comm.barrier()
        if env.local_rank == 0:
            data.write_staged_lists(target)
        comm.barrier()
        staging_s = time.perf_counter() - t0
        log.end(constants.STAGING_STOP, staging_s=staging_s)
        data_dir = target
    train_split = data.read_split(data_dir / "train")
    val_split = data.read_split(data_dir / "validation")
    crop = data.crop_size(train_split)

    torch.manual_seed(cfg.seed)
    net = build_model(crop, cfg.dropout, device)
    global_batch = cfg.batch_size * env.world_size
    steps = data.steps_per_epoch(len(train_split), env.world_size, cfg.batch_size)
    if steps == 0:
        raise data.DataError(
            f"{data_dir / 'train'}: {len(train_split)} samples cannot fill one global batch of {global_batch}"
        )
    schedule = Schedule(
        cfg.initial_lr, cfg.base_lr * cfg.lr_factor(global_batch), cfg.warmup_epochs,
        cfg.lr_scheduler_epochs, cfg.lr_scheduler_decays,
    )
    opt = torch.optim.SGD(net.parameters(), lr=schedule.lr(0), momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    start_epoch, best, history, elapsed_before = 0, math.inf, [], 0.0
    if resume:
        state = checkpoint.load(ckpt_path)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, best = state["epoch"], state["best_val_mae"]
        history, elapsed_before = state["metrics"], state["elapsed_s"]
    model: torch.nn.Module = net
    if env.world_size > 1:
        # DDP broadcasts rank 0's weights at construction: identical start on every rank
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        model = torch.compile(model)

    log.event(constants.GLOBAL_BATCH_SIZE, global_batch)
    log.event(constants.TRAIN_SAMPLES, len(train_split))
    log.event(constants.EVAL_SAMPLES, len(val_split))
    log.event(constants.GRADIENT_ACCUMULATION_STEPS, 1)
    log.event(constants.OPT_NAME, "sgd")
    log.event(constants.OPT_BASE_LR, schedule.base_lr)
    log.event(constants.OPT_LR_WARMUP_EPOCHS, cfg.warmup_epochs)
    log.event(constants.OPT_LR_WARMUP_FACTOR, schedule.base_lr / cfg.initial_lr if cfg.initial_lr else 0.0)
    log.event(constants.OPT_LR_DECAY_BOUNDARY_EPOCHS, list(cfg.lr_scheduler_epochs))
    log.event(constants.OPT_LR_DECAY_FACTOR, list(cfg.lr_scheduler_decays))
    log.event("dropout", cfg.dropout)
    log.event(constants.OPT_WEIGHT_DECAY, cfg.weight_decay)
    log.end(constants.INIT_STOP)
    comm.barrier()
    log.start(constants.RUN_START)
    log.flush()
    run_start = time.perf_counter() - elapsed_before

    status, lr = "aborted", schedule.lr(start_epoch)
    progress = rank0 and sys.stderr.isatty()
    for epoch in range(start_epoch, cfg.epochs):
        if best <= cfg.target_mae:  # a resumed run that had already converged
            status = "success"
            break
        num = epoch + 1
        log.start(constants.EPOCH_START, epoch_num=num)
        t_epoch = time.perf_counter()
        torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1_009 + env.rank)  # dropout stream
        model.train()
        idx = data.train_indices(len(train_split), epoch, env.rank, env.world_size, cfg.batch_size,
                                 cfg.seed, cfg.shuffle)
        batches = data.loader(data.NpyDataset(train_split, idx), cfg.batch_size, cfg.num_workers,
                              device.type == "cuda")
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, total=steps, desc=f"epoch {num}", leave=False)
        loss_sum = 0.0
        for step, (x, y) in enumerate(batches):
            lr = schedule.lr(epoch + step / steps)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = train_step(model, opt, x, y, device)
            loss_sum += float(loss.detach()) * y.shape[0]
        (loss_sum,) = comm.sum(loss_sum)
        train_time = time.perf_counter() - t_epoch
        throughput = steps * global_batch / train_time
        log.end(constants.EPOCH_STOP, epoch_num=num)
        log.start(constants.EVAL_START, epoch_num=num)
        val_loss, val_mae = _evaluate(net, val_split, env, cfg, device, comm)
        log.event("eval_error", val_mae, epoch_num=num)
        log.end(constants.EVAL_STOP, epoch_num=num)
        log.event("tracked_stats", {"throughput": throughput}, epoch_num=num)
        best = min(best, val_mae)
        now = time.perf_counter()
        history.append({
            "epoch": num,
            "train_loss": loss_sum / (steps * global_batch),
            "val_loss": val_loss,
            "val_mae": val_mae,
            "lr": lr,
            "samples_per_s": throughput,
            "epoch_time_s": now - t_epoch,
            "elapsed_s": now - run_start,
        })
        if rank0:
            write_text(run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in history))
            checkpoint.save(ckpt_path, {
                "model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": num,
                "best_val_mae": best, "metrics": history, "elapsed_s": now - run_start,
            })
            log.flush()
            if not progress:
                m = history[-1]
                print(f"epoch {num}/{cfg.epochs} train_loss {m['train_loss']:.4f} val_loss {val_loss:.4f}"
                      f" val_mae {val_mae:.4f} lr {lr:.5f} {throughput:.1f} samples/s"
                      f" {m['epoch_time_s']:.1f}s", flush=True)
        if val_mae <= cfg.target_mae:
            status = "success"
            break
    log.end(constants.RUN_STOP, status=status)
    log.flush()
    summary = {
        "run_name": cfg.run_name,
        "status": status,
        "target_mae": cfg.target_mae,
        "best_val_mae": best if history else None,
        "final_val_mae": history[-1]["val_mae"] if history else None,
        "epochs_run": len(history),
        "time_to_train_s": time.perf_counter() - run_start,
        "staging_s": staging_s,
        "world_size": env.world_size,
        "local_world_size": env.local_world_size,
        "nodes": env.nodes,
        "launcher": env.launcher,
        "device": device.type,
        "global_batch_size": global_batch,
        "train_samples": len(train_split),
        "eval_samples": len(val_split),
        "parameters": parameter_count(net),
        "config": cfg.as_dict(),
    }
    if rank0:
        write_text(run_dir / "run.json", json.dumps(summary, indent=2) + "\n")
    comm.barrier()
    if env.world_size > 1:
        dist.destroy_process_group()
    return summary, rank0


def main(args: argparse.Namespace) -> int:
    """Validate every flag up front, train, print the outcome."""
    cfg = config_from_args(args)
    errors = cfg.errors() + submission_errors(cfg.submission)
    for split in ("train", "validation"):
        if not (args.data_dir / split).is_dir():
            errors.append(f"--data-dir {args.data_dir}: no {split}/ directory")
    if errors:
        for line in errors:
            print(f"hpcdl train: error: {line}", file=sys.stderr)
        return 2
    try:
        summary, rank0 = train(args.data_dir, args.output_dir, cfg)
    except data.DataError as exc:
        print(f"hpcdl train: error: {exc}", file=sys.stderr)
        return 1
    if rank0:
        print(f"{summary['status']}: best val MAE {summary['best_val_mae']:.4f} after "
              f"{summary['epochs_run']} epochs, {summary['time_to_train_s']:.1f}s on "
              f"{summary['world_size']} x {summary['device']}", flush=True)
    return 0

"""The Trainer: one data-parallel training of any workload, handed its context.

``Trainer(ctx, spec, data_dir, run_dir).fit()`` runs setup (MLPerf init, staging, data, model,
optimiser, resume), then per epoch :meth:`train_epoch`, :meth:`evaluate` and
:meth:`save_epoch`, and writes the :class:`~hpcdl.records.RunSummary`. It owns its random
streams (``torch.Generator`` seeded from the run seed, epoch and rank) and its MLPerf logger, and
uses only the process group in its context, so several trainings can run one after another in a
process or side by side on sub-groups. Rank 0 of the context writes every file, atomically (the
TensorBoard event file, :mod:`~hpcdl.train.scalars`, grows as TensorBoard expects).

A run that reaches its workload's target stops with status ``success`` (or runs on, with
``stop_at_target`` false); one that runs out of epochs ends ``aborted``; ``patience`` epochs
without a lower validation loss stop it as ``stopped``; a non-finite training loss stops it at
once as ``diverged``. A ``test/`` split in the data is evaluated once, with the final weights.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlperf_logging.mllog import constants

from hpcdl import records, workloads
from hpcdl.atomic import write_text
from hpcdl.train import checkpoint, data, inventory, parallel
from hpcdl.train.context import TrainContext
from hpcdl.train.evaluate import evaluate
from hpcdl.train.mllog import MLLog, log_submission
from hpcdl.train.scalars import Scalars
from hpcdl.train.schedule import Schedule, optimizer
from hpcdl.train.spec import RunSpec
from hpcdl.train.step import place_model, train_step
from hpcdl.workloads.base import BatchRandom
from hpcdl.workloads.layers import attach_generator

SPLITS = ("train", "validation")
TEST = "test"  # optional: evaluated once at the end, never used to stop or select


class Trainer:
    """One training run; see the module docstring."""

    def __init__(self, ctx: TrainContext, spec: RunSpec, data_dir: Path, run_dir: Path) -> None:
        self.ctx, self.spec, self.cfg, self.params = ctx, spec, spec.train, spec.params
        self.workload = workloads.get(spec.workload)
        self.target = self.workload.target(self.params)
        self.data_dir, self.run_dir = data_dir, run_dir
        self.history: list[records.EpochRecord] = []
        self.best = math.nan
        self.staging_s = 0.0
        self.diverged = False
        self.scalars: Scalars | None = None  # rank 0's TensorBoard event file, opened by setup

    # -- setup ---------------------------------------------------------------------------------
    def _generator(self, *stream: int) -> torch.Generator:
        """A generator on the device for (seed, *stream): the same stream on every rerun."""
        seed = self.cfg.seed
        for s in stream:
            seed = seed * 1_000_003 + s
        return torch.Generator(self.ctx.device).manual_seed(seed % 2**63)

    def setup(self) -> None:
        """Everything before ``run_start``: logging, staging, data checks, model, optimiser, resume."""
        ctx, cfg = self.ctx, self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ckpt = self.run_dir / records.CHECKPOINT
        state = checkpoint.load(ckpt) if cfg.resume and ckpt.is_file() else None
        # A resumed run continues the log of the attempt that wrote the checkpoint, whose init
        # section is already there: only a fresh run logs one (the checker wants it exactly once).
        self.log = MLLog(self.run_dir / records.MLLOG, ctx.is_root and state is None)
        self.log.event(constants.CACHE_CLEAR, True)
        self.log.start(constants.INIT_START)
        gpu = ctx.device.type == "cuda"
        platform = (f"{ctx.nodes}x{ctx.local_world_size}x{torch.cuda.get_device_name(ctx.device)}" if gpu
                    else f"{ctx.nodes}xCPU-{ctx.local_world_size}ranks")
        log_submission(self.log, self.workload.mlperf_benchmark or self.workload.name, cfg, platform,
                       ctx.nodes, ctx.local_world_size if gpu else 0)
        if cfg.staging_dir:
            self._stage(Path(cfg.staging_dir))
        names = SPLITS + ((TEST,) if (self.data_dir / TEST).is_dir() else ())
        splits = {split: inventory.take(ctx, self.workload, self.params, self.data_dir / split, not cfg.skip_check)
                  for split in names}
        self.fingerprint = checkpoint.fingerprint(self.spec, ctx.world_size, splits)
        if state is not None:
            checkpoint.check_resumable(ckpt, state, self.fingerprint)
        self.train_set, self.val_set, *test = (
            data.place(self.workload.open_split(self.params, self.data_dir / split), ctx.device) for split in names)
        self.test_set = test[0] if test else None
        self.global_batch = cfg.batch_size * ctx.world_size
        self.steps = data.steps_per_epoch(len(self.train_set), ctx.world_size, cfg.batch_size)
        if self.steps == 0:
            raise workloads.DataError(f"{self.data_dir / 'train'}: {len(self.train_set)} samples cannot fill"
                                      f" one global batch of {self.global_batch}")
        init = torch.Generator().manual_seed(cfg.seed)
        self.net = place_model(self.workload.build_model(self.params, self.train_set[0], init), ctx.device)
        # FSDP shards the parameters in place: the optimiser is built on the shards, after this
        self.sharded = parallel.sharded(ctx, cfg.strategy)
        self.model: torch.nn.Module = parallel.wrap(self.net, ctx, cfg.strategy)
        self.schedule = Schedule(cfg.initial_lr, cfg.base_lr * cfg.lr_factor(self.global_batch),
                                 cfg.warmup_epochs, cfg.lr_scheduler_epochs, cfg.lr_scheduler_decays)
        self.opt = optimizer(cfg, self.net.parameters(), self.schedule.lr(0))
        self.start_epoch, elapsed_before = 0, 0.0
        if state is not None:
            parallel.load_full_state(self.net, self.opt, state["model"], state["optimizer"], self.sharded)
            self.start_epoch, self.best, elapsed_before = state["epoch"], state["best"], state["elapsed_s"]
            self.history = [records.EpochRecord(**m) for m in state["metrics"]]
            self.diverged = state.get("diverged", False)
            self.log = MLLog(self.run_dir / records.MLLOG, ctx.is_root, state["mllog"])
        if cfg.compile:
            self.model = torch.compile(self.model)
        if state is None:
            self._log_hyperparameters()
            self.log.end(constants.INIT_STOP)
        ctx.barrier()
        if state is None:
            self.log.start(constants.RUN_START)
        self.log.flush()
        # a resumed run's TensorBoard curves go on from its checkpoint, dropping later epochs
        self.scalars = Scalars(self.run_dir, None if state is None else self.start_epoch + 1) if ctx.is_root else None
        self.run_start = time.perf_counter() - elapsed_before

    def _stage(self, target: Path) -> None:
        ctx = self.ctx
        ctx.barrier()
        self.log.start(constants.STAGING_START)
        t0 = time.perf_counter()
        self.workload.stage(self.data_dir, target, ctx.local_rank, ctx.local_world_size, self.cfg.stage_compressed)
        ctx.barrier()
        if ctx.local_rank == 0:
            self.workload.finish_staging(target)
        ctx.barrier()
        self.staging_s = time.perf_counter() - t0
        self.log.end(constants.STAGING_STOP, staging_s=self.staging_s)
        self.data_dir = target

    def _log_hyperparameters(self) -> None:
        cfg, log, s = self.cfg, self.log, self.schedule
        log.event(constants.GLOBAL_BATCH_SIZE, self.global_batch)
        log.event(constants.TRAIN_SAMPLES, len(self.train_set))
        log.event(constants.EVAL_SAMPLES, len(self.val_set))
        log.event(constants.GRADIENT_ACCUMULATION_STEPS, 1)
        log.event(constants.OPT_NAME, cfg.optimizer)
        log.event(constants.OPT_BASE_LR, s.base_lr)
        log.event(constants.OPT_LR_WARMUP_EPOCHS, cfg.warmup_epochs)
        log.event(constants.OPT_LR_WARMUP_FACTOR, s.base_lr / cfg.initial_lr if cfg.initial_lr else 0.0)
        log.event(constants.OPT_LR_DECAY_BOUNDARY_EPOCHS, list(cfg.lr_scheduler_epochs))
        log.event(constants.OPT_LR_DECAY_FACTOR, list(cfg.lr_scheduler_decays))
        for key, value in self.workload.mlperf_events(self.params).items():
            log.event(key, value)
        log.event(constants.OPT_WEIGHT_DECAY, cfg.weight_decay)

    # -- epochs --------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> tuple[float, float, float]:
        """One pass over this rank's shard; returns (mean global train loss, last lr, seconds).
        The loss stays on the device until the epoch ends: no host sync per step."""
        ctx, cfg = self.ctx, self.cfg
        gen = self._generator(epoch, ctx.rank)
        rng = BatchRandom(gen, np.random.default_rng([cfg.seed, epoch, ctx.rank]))
        attach_generator(self.net, gen)
        self.model.train()
        idx = data.train_indices(len(self.train_set), epoch, ctx.rank, ctx.world_size, cfg.batch_size,
                                 cfg.seed, cfg.shuffle)
        batches: Any = data.loader(self.train_set, idx, cfg.batch_size, cfg.num_workers, ctx.device.type == "cuda")
        if ctx.is_root and sys.stderr.isatty():
            from tqdm import tqdm

            batches = tqdm(batches, total=self.steps, desc=f"epoch {epoch + 1}", leave=False)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
        lr = self.schedule.lr(epoch)
        for step, (x, y) in enumerate(batches):
            lr = self.schedule.lr(epoch + step / self.steps)
            for group in self.opt.param_groups:
                group["lr"] = lr
            x = x.to(ctx.device, non_blocking=True)
            y = y.to(ctx.device, non_blocking=True)
            x, y = self.workload.transform_batch(self.params, x, y, rng)
            loss = train_step(self.model, self.opt, self.workload.loss, x, y, ctx.device)
            loss_sum += loss.detach().double() * x.shape[0]
        total = float(ctx.all_sum(loss_sum))
        return total / (self.steps * self.global_batch), lr, time.perf_counter() - t0

    def evaluate(self) -> dict[str, float]:
        """Every workload metric over the whole validation split (``val_<name>``) and, with
        ``train_eval_samples``, over that many clean training samples (``trainset_<name>``)."""
        cfg, metrics = self.cfg, self.workload.metrics()
        values, _ = evaluate(self.ctx, self.net, self.val_set, len(self.val_set), metrics, cfg.batch_size,
                             cfg.num_workers, "val")
        if cfg.train_eval_samples:
            more, _ = evaluate(self.ctx, self.net, self.train_set, min(cfg.train_eval_samples, len(self.train_set)),
                               metrics, cfg.batch_size, cfg.num_workers, "trainset")
            values.update(more)
        return values

    def final_evaluation(self) -> tuple[dict[str, float], dict[str, Any]]:
        """The test split's metrics and every split's tallies, with the final weights."""
        cfg, metrics, tallies = self.cfg, self.workload.metrics(), self.workload.tallies(self.params)
        test: dict[str, float] = {}
        tables: dict[str, Any] = {}
        if tallies:
            tables["classes"] = self.workload.class_names(self.params, self.data_dir)
            _, tables["validation"] = evaluate(self.ctx, self.net, self.val_set, len(self.val_set), {}, cfg.batch_size,
                                               cfg.num_workers, "val", tallies)
        if self.test_set is not None:
            test, counts = evaluate(self.ctx, self.net, self.test_set, len(self.test_set), metrics, cfg.batch_size,
                                    cfg.num_workers, "test", tallies)
            if tallies:
                tables["test"] = counts
        return test, tables

    def save_epoch(self) -> None:
        """Rank 0: metrics.jsonl, checkpoint.pt and the MLPerf log, each replaced atomically
        (every rank takes part in gathering sharded weights)."""
        model_state, opt_state = parallel.full_state(self.net, self.opt, self.sharded)
        if not self.ctx.is_root:
            return
        self._write_metrics()
        checkpoint.save(self.run_dir / records.CHECKPOINT, {
            "model": model_state, "optimizer": opt_state,
            "epoch": self.history[-1].epoch, "best": self.best,
            "metrics": [vars(m) for m in self.history], "elapsed_s": self.history[-1].elapsed_s,
            "mllog": list(self.log.lines), "fingerprint": self.fingerprint, "diverged": self.diverged,
        })
        self.log.flush()

    def _write_metrics(self) -> None:
        write_text(self.run_dir / records.METRICS, "".join(m.to_json() + "\n" for m in self.history))

    def _diverge(self, record: records.EpochRecord) -> None:
        """Record a non-finite loss. The checkpoint keeps the last finite weights but is marked, so
        a resubmitted job stops at once instead of repeating the same epoch to the same end."""
        self.diverged = True
        self.history.append(record)
        if self.ctx.is_root:
            ckpt = self.run_dir / records.CHECKPOINT
            if ckpt.is_file():
                state = checkpoint.load(ckpt)
                state.update(diverged=True, metrics=[vars(m) for m in self.history], mllog=list(self.log.lines))
                checkpoint.save(ckpt, state)
            self._write_metrics()
            self.log.flush()
            if self.scalars is not None:
                self.scalars.epoch(record)
        print(f"hpcdl train: error: epoch {record.epoch}: training loss is not finite (diverged);"
              " check the labels and lower the learning rate", file=sys.stderr, flush=True)

    def _report(self, m: records.EpochRecord) -> None:
        if self.ctx.is_root and self.ctx.verbose:
            shown = " ".join(f"{k} {v:.4f}" for k, v in m.metrics.items())
            print(f"epoch {m.epoch}/{self.cfg.epochs} train_loss {m.train_loss:.4f} {shown} lr {m.lr:.5f}"
                  f" {m.samples_per_s:.1f} samples/s {m.epoch_time_s:.1f}s", flush=True)

    def fit(self) -> records.RunSummary:
        """Set up, train until the target or the last epoch, write and return the summary."""
        self.setup()
        key = f"val_{self.target.metric}"
        status = "diverged" if self.diverged else "aborted"
        if self.diverged:
            print(f"hpcdl train: error: {self.run_dir / records.CHECKPOINT}: this run diverged in epoch"
                  f" {self.history[-1].epoch}; change its settings and delete the checkpoint to train again",
                  file=sys.stderr, flush=True)
            return self.finish(status)
        for epoch in range(self.start_epoch, self.cfg.epochs):
            if self._should_stop():  # a resumed run that had already ended
                break
            num = epoch + 1
            self.log.start(constants.EPOCH_START, epoch_num=num)
            t_epoch = time.perf_counter()
            train_loss, lr, train_time = self.train_epoch(epoch)
            throughput = self.steps * self.global_batch / train_time
            self.log.end(constants.EPOCH_STOP, epoch_num=num)
            if not math.isfinite(train_loss):
                status = "diverged"
                self._diverge(records.EpochRecord(num, None, lr, throughput, time.perf_counter() - t_epoch,
                                                  time.perf_counter() - self.run_start, {}))
                break
            self.log.start(constants.EVAL_START, epoch_num=num)
            values = self.evaluate()
            self.log.event("eval_error", values[key], epoch_num=num)
            self.log.end(constants.EVAL_STOP, epoch_num=num)
            self.log.event("tracked_stats", {"throughput": throughput}, epoch_num=num)
            self.best = values[key] if math.isnan(self.best) else self.target.best(self.best, values[key])
            now = time.perf_counter()
            self.history.append(records.EpochRecord(num, train_loss, lr, throughput, now - t_epoch,
                                                    now - self.run_start, values))
            self.save_epoch()
            self._report(self.history[-1])
            if self.scalars is not None:
                self.scalars.epoch(self.history[-1])
            if self._should_stop():
                break
        if status != "diverged" and self.history:
            status = ("success" if self.target.reached(self.best)
                      else "stopped" if self._epochs_without_gain() >= self.cfg.patience > 0 else "aborted")
        return self.finish(status)

    def _epochs_without_gain(self) -> int:
        """Epochs since the lowest validation loss so far (0: the last epoch set it)."""
        losses = [m.metrics.get("val_loss") for m in self.history]
        finite = [(v, i) for i, v in enumerate(losses) if v is not None]
        return len(losses) - 1 - min(finite)[1] if finite else 0

    def _should_stop(self) -> bool:
        """After an epoch: the target reached (when it ends runs) or patience run out."""
        if not self.history:
            return False
        if self.cfg.stop_at_target and self.target.reached(self.best):
            return True
        return 0 < self.cfg.patience <= self._epochs_without_gain()

    def finish(self, status: str) -> records.RunSummary:
        """Close the MLPerf log and write ``run.json`` (the done-marker) last."""
        time_to_train = time.perf_counter() - self.run_start
        self.log.end(constants.RUN_STOP, status="success" if status == "success" else "aborted")
        self.log.flush()
        test, tallies = self.final_evaluation() if status != "diverged" else ({}, {})
        key = f"val_{self.target.metric}"
        finals = [m.metrics[key] for m in self.history if key in m.metrics]
        ctx = self.ctx
        summary = records.RunSummary(
            run_name=self.cfg.run_name, workload=self.spec.workload, status=status,
            target={**self.target.as_dict()}, best=None if math.isnan(self.best) else self.best,
            final=finals[-1] if finals else None, epochs_run=len(self.history),
            time_to_train_s=time_to_train, staging_s=self.staging_s,
            world_size=ctx.world_size, local_world_size=ctx.local_world_size, nodes=ctx.nodes,
            launcher=ctx.launcher, device=ctx.device.type, global_batch_size=self.global_batch,
            train_samples=len(self.train_set), eval_samples=len(self.val_set),
            parameters=sum(p.numel() for p in self.net.parameters() if p.requires_grad),
            metric_names=[f"val_{n}" for n in self.workload.metrics()],
            mlperf_benchmark=self.workload.mlperf_benchmark, spec=self.spec.as_dict(), test=test, tallies=tallies,
        )
        if self.scalars is not None:
            self.scalars.close()
        if ctx.is_root:
            # metrics.jsonl again: a resumed run may end before its first epoch (already converged)
            self._write_metrics()
            write_text(self.run_dir / records.SUMMARY, summary.to_json())
        ctx.barrier()
        return summary

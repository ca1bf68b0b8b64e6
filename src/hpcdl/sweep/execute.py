"""Running a sweep's tasks exactly once: MPI ranks, a local process pool, or one array element.

All three go through :class:`Dispatch`, which hands out the unfinished tasks rung by rung, waits
at a rung's end until its last trial is in, appends every result to ``trials.jsonl`` and logs
progress. A trial is given to one worker at a time and recorded once; a rerun starts from the
file, so killed, timed-out or lost work is simply handed out again.

* MPI (``mpirun``/``srun`` with N ranks): rank 0 is the coordinator, and also trains in a worker
  thread of its own; ranks 1..N-1 ask for a task, train it, send the trial back and get the next
  (dynamic assignment: long and short trials balance). Waiting ranks poll with a short sleep
  instead of a blocking receive, which in Open MPI spins a core the trials need.
* local: a pool of worker processes (spawned, each with its share of the cores), the same way; a
  worker killed by a signal (the out-of-memory killer) fails its trial and is replaced.
* array element ``g`` of ``E``: the ``g``-th of every ``E`` tasks of one rung, one after another
  (SLURM and LSF arrays; the scheduler runs the elements side by side).
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import multiprocessing.connection as mp_connection
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpcdl.sweep import plan, results
from hpcdl.sweep.results import Trial
from hpcdl.sweep.space import Sweep
from hpcdl.sweep.trial import Task, Where, failed, setup_worker

Runner = Callable[[Task, Where], Trial]
WAIT = "wait"  # no task free now: the rung's last trials are still running
_TASK, _RESULT = 1, 2  # MPI tags: coordinator -> worker, worker -> coordinator
_POLL_MIN, _POLL_MAX = 0.0005, 0.002  # seconds between polls of an idle loop (doubling)


def new_session() -> str:
    return uuid.uuid4().hex[:12]


class Dispatch:
    """The sweep's unfinished tasks, handed out rung by rung; see the module docstring."""

    def __init__(self, sweep: Sweep, out_dir: Path, runs_dir: Path, rungs: range | None = None) -> None:
        self.sweep, self.out_dir, self.runs_dir = sweep, out_dir, runs_dir
        self.done = dict(results.read(out_dir))
        self.rungs = list(rungs if rungs is not None else range(sweep.options.rungs + 1))
        self.pending: collections.deque[Task] = collections.deque()  # taken from the left
        self.running: dict[tuple[str, int], Task] = {}
        self.progress = plan.Progress(plan.total_tasks(sweep), plan.already_done(sweep, self.done),
                                      sweep.options.progress_every)
        self.ran = 0
        self.suspect = results.in_flight(out_dir)  # running when an earlier session died
        self.session = ""  # set by the session that hands the tasks out

    def unfinished(self, tasks: list[Task]) -> collections.deque[Task]:
        """``tasks`` without a result, in plan order but those a dead session had in flight last:
        one that killed its MPI rank (and so the job) must not keep the others from finishing."""
        left = [t for t in tasks if (t.point.id, t.rung) not in self.done]
        return collections.deque(sorted(left, key=lambda t: (t.point.id, t.rung) in self.suspect))

    def _fill(self) -> bool:
        """Load the next rung with work left; False when every rung is done."""
        while not self.pending and self.rungs:
            if self.running:
                return True  # the rung's selection waits for its last results
            rung = self.rungs.pop(0)
            tasks = plan.selected(self.sweep, self.done, self.runs_dir, rung)
            self.pending = self.unfinished(tasks)
        return bool(self.pending or self.running)

    def next(self) -> Task | str | None:
        """A task to run, :data:`WAIT`, or ``None`` when the sweep is complete."""
        if not self._fill():
            return None
        if not self.pending:
            return WAIT
        task = self.pending.popleft()
        self.running[(task.point.id, task.rung)] = task
        results.record_session(self.out_dir, {"session": self.session, "event": "task", "id": task.point.id,
                                              "rung": task.rung}, sync=False)
        return task

    def finished(self, trial: Trial) -> None:
        """Record a trial: on disk first, then in the log."""
        results.append(self.out_dir / results.TRIALS, trial.to_line())
        self.running.pop((trial.id, trial.rung), None)
        self.done.setdefault((trial.id, trial.rung), trial)
        self.ran += 1
        self.progress.trial(trial, len(self.running))


def _session(dispatch: Dispatch, session: str, backend: str, ranks: int, body: Callable[[], None]) -> int:
    """Run ``body`` between a start and an end line in ``sessions.jsonl``; trials run by it."""
    out = dispatch.out_dir
    dispatch.session = session
    start = time.time()
    host = os.uname().nodename
    results.record_session(out, {"session": session, "event": "start", "backend": backend, "ranks": ranks,
                                 "host": host, "time": start})
    body()
    dispatch.progress.maybe_summary(0, force=True)
    results.record_session(out, {"session": session, "event": "end", "time": time.time(), "trials": dispatch.ran})
    return dispatch.ran


def run_serial(dispatch: Dispatch, runner: Runner, where: Where, backend: str = "array") -> int:
    """Run every task of ``dispatch`` here, one after another (an array element)."""
    def body() -> None:
        while isinstance(task := dispatch.next(), Task):
            dispatch.finished(runner(task, where))
    return _session(dispatch, where.session, backend, 1, body)


def run_local(dispatch: Dispatch, runner: Runner, workers: int, device: str, session: str) -> int:
    """A pool of ``workers`` spawned processes, one trial each at a time. A worker that dies
    (the out-of-memory killer's SIGKILL) fails the trial it held and is replaced."""
    def body() -> None:
        ctx = multiprocessing.get_context("spawn")
        pool: dict[int, _Worker] = {}
        busy: dict[int, tuple[Task, float]] = {}  # slot -> its task and when it was handed out
        try:
            while True:
                for slot in range(workers):
                    if slot in busy or not isinstance(task := dispatch.next(), Task):
                        continue
                    if slot not in pool:
                        pool[slot] = _Worker(ctx, runner, Where(slot, slot, workers, session), device)
                    pool[slot].conn.send(task)
                    busy[slot] = (task, time.time())
                if not busy:
                    break  # nothing running and nothing left
                watched = [w for slot in busy for w in (pool[slot].conn, pool[slot].process.sentinel)]
                mp_connection.wait(watched, timeout=dispatch.sweep.options.progress_every)
                for slot in list(busy):
                    outcome = pool[slot].outcome()
                    if outcome is None:
                        continue
                    task, started = busy.pop(slot)
                    if isinstance(outcome, str):  # the worker died: its trial failed, a new worker follows
                        del pool[slot]
                        outcome = failed(dispatch.sweep, dispatch.runs_dir, task, Where(slot, slot, workers, session),
                                         outcome, started)
                    dispatch.finished(outcome)
                dispatch.progress.maybe_summary(len(busy))
        finally:
            for worker in pool.values():
                worker.stop()
    return _session(dispatch, session, "local", workers, body)


class _Worker:
    """One spawned pool process: a task in through its pipe, the trial back."""

    def __init__(self, ctx: Any, runner: Runner, where: Where, device: str) -> None:
        self.conn, theirs = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(theirs, runner, where, device, os.getpid()), daemon=True)
        self.process.start()
        theirs.close()  # the worker's end lives in the worker only: its death reads as end of file here

    def outcome(self) -> Trial | str | None:
        """The finished trial, why the worker died (a string), or ``None`` while it trains."""
        if self.conn.poll():
            try:
                return self.conn.recv()
            except EOFError:
                pass
        elif self.process.is_alive():
            return None
        self.process.join()
        return _death(self.process.exitcode)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        why = "likely out of memory" if -code == signal.SIGKILL else signal.Signals(-code).name
        return f"killed by signal {-code} ({why})"
    return f"the worker exited with status {code} during the trial"


def _serve(conn: Any, runner: Runner, where: Where, device: str, parent: int) -> None:
    """A pool worker's loop: train each task it is sent until it is sent ``None``."""
    from hpcdl.distributed import die_with_parent

    die_with_parent(parent)  # a killed sweep takes its workers with it
    setup_worker(device, where.local_world_size)
    while (task := conn.recv()) is not None:
        conn.send(runner(task, where))


def _poll(ready: Callable[[], Any]) -> Any:
    """``ready()`` once it returns something other than ``None``, sleeping between tries."""
    pause = _POLL_MIN
    while (value := ready()) is None:
        time.sleep(pause)
        pause = min(pause * 2, _POLL_MAX)
    return value


def run_mpi(dispatch: Dispatch | None, runner: Runner, comm: Any, device: str, session: str) -> int:
    """Every rank of ``comm`` trains; rank 0 also coordinates (``dispatch`` is used on rank 0 only)."""
    from hpcdl.distributed import detect

    env = detect(comm=comm)  # this rank's place on its node, whichever launcher started it
    setup_worker(device, env.local_world_size)
    session = comm.bcast(session, root=0)
    where = Where(comm.Get_rank(), env.local_rank, env.local_world_size, session)
    if comm.Get_rank() != 0:
        _mpi_worker(runner, comm, where)
        return 0
    assert dispatch is not None
    return _session(dispatch, session, "mpi", comm.Get_size(), lambda: _coordinate(dispatch, runner, comm, where))


def _mpi_worker(runner: Runner, comm: Any, where: Where) -> None:
    comm.send(None, dest=0, tag=_RESULT)  # ready
    while True:
        _poll(lambda: True if comm.Iprobe(source=0, tag=_TASK) else None)
        task = comm.recv(source=0, tag=_TASK)
        if task == "stop":
            return
        comm.send(runner(task, where), dest=0, tag=_RESULT)


def _coordinate(dispatch: Dispatch, runner: Runner, comm: Any, where: Where) -> None:
    """Rank 0: answer every rank that reports (its trial, if any) with its next task or a stop;
    trains tasks of its own in a thread while no remote rank is waiting."""
    from mpi4py import MPI

    remote = comm.Get_size() - 1
    idle: list[int] = []  # remote ranks waiting for a task
    local: queue.Queue[Trial | BaseException] = queue.Queue()
    local_busy, complete, stopped = False, False, 0
    status = MPI.Status()
    pause = _POLL_MIN

    def train_here(task: Task) -> None:
        try:
            local.put(runner(task, where))
        except BaseException as exc:  # noqa: BLE001 -- re-raised by the coordinator
            local.put(exc)

    while not (complete and stopped == remote and not local_busy):
        arrived: list[Trial] = []
        while comm.Iprobe(source=MPI.ANY_SOURCE, tag=_RESULT, status=status):
            source = status.Get_source()
            trial = comm.recv(source=source, tag=_RESULT)
            if trial is not None:
                arrived.append(trial)
            idle.append(source)
        while not local.empty():
            outcome = local.get()
            if isinstance(outcome, BaseException):
                raise outcome
            arrived.append(outcome)
            local_busy = False
        progressed = bool(arrived)
        while idle or not local_busy:
            task = dispatch.next()
            if task == WAIT:
                break
            if task is None:
                complete = True
                for rank in idle:
                    comm.send("stop", dest=rank, tag=_TASK)
                stopped += len(idle)
                idle.clear()
                break
            assert isinstance(task, Task)
            if idle:
                comm.send(task, dest=idle.pop(0), tag=_TASK)
            else:
                local_busy = True
                threading.Thread(target=train_here, args=(task,), daemon=True).start()
            progressed = True
        for trial in arrived:  # recorded after the ranks have their next task: they do not wait on the disk
            dispatch.finished(trial)
        dispatch.progress.maybe_summary(len(dispatch.running))
        pause = _POLL_MIN if progressed else min(pause * 2, _POLL_MAX)
        if not progressed:
            time.sleep(pause)

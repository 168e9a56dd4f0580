"""``--launcher overlapped``: one device, training and evaluation at the same time.

This process trains the runs one after another while a second (spawned) process evaluates each
finished run, so the host-side work of an evaluation overlaps the next training on the device.
Runs go seed by seed (every method of the first seed first), so a budget that stops the work
early leaves complete comparisons.

``--budget-minutes``: before a training starts, the expected end of its evaluation (from the
runs measured so far; nothing measured yet: never skip) must fall inside the budget, or the run is
skipped; the evaluating process checks the same before each evaluation. At the limit a SIGALRM
stops whatever is still running (a training keeps its last checkpoint: the same command resumes
it), and the report covers the runs that finished.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from robustbench_mm.app.runone import (
    Outcome,
    RunSpec,
    cached_dataset,
    describe,
    is_complete,
    train_and_evaluate,
    train_only,
)
from robustbench_mm.app.schedulers import Scheduler
from robustbench_mm.settings import RunPlan

REPORT_RESERVE_S = 20.0  # kept free at the end of a budget for the report (at most a tenth of it)


class _Deadline(Exception):
    """Raised in the main thread by SIGALRM when the budget is spent."""


class OverlappedScheduler(Scheduler):
    name = "overlapped"

    def __init__(self, plan: RunPlan, chatty: bool = False) -> None:
        self.started = time.perf_counter()
        budget = plan.budget_minutes * 60 if plan.budget_minutes else None
        self.limit = budget - min(REPORT_RESERVE_S, 0.1 * budget) if budget else None
        self.chatty = chatty
        self.specs: list[RunSpec] = []
        self.worker: _EvalWorker | None = None
        self.trained: dict[int, tuple[Any, float]] = {}  # plan index -> (training result, seconds)
        self.train_s: dict[str, float] = {}  # method -> seconds of its last training
        self.eval_s = 0.0  # the longest evaluation so far
        self.inside = self.expired = False  # in our own code; the budget is spent
        self.training: int | None = None  # the plan index of the run training now (or last)

    def left(self) -> float:
        return float("inf") if self.limit is None else self.limit - (time.perf_counter() - self.started)

    def submit(self, specs: Sequence[RunSpec]) -> None:
        self.specs += specs

    def outcomes(self) -> Iterator[Outcome]:
        seeds = list(dict.fromkeys(s.cfg.seed for s in self.specs))  # the plan's seed order
        order = sorted(self.specs, key=lambda s: (seeds.index(s.cfg.seed), s.index))
        queued: dict[int, RunSpec] = {}
        done: set[int] = set()
        armed = self._arm() if self.limit is not None else None
        self.inside = True
        try:
            for outcome in self._work(order, queued, done):
                self.inside = False  # the alarm must not raise in our caller's code while it holds an outcome
                yield outcome
                self.inside = True
                if self.expired:
                    raise _Deadline()
        except _Deadline:
            self.inside = False
            self.close()
            for spec in order:
                if spec.index not in done:
                    in_flight = spec.index in queued or spec.index in (self.trained.keys() | {self.training})
                    state = "stopped" if in_flight else "skipped"
                    yield Outcome(spec, state, error="the budget ran out")
        finally:
            self.inside = False
            if armed is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, armed)

    def _work(self, order: list[RunSpec], queued: dict[int, RunSpec], done: set[int]) -> Iterator[Outcome]:
        for spec in order:
            yield from self._drain(queued, done, block=False)
            outcome = self._one(spec, queued)
            if outcome is not None:
                done.add(spec.index)
                yield outcome
        if self.worker is not None:
            self.worker.close()
        while queued:
            yield from self._drain(queued, done, block=True)

    def _alarm(self, signum: int, frame: Any) -> None:
        self.expired = True
        if self.inside:
            raise _Deadline()

    def _arm(self) -> Any:
        """SIGALRM when the budget is spent; only the main thread takes signals (elsewhere the
        budget only skips runs). Returns the handler it replaced."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
            return None
        previous = signal.signal(signal.SIGALRM, self._alarm)
        signal.setitimer(signal.ITIMER_REAL, max(self.left(), 0.01))
        return previous

    def _one(self, spec: RunSpec, queued: dict[int, RunSpec]) -> Outcome | None:
        """Train one run here and queue its evaluation; an outcome now if nothing is left to queue."""
        if is_complete(spec):  # reused as a whole: no need to wake the evaluating process
            result = train_and_evaluate(spec.cfg, spec.evaluate, spec.runs_dir, False, False, None)
            return Outcome.finished_with(spec, result)
        backlog = len(queued)
        need = max(self._expected_train(spec.cfg.method), backlog * self.eval_s) + self.eval_s
        if need > self.left():
            return Outcome(
                spec, "skipped", error=f"needs ~{need:.0f} s, {max(self.left(), 0):.0f} s of the budget left"
            )
        if self.worker is None:  # started before the first training, so that its start-up overlaps it
            self.worker = _EvalWorker(spec, self.deadline_wall())
        started, self.training = time.perf_counter(), spec.index
        result = train_only(spec.cfg, spec.runs_dir, spec.force, self.chatty, cached_dataset(spec.cfg))
        seconds = time.perf_counter() - started
        if result.state != "finished":  # a reused training says nothing about how long one takes
            self.train_s[spec.cfg.method] = seconds
        self.trained[spec.index] = (result, seconds)
        queued[spec.index] = spec
        self.worker.submit(spec.index, str(result.run_dir), self.eval_s)
        return None

    def _expected_train(self, method: str) -> float:
        if method in self.train_s:
            return self.train_s[method]
        return max(self.train_s.values(), default=0.0)

    def deadline_wall(self) -> float | None:
        return None if self.limit is None else time.time() + self.left()

    def _drain(self, queued: dict[int, RunSpec], done: set[int], block: bool) -> Iterator[Outcome]:
        """Outcomes of the evaluations that came back (waiting for one when ``block``)."""
        if self.worker is None:
            return
        for kind, index, info in self.worker.messages(block):
            spec = queued.pop(index, None)
            if spec is None:
                continue
            done.add(index)
            result, train_seconds = self.trained[index]
            if kind == "evaluated":
                self.eval_s = max(self.eval_s, info["seconds"])
                what = describe(result.state, reused_evaluation=info["reused"])
                seconds = train_seconds + info["seconds"]
                yield Outcome(spec, "finished", test_accuracy=result.test_accuracy, seconds=seconds, what=what)
            else:
                yield Outcome(spec, kind, error=info.get("error", ""))

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


class _EvalWorker:
    """The evaluating process and its two queues (jobs in, messages out)."""

    def __init__(self, first: RunSpec, deadline: float | None) -> None:
        context = mp.get_context("spawn")  # CUDA cannot be used in a forked child
        self.jobs, self.out = context.Queue(), context.Queue()
        self.process = context.Process(
            target=_worker_main,
            name="mmbench-evaluate",
            args=(self.jobs, self.out, first.cfg, first.evaluate, deadline, os.getpid()),
            daemon=True,
        )
        self.process.start()  # from the main thread: see robustbench_mm.core.procs.die_with_parent

    def submit(self, index: int, run_dir: str, expected_s: float) -> None:
        self.jobs.put((index, run_dir, expected_s))

    def messages(self, block: bool) -> Iterator[tuple[str, int, dict]]:
        while True:
            try:
                yield self.out.get(timeout=0.2) if block else self.out.get_nowait()
                block = False  # one was waited for: take the rest that are there
            except queue.Empty:
                if block and self.process.is_alive():
                    continue
                if block:  # it died without a word (killed, out of memory)
                    raise RuntimeError(f"the evaluating process exited ({self.process.exitcode})") from None
                return

    def close(self) -> None:
        self.jobs.put(None)

    def stop(self) -> None:
        """End the process now (an evaluation in flight is lost; published ones stay)."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


def _worker_main(jobs: Any, out: Any, cfg: Any, evaluate: Any, deadline: float | None, parent: int) -> None:
    import torch

    from robustbench_mm.core.procs import die_with_parent
    from robustbench_mm.evaluation.runner import evaluate_run

    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    torch.set_num_threads(cfg.cpu_threads)
    data = cached_dataset(cfg)
    longest = 0.0  # the longest evaluation so far: a better guess than the parent's before one came back
    while (job := jobs.get()) is not None:
        index, run_dir, expected_s = job
        expected_s = max(expected_s, longest)
        if deadline is not None and time.time() + expected_s > deadline:
            out.put(("skipped", index, {"error": f"its evaluation (~{expected_s:.0f} s) would end past the budget"}))
            continue
        started = time.perf_counter()
        try:
            evaluation = evaluate_run(run_dir, config=evaluate, data=data, reuse=True)
        except Exception as exc:  # said to the parent, which reports it with the run
            out.put(("failed", index, {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}))
            continue
        seconds = time.perf_counter() - started
        longest = max(longest, seconds)
        out.put(("evaluated", index, {"seconds": seconds, "reused": evaluation.seconds == 0}))

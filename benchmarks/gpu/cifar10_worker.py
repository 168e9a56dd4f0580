"""The evaluation worker of ``cifar10_run.py``: a spawned process that evaluates each trained run
(``evaluation.evaluate_run``, every default suite) while the main process trains the next one.

It decodes the dataset itself (at start, while the main process decodes its own copy), never
sets cudnn.benchmark (attack batches shrink as examples are fooled: every new shape would be
autotuned), dies with its parent, and skips an evaluation that would end past the deadline.
Messages to the parent: ("loaded", None, {...}), ("evaluated" | "skipped" | "failed", run name,
{...}), ("done", None, {}).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from cifar10_summary import PAPER_RADII

Message = Callable[[str, "str | None", dict], None]


class EvalWorker:
    """The worker process, its job queue and a thread in this process reading its messages."""

    def __init__(self, dataset: str, evaluate: Any, deadline: float, on_message: Message) -> None:
        context = mp.get_context("spawn")  # CUDA cannot be used in a forked child
        self.jobs, self.messages = context.Queue(), context.Queue()
        self.process = context.Process(
            target=worker_main,
            name="cifar10-eval",
            args=(self.jobs, self.messages, dataset, evaluate, deadline, os.getpid()),
            daemon=True,
        )
        self.process.start()  # from the main thread: see robustbench_mm.core.procs.die_with_parent
        self.on_message = on_message
        self.submitted = self.answered = 0
        self.finished = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def submit(self, name: str, run_dir: str, expected_s: float) -> None:
        self.submitted += 1
        self.jobs.put((name, run_dir, expected_s))

    def backlog(self) -> int:
        """Evaluations queued or in progress."""
        return self.submitted - self.answered

    def close(self) -> None:
        self.jobs.put(None)

    def wait(self) -> None:
        while not self.finished.wait(0.5):  # a short wait: SIGALRM must reach the main thread
            if not self.process.is_alive() and not self.reader.is_alive():
                break

    def stop(self) -> None:
        """End the worker now (an evaluation in flight is lost; published ones stay)."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
        self.finished.set()

    def _read(self) -> None:
        while True:
            try:
                kind, name, info = self.messages.get(timeout=1.0)
            except queue.Empty:
                if not self.process.is_alive():
                    self.on_message("failed", None, {"error": f"worker exited ({self.process.exitcode})"})
                    self.finished.set()
                    return
                continue
            if kind in ("evaluated", "skipped", "failed") and name is not None:
                self.answered += 1
            self.on_message(kind, name, info)
            if kind == "done":
                self.finished.set()
                return


def worker_main(jobs, messages, dataset: str, evaluate: Any, deadline: float, parent: int) -> None:
    from robustbench_mm.core.procs import die_with_parent
    from robustbench_mm.data.datasets import load_dataset

    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    started = time.perf_counter()
    try:
        data = load_dataset(dataset)
    except Exception as exc:  # report it; the parent still writes what it has
        messages.put(("failed", None, {"error": f"loading {dataset}: {type(exc).__name__}: {str(exc)[:300]}"}))
        messages.put(("done", None, {}))
        return
    messages.put(("loaded", None, {"load_s": round(time.perf_counter() - started, 2)}))
    longest = 0.0  # the longest evaluation so far: a better guess than the parent's before any finished
    while (job := jobs.get()) is not None:
        name, run_dir, expected_s = job
        expected_s = max(expected_s, longest)
        if time.time() + expected_s > deadline:
            messages.put(("skipped", name, {"reason": f"~{expected_s:.0f} s would end past the limit"}))
            continue
        try:
            result = evaluate_one(run_dir, data, evaluate)
            longest = max(longest, result["eval_s"] + result["fgsm_s"])
            messages.put(("evaluated", name, result))
        except Exception as exc:
            messages.put(("failed", name, {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}))
    messages.put(("done", None, {}))


def evaluate_one(run_dir: str, data: Any, evaluate: Any) -> dict:
    """Every default suite (published into the run), then FGSM at the paper's radii."""
    from robustbench_mm.evaluation.runner import evaluate_run

    t0 = time.perf_counter()
    evaluation = evaluate_run(run_dir, config=evaluate, data=data, reuse=True)
    eval_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    rows = paper_fgsm(run_dir, data, evaluate)
    return {
        "eval_s": round(eval_s, 2),
        "fgsm_s": round(time.perf_counter() - t1, 2),
        "fgsm": rows,
        "eval_reused": getattr(evaluation, "seconds", None) == 0,
    }


def paper_fgsm(run_dir: str, data: Any, evaluate: Any) -> list[dict]:
    """Our FGSM at the two readings of the paper's radii (see cifar10_summary), on every test image."""
    import torch

    from robustbench_mm.attacks import run_attack
    from robustbench_mm.core.inference import resolve_device
    from robustbench_mm.data.datasets import to_float
    from robustbench_mm.store.rundir import RunDir

    run = RunDir(run_dir)
    model, meta = run.load_model(data=data)
    model.to(resolve_device(evaluate.device))
    x, y = to_float(data.test_x), data.test_y
    rows = []
    for label, eps in PAPER_RADII:
        correct = run_attack(
            "fgsm",
            model,
            x,
            y,
            eps,
            num_classes=data.num_classes,
            batch_size=evaluate.batch_size or 1000,
            generator=torch.Generator().manual_seed(0),
        )
        rows.append(
            {
                "run": run.name,
                "method": meta["method"],
                "seed": meta["seed"],
                "radius": label,
                "eps": eps,
                "accuracy": round(float(correct.float().mean()), 6),
                "n": len(y),
            }
        )
    return rows

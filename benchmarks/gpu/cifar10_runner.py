"""The work of ``cifar10_run.py``: train and evaluate every run inside a time limit, then report.

Two ways, the same numbers (the per-run settings are ``pipeline.planned_configs``'s either way):

* overlapped (default): this process trains the runs one after another (``train.train``, as
  run_benchmark does); a spawned worker process evaluates each finished run while the next one
  trains (``cifar10_worker``, ``evaluation.evaluate_run``); the report is then written over the
  runs by ``report.write_report``, as run_benchmark writes it. timing.json records whether a
  run_benchmark call with the same settings would reuse every run as it is (its two checks);
* sequential (``--sequential``): one ``run_benchmark`` call does everything.

The limit: before a training starts, the expected end of its evaluation (from the runs measured
so far, else the H200 estimate) must fall inside it, or the run is skipped; the worker checks
the same before each evaluation. A SIGALRM at the limit stops whatever is still running; the
report then covers the runs that finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cifar10_budget
from cifar10_summary import write_summary
from cifar10_worker import EvalWorker

from robustbench_mm.app import pipeline
from robustbench_mm.settings import EvalConfig, RunPlan, TrainConfig, to_table
from robustbench_mm.store.rundir import RunDir

REPORT_RESERVE_S = 20.0  # kept free at the end for the report, summary and copies


class Deadline(Exception):
    """Raised in the main thread by SIGALRM when the time limit is reached."""


@dataclass
class Job:
    args: argparse.Namespace
    work: Path
    out: Path
    budget: cifar10_budget.Estimate
    started: float
    limit_s: float
    plan: RunPlan | None = None
    train: TrainConfig | None = None
    evaluate: EvalConfig | None = None
    facts: dict = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    stopped: str | None = None
    fgsm_rows: list[dict] = field(default_factory=list)
    reported: bool = False  # run_benchmark wrote the report
    worker: Any = None
    run_dirs: list[RunDir] = field(default_factory=list)  # every planned run, in running order
    data_facts: dict = field(default_factory=dict)
    runs_started: float | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        """Seconds until the work must be done (the report's reserve kept free)."""
        return self.limit_s - REPORT_RESERVE_S - self.elapsed()

    def log(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f} s] {message}", flush=True)

    def phase(self, name: str, work: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return work()
        finally:
            self.phases[f"{name}_s"] = round(time.perf_counter() - t0, 3)

    def worker_message(self, kind: str, name: str | None, info: dict) -> None:
        """What the evaluation worker reports (called from its reader thread)."""
        if kind == "loaded":
            self.phases["worker_load_s"] = info["load_s"]
        elif name is not None and kind in ("evaluated", "skipped", "failed"):
            self.fgsm_rows += info.pop("fgsm", [])
            self.runs.setdefault(name, {}).update({"eval_state": kind, **info})
            if kind == "skipped":
                self.skipped.append(f"{name} (evaluation)")
            what = (
                f"in {info['eval_s']:.1f} s + paper FGSM {info['fgsm_s']:.1f} s"
                if kind == "evaluated"
                else str(info.get("reason") or info.get("error"))
            )
            self.log(f"{kind} {name}: {what}")
        elif kind == "failed":
            self.log(f"evaluation worker failed: {info.get('error')}")

    def on_cuda(self) -> bool:
        return self.args.device.startswith("cuda")

    def est_train(self, method: str) -> float:
        """A training's expected seconds: measured for this method, else any measured, else the
        H200 estimate (on a GPU), else 0 (nothing known: never skip)."""
        trained = [r for r in self.runs.values() if r.get("train_state") in ("new", "replace")]  # not reused ones
        same = [r["train_s"] for r in trained if r["method"] == method]
        other = [r["train_s"] for r in trained]
        if same or other:
            return (same or other)[-1]
        return self.budget.train_s.get(method, 0.0) if self.on_cuda() else 0.0

    def est_eval(self) -> float:
        done = [r["eval_s"] + r.get("fgsm_s", 0.0) for r in self.runs.values() if "eval_s" in r]
        if done:
            return max(done)
        return self.budget.eval_s if self.on_cuda() else 0.0


def _alarm(signum, frame):
    raise Deadline()


def arm(seconds: float) -> None:
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))


def disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


def ordered_configs(job: Job) -> list[TrainConfig]:
    """run_benchmark's per-run configs, seed by seed: all methods of the first seed come first, so
    a stop at the limit leaves a complete comparison."""
    configs = pipeline.planned_configs(job.plan, job.train)
    return sorted(configs, key=lambda c: (job.plan.seeds.index(c.seed), job.plan.methods.index(c.method)))


def load_data(job: Job):
    """The dataset, loaded through run_benchmark's per-process cache when it has one, so that the
    final run_benchmark call does not decode the 60,000 images again."""
    from robustbench_mm.data.datasets import load_dataset

    cached = getattr(pipeline, "_cached_dataset", None)  # no public way to hand run_benchmark a dataset
    cfg = job.train
    return job.phase("load", lambda: cached(cfg, load_dataset) if cached else load_dataset(cfg.dataset, cfg.data_root))


def run(job: Job) -> int:
    """Everything after the settings: the runs, the report, timing.json, summary.md."""
    mode = "sequential" if job.args.sequential else "overlapped"
    job.log(
        f"{mode}: {len(job.plan.methods)} methods x {len(job.plan.seeds)} seeds, {job.train.epochs} epochs, "
        f"limit {job.limit_s / 60:.1f} min; {job.facts.get('gpu')}, torch {job.facts.get('torch')}"
    )
    arm(job.left())
    try:
        _sequential(job) if job.args.sequential else _overlapped(job)
    except (Deadline, KeyboardInterrupt) as exc:
        job.stopped = "time limit" if isinstance(exc, Deadline) else "interrupted"
        job.log(f"stopped: {job.stopped}; writing what finished")
    finally:
        disarm()
        if job.worker is not None:
            job.worker.stop()
        if job.runs_started is not None:  # training and evaluation, as run_benchmark's report counts it
            job.phases["runs_s"] = round(time.perf_counter() - job.runs_started, 2)
    return finish(job, mode)


def _overlapped(job: Job) -> None:
    from robustbench_mm.training.loop import train

    worker = EvalWorker(job.train.dataset, job.evaluate, time.time() + job.left(), job.worker_message)
    job.worker = worker  # finish() collects its results and stops it if the limit cut the work short
    data = load_data(job)
    job.data_facts = _data_facts(data)
    configs = ordered_configs(job)
    runs = []
    for cfg, (resolved, _) in zip(configs, pipeline.resolved_runs(configs, data), strict=True):
        run_dir = RunDir.of(job.plan.runs_dir, resolved)
        run_dir.training_state(resolved, False)  # refuse runs of other settings before anything trains
        runs.append((cfg, resolved.run_name, run_dir))
    job.run_dirs = [run_dir for _, _, run_dir in runs]
    if job.on_cuda():
        import torch

        torch.backends.cudnn.benchmark = True  # fixed training shapes, as run_all.py measured; never in the worker
    job.runs_started = time.perf_counter()
    for cfg, name, run_dir in runs:
        # this training, then waiting for the evaluations queued before it, then its own evaluation
        need = max(job.est_train(cfg.method), worker.backlog() * job.est_eval()) + job.est_eval()
        if need > job.left():
            job.skipped.append(name)
            job.log(f"skip {name}: needs ~{need:.0f} s, {max(job.left(), 0):.0f} s left")
            continue
        t0 = time.perf_counter()
        result = train(cfg, out_dir=job.plan.runs_dir, progress=False, data=data, log=lambda s: None)
        seconds = time.perf_counter() - t0
        job.runs[name] = {
            "method": cfg.method,
            "seed": cfg.seed,
            "train_s": round(seconds, 2),
            "train_state": result.state,
            "test_accuracy": round(result.test_accuracy, 4),
        }
        job.log(
            f"trained {name} ({result.state}) in {seconds:.1f} s, test accuracy {100 * result.test_accuracy:.2f}%"
            f"; evaluations queued: {worker.backlog() + 1}"
        )
        worker.submit(name, str(run_dir), job.est_eval())
    worker.close()
    worker.wait()


def _sequential(job: Job) -> None:
    data = load_data(job)
    job.data_facts = _data_facts(data)
    configs = ordered_configs(job)
    runs = [RunDir.of(job.plan.runs_dir, resolved) for resolved, _ in pipeline.resolved_runs(configs, data)]
    job.run_dirs = runs
    plan = dataclasses.replace(job.plan, quiet=False)  # its progress: one line per finished run
    job.phase("run_benchmark", lambda: pipeline.run_benchmark(plan, job.train, job.evaluate))
    job.reported = True
    for cfg, run_dir in zip(configs, runs, strict=True):
        job.runs[run_dir.name] = {
            "method": cfg.method,
            "seed": cfg.seed,
            "train_epochs_s": _train_seconds(run_dir.path),
        }


def _train_seconds(path: Path) -> float | None:
    import pandas as pd

    log = path / "train_log.csv"
    return round(float(pd.read_csv(log)["seconds"].sum()), 2) if log.exists() else None


def _data_facts(data) -> dict:
    return {
        "train_images": len(data.train_y),
        "test_images": len(data.test_y),
        "image_size": data.image_size,
        "crop_padding": data.crop_padding,
        "flip": data.flip,
    }


def finish(job: Job, mode: str) -> int:
    """The report over the runs that finished, their files, fgsm_paper_radii.csv, timing.json, summary.md."""
    finished = [d for d in job.run_dirs if d.is_trained and d.evaluation() is not None]
    job.out.mkdir(parents=True, exist_ok=True)
    if finished and not job.reported:
        job.phase("report", lambda: _report(job, finished))
    if job.args.sequential and finished:
        job.phase("paper_fgsm", lambda: _fgsm_in_main(job, finished))
    if job.fgsm_rows:
        import pandas as pd

        pd.DataFrame(job.fgsm_rows).sort_values(["method", "seed", "eps"]).to_csv(
            job.out / "fgsm_paper_radii.csv", index=False
        )
    _copy_run_files(job.run_dirs, job.out / "runs")
    settings = _run_settings(finished or job.run_dirs, job)
    timing = _timing(job, mode, settings, finished)
    (job.out / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    write_summary(job.out, timing, settings)
    complete = len(finished) == len(job.run_dirs) and len(job.run_dirs) > 0
    job.log(
        f"{len(finished)} of {len(job.run_dirs)} runs reported in {job.out}; total {job.elapsed():.1f} s"
        f" of {job.limit_s:.0f} s{'' if complete else ' (INCOMPLETE)'}"
    )
    return 0 if complete else 1


def _report(job: Job, finished: list[RunDir]) -> None:
    """The report over the finished runs, written as run_benchmark writes it, with the wall time
    of the training and evaluation (a run_benchmark call now would only reuse the runs, and its
    report would claim the few seconds that took)."""
    from robustbench_mm.report import write_report

    seconds = job.phases.get("runs_s", job.elapsed())
    write_report(
        [d.path for d in finished],
        job.plan.out,
        formats=job.plan.formats,
        seconds=seconds,
        floor=job.plan.accuracy_floor,
    )


def reusable(job: Job, finished: list[RunDir]) -> bool:
    """Whether run_benchmark with these settings would reuse every finished run as it is: the
    two checks it makes (the training settings match; the evaluation holds these settings'
    results for this very model.pt)."""
    from robustbench_mm.evaluation.catalog import default_suites
    from robustbench_mm.store.accumulate import already_done

    # evaluate_run names the default suites before it compares settings; so do we
    evaluate = dataclasses.replace(job.evaluate, suites=job.evaluate.suites or default_suites()).validate()
    for run in finished:
        if run.training_state(run.read_config(), False) != "finished":
            return False
        if already_done(run.evaluation(), run, evaluate) is None:
            return False
    return bool(finished)


def _fgsm_in_main(job: Job, finished: list[RunDir]) -> None:
    from cifar10_worker import paper_fgsm as fgsm

    from robustbench_mm.data.datasets import load_dataset

    cached = getattr(pipeline, "_cached_dataset", None)  # run_benchmark's copy, decoded once
    data = cached(job.train, load_dataset) if cached else load_dataset(job.train.dataset, job.train.data_root)
    for run_dir in finished:
        job.fgsm_rows += fgsm(str(run_dir.path), data, job.evaluate)


def _copy_run_files(run_dirs: list[RunDir], dest: Path) -> None:
    """The small files of each run (settings, training log, metrics); not the weights."""
    from robustbench_mm.store import evalstore

    for run in run_dirs:
        files = [run.file("config.toml"), run.file("train_log.csv")]
        folder = evalstore.folder(run.path) if run.path.is_dir() else None
        if folder is not None:
            files += [folder / evalstore.METRICS, folder / evalstore.RECORD, folder / evalstore.RELIABILITY]
        for path in files:
            if path.is_file():
                (dest / run.name).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest / run.name / path.name)


def _run_settings(runs: list[RunDir], job: Job) -> dict:
    """The resolved training settings of the first trained run (what every run shares)."""
    for run in runs:
        if run.file("config.toml").exists():
            table = to_table(run.read_config())
            table.pop("method", None)
            table.pop("seed", None)
            return {**table, **job.data_facts}
    return {**to_table(job.train), **job.data_facts}


def _timing(job: Job, mode: str, settings: dict, finished: list[RunDir]) -> dict:
    import torch

    job.phases["total_s"] = round(job.elapsed(), 2)
    return {
        **job.facts,
        "mode": mode,
        "tiny": job.args.tiny,
        "limit_s": job.limit_s,
        "cudnn_benchmark_training": mode == "overlapped" and job.on_cuda(),
        "command": " ".join(sys.argv),
        "total_s": job.phases["total_s"],
        "phases": job.phases,
        "runs": job.runs,
        "finished": [d.name for d in finished],
        "skipped": job.skipped,
        "stopped": job.stopped,
        "not_finished": [d.name for d in job.run_dirs if d.name not in {f.name for f in finished}],
        "run_benchmark_would_reuse_all": reusable(job, finished),
        "estimate": {
            "overlapped_s": round(job.budget.overlapped_s, 1),
            "sequential_s": round(job.budget.sequential_s, 1),
            "train_s": {k: round(v, 1) for k, v in job.budget.train_s.items()},
            "eval_s": round(job.budget.eval_s, 1),
            "arithmetic": job.budget.lines,
        },
        "settings": settings,
        "evaluation": to_table(job.evaluate),
        "torch_threads": torch.get_num_threads(),
    }

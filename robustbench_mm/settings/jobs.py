"""What a command does with the settings: where runs go, what may be replaced, what ``run`` plans."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robustbench_mm.settings.fields import check, setting
from robustbench_mm.settings.train import SEED_MAX

DEFAULT_METHODS = ["erm", "mixup", "manifold-mixup"]  # the question the benchmark exists for
DEFAULT_SEEDS = [0, 1, 2]
LAUNCHERS = ("processes", "overlapped", "local", "slurm")
SUBMITIT_LAUNCHERS = ("local", "slurm")


@dataclass
class JobOptions:
    """Options of the commands that write run directories (train, run)."""

    # Without --force a command is make-like: a finished run of the same settings is reused, an
    # interrupted one continues from its last checkpoint, a run of other settings is refused.
    force: bool = setting(
        False, "replace existing runs, even of other settings (the old run is kept until the new one is complete)"
    )
    quiet: bool = setting(False, "no progress bars")
    preset: str | None = setting(None, "a shipped preset (mmbench list --presets); flags override its values")

    def validate(self, cli: bool = False):
        check(self, cli)
        return self


@dataclass
class EvaluateOptions:
    """``mmbench evaluate``: what happens to an earlier evaluation of the run."""

    fresh: bool = setting(
        False, "start the run's evaluation over (default: new rows replace the same rows, the rest stay)"
    )
    quiet: bool = setting(False, "no progress bars")

    def validate(self, cli: bool = False):
        check(self, cli)
        return self


@dataclass
class TrainOptions(JobOptions):
    """``mmbench train``: one run directory under ``out_dir``."""

    out_dir: str = setting("runs", "parent of the run directory")
    sync_bn: bool = setting(False, "under torchrun: synchronized BatchNorm across processes")


@dataclass
class ReportOptions:
    """What a report (``mmbench report``, and the end of ``mmbench run``) writes and checks."""

    formats: list[str] = setting(["md"], "report formats", flag="--format", choices=("md", "html"), unique=True)
    accuracy_floor: float | None = setting(
        None,
        "clean accuracy below which a run counts as undertrained "
        "(default: the dataset's; an image folder has none; 0: no floor)",
        low=0,
        high=1,
    )
    strict: bool = setting(False, "exit with status 1 when a run is undertrained")

    def validate(self, cli: bool = False):
        check(self, cli)
        return self


@dataclass
class RunPlan(JobOptions, ReportOptions):
    """``mmbench run``: methods x seeds, then evaluation and one report."""

    methods: list[str] = setting(list(DEFAULT_METHODS), "training methods to compare", unique=True)
    seeds: list[int] = setting(
        list(DEFAULT_SEEDS), "seeds (one run per method and seed)", low=0, high=SEED_MAX, unique=True
    )
    # not results/: running the quick start must leave a checkout clean (the committed baseline is
    # regenerated on purpose, with --out results)
    out: str = setting("runs/report", "report folder")
    runs_dir: str = setting("runs", "where the run directories go")
    jobs: int | None = setting(
        None, "runs in parallel (default: one per GPU on CUDA, one per CPU core otherwise)", low=1, high=1024
    )
    plan: bool = setting(False, "print one shell command per run (for a cluster scheduler) and exit")
    # how the runs are carried out (robustbench_mm.app.schedulers); every launcher gives the same numbers
    launcher: str = setting(
        "processes",
        "processes: --jobs local worker processes; overlapped: one device, training the next run while the "
        "previous one is evaluated; local: submitit jobs on this machine; slurm: one Slurm job per run",
        choices=LAUNCHERS,
    )
    budget_minutes: float | None = setting(
        None,
        "with --launcher overlapped: wall-clock limit; a run that would end later is skipped, work in flight at "
        "the limit stops (its checkpoint stays) and the report covers what finished",
        low=0,
        low_open=True,
        high=525_600,  # a year
    )
    wait: bool = setting(
        True, "with --launcher slurm/local: wait for the jobs and write the report (--no-wait: submit and return)"
    )
    slurm_partition: str | None = setting(None, "with --launcher slurm: the partition")
    gpus_per_run: int | None = setting(None, "with --launcher slurm/local: GPUs per job (default 0)", low=0, high=64)
    cpus_per_run: int | None = setting(
        None, "with --launcher slurm/local: CPU cores per job (default 1)", low=1, high=1024
    )
    mem_gb: float | None = setting(
        None, "with --launcher slurm/local: memory per job in GB", low=0, low_open=True, high=65_536
    )
    timeout_min: int = setting(
        240,
        "with --launcher slurm/local: a job's time limit; at the limit it is requeued and resumes",
        low=1,
        high=525_600,
    )
    # each method's own settings for this plan (a preset's [method.<name>] tables); flags such as
    # --alpha apply to every planned method that has the setting
    per_method: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self, cli: bool = False):
        check(self, cli)
        _check_launcher_options(self, cli)
        return self


def _check_launcher_options(plan: RunPlan, cli: bool) -> None:
    """Options of one launcher given with another are mistakes, not silently ignored."""
    from robustbench_mm.core.errors import UserError

    name = (lambda field: "--" + field.replace("_", "-")) if cli else (lambda field: field)
    cluster = ("slurm_partition", "gpus_per_run", "cpus_per_run", "mem_gb")
    wrong = [f for f in cluster if getattr(plan, f) is not None and plan.launcher not in SUBMITIT_LAUNCHERS]
    wrong += ["slurm_partition"] * (plan.slurm_partition is not None and plan.launcher == "local")
    wrong += ["budget_minutes"] * (plan.budget_minutes is not None and plan.launcher != "overlapped")
    wrong += ["jobs"] * (plan.jobs is not None and plan.launcher != "processes")
    if not plan.wait and plan.launcher not in SUBMITIT_LAUNCHERS:
        wrong.append("no_wait" if cli else "wait")
    if wrong:
        raise UserError(f"{name(wrong[0])} does not apply to launcher {plan.launcher}")

"""Real CIFAR-10 on one GPU: PreActResNet18, 30 epochs, erm / mixup / manifold-mixup x seeds 0, 1,
bf16, every default suite on the 10,000 test images, in at most 8 minutes (H100/H200).

Prepare here (the device machine has no network; both paths are git-ignored):

    python benchmarks/gpu/cifar10_run.py --make-tar /work/data/cifar10 data/cifar10.tar.gz
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl torchattacks==3.5.1

Run there (device tool: carry ["data", ".whl"]; $OUT returns at most 8 files, so pack the folder):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site;
    mkdir -p /tmp/c10; PYTHONUNBUFFERED=1 python3 benchmarks/gpu/cifar10_run.py --data data/cifar10.tar.gz
      --out /tmp/c10/cifar10-preactresnet18 2>&1 | tee /tmp/c10/log.txt; tar -C /tmp/c10 -czf $OUT/c10.tgz .

Then commit the folder as results/cifar10-preactresnet18/. ``--budget-check`` prints the time
estimate (the arithmetic is in cifar10_budget.py) and exits 1 if it exceeds --max-minutes.

Smoke test on a CPU (every code path, report included; real subset or synthetic data):

    python benchmarks/gpu/cifar10_run.py --make-tar /work/data/cifar10 /tmp/c10tiny.tar.gz --per-class 20
    PYTHONPATH=$PWD python benchmarks/gpu/cifar10_run.py --tiny --data /tmp/c10tiny.tar.gz --out /tmp/c10tiny-out

How it runs: the settings are RunPlan / TrainConfig / EvalConfig objects, and the per-run configs
are ``pipeline.planned_configs``'s, as ``run_benchmark`` makes them. By default each model is
trained in this process (``train.train``) while a second process evaluates the previous one
(``evaluation.evaluate_run``), so host-side evaluation work overlaps GPU training, and
``report.write_report`` writes the report (the functions run_benchmark calls; run_benchmark
itself has no overlap and no time limit). ``--sequential`` calls ``run_benchmark`` once instead.
Runs go seed by seed (the three methods of seed 0 first); a run that would end past
``--max-minutes`` is skipped, at the limit any work in flight is stopped, and the report covers
what finished. The same command again reuses finished runs (make-like). Beside the report:
``timing.json`` (wall time per phase, GPU, torch), ``summary.md`` (FGSM beside the paper's Table
7), ``fgsm_paper_radii.csv`` and each run's config.toml, train_log.csv and metrics.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # the budget counts from here (before the heavy imports)

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cifar10_budget  # noqa: E402
import cifar10_data  # noqa: E402

from robustbench_mm.core.errors import UserError  # noqa: E402
from robustbench_mm.settings import EvalConfig, RunPlan, TrainConfig  # noqa: E402

METHODS = ["erm", "mixup", "manifold-mixup"]
CIFAR10_FLOOR = 0.8  # the project's clean-accuracy floor for CIFAR-10 (an image folder has none by default)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="the CIFAR-10 tarball (.tar/.tar.gz/.tgz) or image folder (train/, test/)")
    p.add_argument("--out", help="report folder (default results/cifar10-preactresnet18; --tiny: <work-dir>/out)")
    p.add_argument("--work-dir", help="unpacked data and run directories (default: on /dev/shm when it has room)")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="hard limit for the whole script (default 7.5; "
        "--tiny 10): work that would end later is skipped, work in flight at the limit is stopped",
    )
    p.add_argument("--budget-check", action="store_true", help="print the time estimate and exit (1 if over)")
    p.add_argument("--sequential", action="store_true", help="one run_benchmark call, no overlap of evaluation")
    p.add_argument(
        "--tiny",
        action="store_true",
        help="CPU smoke test: 20/10 images per class, 1 epoch, cnn, seed 0, corruption level 3 only",
    )
    p.add_argument("--device", help="cuda (default), cpu (--tiny default) or cuda:N")
    p.add_argument("--arch", help="architecture (only with --tiny; default preactresnet18, --tiny cnn)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default=None, help="default 0,1 (--tiny 0)")
    p.add_argument("--epochs", type=int, default=None, help="default 30 (--tiny 1)")
    p.add_argument("--batch-size", type=int, default=None, help="default 512 (--tiny 32)")
    p.add_argument("--lr", type=float, default=0.2, help="peak lr (default 0.2 for batch 512)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", default=None, help="lr schedule (default: the project's default)")
    p.add_argument("--eval-batch-size", type=int, default=1000)
    p.add_argument("--make-tar", nargs=2, metavar=("FOLDER", "TARBALL"), help="pack an image folder and exit")
    p.add_argument("--per-class", type=int, default=None, help="with --make-tar: the first N images per class")
    args = p.parse_args(argv)
    if args.arch and not args.tiny:
        p.error("--arch is only for --tiny; the real run is PreActResNet18")
    tiny = args.tiny
    args.device = args.device or ("cpu" if tiny else "cuda")
    args.arch = args.arch or ("cnn" if tiny else "preactresnet18")
    args.epochs = args.epochs or (1 if tiny else 30)
    args.batch_size = args.batch_size or (32 if tiny else 512)
    args.max_minutes = args.max_minutes or (10.0 if tiny else 7.5)
    args.methods = [m for m in args.methods.split(",") if m]
    try:
        args.seeds = [int(s) for s in (args.seeds or ("0" if tiny else "0,1")).split(",") if s]
    except ValueError:
        p.error(f"--seeds must be integers separated by commas, got {args.seeds[:50]!r}")
    return args


def default_work_dir() -> Path:
    """tmpfs when it has room: a checkpoint (~90 MB) is written and fsynced after every epoch."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 * 2**30:
        return shm / "robustbench_mm-cifar10"
    return Path(tempfile.gettempdir()) / "robustbench_mm-cifar10"


def prepare_data(args: argparse.Namespace, work: Path, log) -> Path:
    """The image folder to train on: unpacked from the tarball, the folder given, or (--tiny) a
    small subset of either, or synthetic images when no data is given."""
    if args.data is None:
        if not args.tiny:
            raise UserError("--data is required: the CIFAR-10 tarball or image folder")
        return cifar10_data.synthetic_imagefolder(work / "synthetic" / "cifar10", 20, 10)
    source = Path(args.data).expanduser()
    if cifar10_data.is_archive(source):
        folder, fresh = cifar10_data.unpack(source, work / "data")
        log(f"data: {source} {'unpacked' if fresh else 'already unpacked'} -> {folder}")
    elif source.is_dir():
        folder = cifar10_data.find_imagefolder(source.resolve())
    else:
        raise UserError(f"--data {args.data[:200]} is neither a .tar/.tar.gz/.tgz file nor a folder")
    if args.tiny:  # the name stays cifar10 so run names match the real run's
        target = work / "tiny" / "cifar10"
        shutil.rmtree(target, ignore_errors=True)
        folder = cifar10_data.copy_subset(folder, target, 20, 10)
    return folder


def settings(args: argparse.Namespace, folder: Path, work: Path, out: Path) -> tuple[RunPlan, TrainConfig, EvalConfig]:
    """The settings objects run_benchmark takes; every default suite, every test image."""
    train = TrainConfig(
        dataset=f"imagefolder:{folder}",
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        device=args.device,
        amp="auto",
    )
    if args.schedule:
        train.schedule = args.schedule
    # n_test=0: the whole test set (a 32x32 colour folder's default is a 1,000-image subset, for CPUs)
    evaluate = EvalConfig(device=args.device, batch_size=args.eval_batch_size, n_test=0)
    if args.tiny:  # every suite still runs; one corruption level keeps the CPU smoke test short
        evaluate.severities = [3]
    plan = RunPlan(
        methods=args.methods,
        seeds=args.seeds,
        out=str(out),
        runs_dir=str(work / "runs"),
        formats=["md", "html"],
        accuracy_floor=CIFAR10_FLOOR,
        quiet=True,
        jobs=1,
    )
    for obj in (plan, train, evaluate):
        obj.validate()
    return plan, train, evaluate


def device_facts(device: str) -> dict:
    import platform

    import torch

    facts = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(torch.device(device))
    else:
        facts["gpu"] = f"no GPU ({platform.processor() or platform.machine()} CPU)"
    return facts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.make_tar:
            count = cifar10_data.make_tar(Path(args.make_tar[0]), Path(args.make_tar[1]), args.per_class)
            size = Path(args.make_tar[1]).stat().st_size
            print(f"{args.make_tar[1]}: {count:,} images, {size / 2**20:.1f} MiB")
            return 0
        n_train, n_test = (180, 100) if args.tiny else (50_000, 10_000)
        budget = cifar10_budget.estimate(args.methods, args.seeds, args.epochs, args.batch_size, n_train, n_test)
        print(budget.text(), flush=True)
        limit = args.max_minutes * 60
        if args.budget_check:
            fits = budget.overlapped_s <= limit
            print(f"budget: {'fits' if fits else 'does NOT fit'} in --max-minutes {args.max_minutes:g}")
            return 0 if fits else 1
        from cifar10_runner import Job, run

        work = Path(args.work_dir).expanduser() if args.work_dir else default_work_dir()
        if args.tiny:
            work = work.with_name(work.name + "-tiny")
        out = Path(args.out) if args.out else (work / "out" if args.tiny else Path("results/cifar10-preactresnet18"))
        job = Job(args=args, work=work, out=out, budget=budget, started=STARTED, limit_s=limit)
        folder = job.phase("unpack", lambda: prepare_data(args, work, job.log))
        job.plan, job.train, job.evaluate = settings(args, folder, work, out)
        job.facts = device_facts(args.device)
        return run(job)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``mmbench``: train | evaluate | report | check | run | list | show-corruptions.

Bad input prints one line (``mmbench: error: ...``) on stderr and exits with status 2;
nothing already on disk is touched before the input has been validated.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from .errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog.split()[-1] if ' ' in self.prog else self.prog}: {message}")


def _number(kind: Callable, minimum: float | None = None, strict: bool = False, name: str = "value"):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if kind is float and value != value:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"{name} must be {'>' if strict else '>='} {minimum}, got {text}")
        return value

    return parse


def _list(kind: Callable, name: str):
    """Comma- or space-separated values: ``--eps 0.01,0.03`` or ``--eps 0.01 0.03``."""

    def parse(text: str):
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: cannot parse {text!r} as {kind.__name__} values") from None

    return parse


def _flatten(values) -> list | None:
    if values is None:
        return None
    return [v for group in values for v in (group if isinstance(group, list) else [group])]


# ------------------------------------------------------------------------------ flag groups


def add_train_args(p: argparse.ArgumentParser, single_method: bool = True) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--dataset", default=None, help="digits (default), mnist, fashion-mnist, cifar10, cifar100, svhn or imagefolder:<path>")
    g.add_argument("--data-root", default=None, help="folder holding the torchvision dataset files")
    g.add_argument("--download", action="store_true", default=None, help="let torchvision download the dataset into --data-root")
    g.add_argument("--arch", default=None, help="architecture (default per dataset: digits -> cnn, 32x32 -> preactresnet18)")
    if single_method:
        g.add_argument("--method", default=None, help="erm (default), mixup or manifold-mixup")
    g.add_argument("--alpha", type=_number(float, name="--alpha"), default=None, help="Beta(α, α) for mixing (default 1 for mixup, 2 for manifold-mixup)")
    g.add_argument("--mix-layers", type=_list(int, "--mix-layers"), default=None, help="eligible mixing layers, e.g. 0,1,2 (0 = input)")
    g.add_argument("--mix-loss", default=None, choices=["ce", "bce"], help="soft-target cross-entropy (default) or the official code's BCE on softmax")
    g.add_argument("--pairing", default=None, choices=["flip", "permute"], help="partner of each example: the reversed shuffled batch (default) or a random permutation")
    g.add_argument("--epochs", type=_number(int, 0, True, "--epochs"), default=None)
    g.add_argument("--batch-size", type=_number(int, 1, True, "--batch-size"), default=None)
    g.add_argument("--lr", type=_number(float, 0, True, "--lr"), default=None)
    g.add_argument("--weight-decay", type=_number(float, 0, name="--weight-decay"), default=None)
    g.add_argument("--schedule", default=None, choices=["step", "cosine"])
    g.add_argument("--milestones", type=_list(int, "--milestones"), default=None, help="step schedule: epochs where lr /= 10 (default 1/3 and 2/3)")
    if single_method:
        g.add_argument("--seed", type=_number(int, 0, name="--seed"), default=None)
    g.add_argument("--holdout-fraction", type=_number(float, 0, name="--holdout-fraction"), default=None, help="share of training data held out for temperature scaling (default 0.1)")
    g.add_argument("--device", default=None, help="auto (default: CUDA when present), cpu, cuda, cuda:N")
    g.add_argument("--amp", default=None, choices=["auto", "on", "off"], help="bf16 autocast + channels_last (auto: on for CUDA)")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model (long CUDA runs)")
    g.add_argument("--sync-bn", action="store_true", help="under torchrun: synchronized BatchNorm across processes")
    g.add_argument("--force", action="store_true", help="replace existing run directories")
    g.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def train_config(args: argparse.Namespace, base=None):
    from .config import TrainConfig

    cfg = base or TrainConfig()
    mapping = {
        "dataset": "dataset", "data_root": "data_root", "download": "download", "arch": "arch", "method": "method",
        "alpha": "alpha", "mix_layers": "mix_layers", "mix_loss": "mix_loss", "pairing": "pairing", "epochs": "epochs",
        "batch_size": "batch_size", "lr": "lr", "weight_decay": "weight_decay", "schedule": "schedule", "seed": "seed",
        "holdout_fraction": "holdout_fraction", "device": "device", "amp": "amp", "milestones": "milestones", "compile": "compile",
    }
    changes = {field: getattr(args, flag) for flag, field in mapping.items() if getattr(args, flag, None) is not None}
    if "epochs" in changes and "milestones" not in changes and cfg.milestones and cfg.epochs:
        # A preset's lr drops scale with a shorter or longer run (400/800 of 1,200 -> 1/3, 2/3).
        changes["milestones"] = [max(1, round(m * changes["epochs"] / cfg.epochs)) for m in cfg.milestones]
    return dataclasses.replace(cfg, **changes)


def add_eval_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("evaluation")
    g.add_argument("--suite", "--suites", dest="suites", action="append", type=_list(str, "--suite"), default=None,
                   help="clean, adversarial, deformation, corruption, calibration (repeatable or comma-separated)")
    g.add_argument("--attacks", action="append", type=_list(str, "--attacks"), default=None, help="attack names (see mmbench list)")
    g.add_argument("--eps", action="append", type=_list(float, "--eps"), default=None, help="L∞ radii in [0, 1] pixel scale")
    g.add_argument("--eps-l2", action="append", type=_list(float, "--eps-l2"), default=None, help="L2 radii")
    g.add_argument("--pgd-steps", type=_number(int, 0, True, "--pgd-steps"), default=None)
    g.add_argument("--pgd-restarts", type=_number(int, 0, True, "--pgd-restarts"), default=None)
    g.add_argument("--pgd-step-size", type=_number(float, 0, True, "--pgd-step-size"), default=None, help="default 2.5·ε/steps")
    g.add_argument("--attack-precision", default=None, choices=["auto", "fp32", "bf16"])
    g.add_argument("--deformations", default=None, help="paper (Table 4, default) or paper-full (Table 9)")
    g.add_argument("--corruptions", action="append", type=_list(str, "--corruptions"), default=None)
    g.add_argument("--severities", action="append", type=_list(int, "--severities"), default=None, help="corruption levels 1..5")
    g.add_argument("--cifar-c-root", default=None, help="folder with CIFAR-10-C/ or CIFAR-100-C/ .npy files")
    g.add_argument("--eval-batch-size", type=_number(int, 0, name="--eval-batch-size"), default=None, help="0 = from free GPU memory")
    g.add_argument("--eval-seed", type=_number(int, 0, name="--eval-seed"), default=None)
    g.add_argument("--max-examples", type=_number(int, 0, True, "--max-examples"), default=None)
    g.add_argument("--bins", type=_number(int, 0, True, "--bins"), default=None, help="calibration bins (default 15)")


def eval_config(args: argparse.Namespace):
    from .config import EvalConfig

    cfg = EvalConfig()
    lists = {"suites": "suites", "attacks": "attacks", "eps": "eps", "eps_l2": "eps_l2", "corruptions": "corruptions", "severities": "severities"}
    for flag, field in lists.items():
        value = _flatten(getattr(args, flag, None))
        if value is not None:
            setattr(cfg, field, value)
    scalars = {"pgd_steps": "pgd_steps", "pgd_restarts": "pgd_restarts", "pgd_step_size": "pgd_step_size",
               "attack_precision": "attack_precision", "deformations": "deformations", "cifar_c_root": "cifar_c_root",
               "eval_batch_size": "batch_size", "eval_seed": "seed", "max_examples": "max_examples", "bins": "n_bins"}
    for flag, field in scalars.items():
        value = getattr(args, flag, None)
        if value is not None:
            setattr(cfg, field, value)
    if getattr(args, "device", None):
        cfg.device = args.device
    cfg.validate()
    _validate_eval_names(cfg)
    return cfg


def _validate_eval_names(cfg) -> None:
    """Unknown suites/attacks/deformation grids/corruptions fail before any work starts."""
    from .evaluation import check_suites

    check_suites(cfg.suites)
    if cfg.attacks:
        from .attacks import ATTACKS

        for name in cfg.attacks:
            ATTACKS.get(name)
    from .corruptions import CORRUPTIONS, deformation_grid

    deformation_grid(cfg.deformations)
    for name in cfg.corruptions or []:
        CORRUPTIONS.get(name)


# ------------------------------------------------------------------------------ commands


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    base = None
    if args.preset:
        from .config import TrainConfig
        from .presets import apply_preset

        base, _ = apply_preset(args.preset, TrainConfig())
    cfg = train_config(args, base)
    if args.out_dir:
        cfg.out_dir = args.out_dir
    # --quiet turns off the progress bars; the one-line notes (data placement, resuming) stay.
    result = train(cfg, force=args.force, resume=args.resume, progress=not args.quiet, sync_bn=args.sync_bn)
    print(f"test accuracy: {result.test_accuracy * 100:.2f}% ({result.seconds:.1f} s)")
    print(result.run_dir)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import distributed
    from .document import markdown_table
    from .evaluation import check_run, evaluate_run
    from .inference import resolve_device
    from .report import headline, summarize

    cfg = eval_config(args)
    for run_dir in args.run_dirs:  # every run must load before any metrics.csv is rewritten
        check_run(run_dir)
    # under torchrun: one process per GPU (or gloo on the CPU), attacks sharded, rank 0 writes
    device = resolve_device(cfg.device)
    shard = distributed.setup(device)
    try:
        if shard.active:
            cfg.device = str(distributed.rank_device(device, shard))
        for run_dir in args.run_dirs:
            evaluation = evaluate_run(run_dir, config=cfg, data_root=args.data_root, shard=shard)
            if not shard.main:
                continue
            head, notes = headline(summarize(evaluation.metrics))
            print(f"## {Path(run_dir).name}\n")
            print(markdown_table(head))
            for note in notes:
                print(note)
            processes = f", {shard.world} processes" if shard.active else ""
            print(f"\nwrote {Path(run_dir) / 'metrics.csv'} ({len(evaluation.metrics)} rows, {evaluation.seconds:.1f} s{processes})\n")
    finally:
        distributed.teardown(shard)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import headline_markdown, write_report

    formats = _flatten(args.format) or ["md"]
    bad = [f for f in formats if f not in ("md", "html")]
    if bad:
        raise UserError(f"unknown report format {bad[0]!r}; valid: md, html")
    write_report(args.run_dirs, args.out, formats=formats, plots=not args.no_plots)
    print(headline_markdown(args.run_dirs))
    print(f"\nwrote {Path(args.out) / 'report.md'}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import compare, read_report
    from .storage import atomic_write_bytes

    if args.update_baseline:
        read_report(args.current)  # validates before anything is replaced
        atomic_write_bytes(args.baseline, Path(args.current).read_bytes())
        print(f"baseline {args.baseline} updated from {args.current}; review the diff like code")
        return 0
    result = compare(read_report(args.baseline), read_report(args.current), args.tolerance, args.tolerance_std)
    print(result.to_json() if args.json else result.markdown())
    return 1 if result.failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import run_benchmark

    return run_benchmark(args)


def cmd_list(args: argparse.Namespace) -> int:
    from .attacks import ATTACKS
    from .corruptions import CORRUPTIONS, DEFORMATIONS
    from .data import dataset_names
    from .evaluation import check_suites
    from .methods import METHODS
    from .models import ARCHS
    from .suites import SUITES

    check_suites(["clean"])
    if getattr(args, "presets", False):
        from .presets import preset_names, load_preset

        for name in preset_names():
            print(f"{name}: {load_preset(name).get('description', '')}")
        return 0
    for title, names in (
        ("datasets", dataset_names()), ("architectures", ARCHS.names()), ("methods", METHODS.names()),
        ("suites", SUITES.names()), ("attacks", ATTACKS.names()), ("deformations", DEFORMATIONS.names()),
        ("corruptions", CORRUPTIONS.names()),
    ):
        print(f"{title}: {', '.join(names)}")
    return 0


def cmd_show_corruptions(args: argparse.Namespace) -> int:
    from .corruptions import corruption_grid_png
    from .data import load_dataset, to_float
    from .storage import ensure_writable_dir

    names = _flatten(args.corruptions)
    data = load_dataset(args.dataset or "digits", args.data_root, False)
    out = ensure_writable_dir(args.out)
    path = out / f"corruptions_{data.name.replace(':', '_').replace('/', '_')}.png"
    corruption_grid_png(to_float(data.test_x[: args.images]), path, names=names)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="mmbench", description="Robustness benchmark for Manifold Mixup (ERM vs mixup vs manifold-mixup).")
    parser.add_argument("--version", action="version", version=f"mmbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train one model into a run directory")
    add_train_args(p)
    p.add_argument("--out-dir", default=None, help="parent of the run directory (default runs/)")
    p.add_argument("--preset", default=None, help="a shipped preset (see mmbench list --presets)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate run directories; writes metrics.csv into each")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--device", default=None)
    p.add_argument("--data-root", default=None)
    add_eval_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="compare evaluated runs: report.csv, report.md, figures")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", action="append", type=_list(str, "--format"), default=None, help="md (default), html")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("check", help="regression gate: current report.csv vs a baseline")
    p.add_argument("--baseline", required=True)
    p.add_argument("--current", required=True)
    p.add_argument("--tolerance", type=_number(float, 0, name="--tolerance"), default=0.02, help="allowed absolute drop (default 0.02 = 2 accuracy points)")
    p.add_argument("--tolerance-std", type=_number(float, 0, name="--tolerance-std"), default=None, help="allow K standard deviations over seeds")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--update-baseline", action="store_true", help="copy --current over --baseline")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="the main job: train erm/mixup/manifold-mixup over seeds, evaluate, report")
    add_train_args(p, single_method=False)
    add_eval_args(p)
    p.add_argument("--methods", action="append", type=_list(str, "--methods"), default=None, help="default erm,mixup,manifold-mixup")
    p.add_argument("--seeds", action="append", type=_list(int, "--seeds"), default=None, help="default 0,1,2")
    p.add_argument("--out", default="results", help="report folder (default results/)")
    p.add_argument("--runs-dir", default="runs", help="where run directories go (default runs/)")
    p.add_argument("--format", action="append", type=_list(str, "--format"), default=None)
    p.add_argument("--preset", default=None, help="a shipped preset (see mmbench list --presets)")
    p.add_argument("--jobs", type=_number(int, 0, True, "--jobs"), default=None,
                   help="runs in parallel (default: one per GPU on CUDA, one per CPU core otherwise)")
    p.add_argument("--plan", action="store_true", help="print one command per run (for a cluster scheduler) and exit")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("list", help="registered datasets, architectures, methods, attacks, ...")
    p.add_argument("--presets", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show-corruptions", help="write a corruption x severity picture grid")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--images", type=_number(int, 0, True, "--images"), default=1)
    p.add_argument("--corruptions", action="append", type=_list(str, "--corruptions"), default=None)
    p.set_defaults(func=cmd_show_corruptions)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except UserError as exc:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank meets the same bad input: say it once
            print(f"mmbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mmbench ... | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # unwritable or missing paths, read-only file systems, a full disk
        where = f": {exc.filename}" if exc.filename else ""
        print(f"mmbench: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

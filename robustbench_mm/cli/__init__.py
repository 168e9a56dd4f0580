"""``mmbench``: train | evaluate | report | check | run | status | list | show-corruptions.

The flags of train, evaluate and run are generated from the settings dataclasses
(:mod:`robustbench_mm.settings`) and from each training method's own settings; this module only
unpacks the command line into those objects and calls the library. Bad input prints one line
(``mmbench: error: ...``) on stderr and exits with status 2; nothing already on disk is touched
before the input has been validated.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from robustbench_mm.cli.commands import (
    cmd_check,
    cmd_evaluate,
    cmd_list,
    cmd_report,
    cmd_run,
    cmd_show_boundaries,
    cmd_show_corruptions,
    cmd_status,
    cmd_train,
    eval_config,
)
from robustbench_mm.cli.flags import (
    TRAIN_ONLY,
    _Parser,
    _positive_int,
    _seed,
    _tolerance,
    add_method_settings,
    add_settings,
)
from robustbench_mm.cli.flags import (
    _settings as _settings,  # re-exported: tests parse flags through it
)
from robustbench_mm.core.errors import UserError
from robustbench_mm.settings import EvalConfig, EvaluateOptions, ReportOptions, RunPlan, TrainConfig, TrainOptions
from robustbench_mm.settings.external import ExternalModelOptions

__all__ = ["build_parser", "eval_config", "main", "train_settings"]


def build_parser() -> argparse.ArgumentParser:
    from robustbench_mm import __version__

    parser = _Parser(
        prog="mmbench", description="Robustness benchmark for Manifold Mixup (ERM vs mixup vs manifold-mixup)."
    )
    parser.add_argument("--version", action="version", version=f"mmbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train one model into a run directory")
    seen = add_settings(p, "training", [TrainConfig])
    add_method_settings(p, seen)
    add_settings(p, "job", [TrainOptions], seen=seen)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate run directories (metrics.csv into each), or a saved model (--model)")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    seen = add_settings(p, "evaluation", [EvalConfig])
    add_settings(p, "job", [EvaluateOptions], seen=seen)
    add_settings(p, "a saved or published model (instead of RUN_DIR)", [ExternalModelOptions], seen=seen)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="compare evaluated runs: report.csv, report.md, figures")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="output folder")
    add_settings(p, "report", [ReportOptions])
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("check", help="regression gate: current report.csv vs a baseline")
    p.add_argument("--baseline", required=True)
    p.add_argument("--current", required=True)
    p.add_argument(
        "--tolerance",
        type=_tolerance("--tolerance"),
        default=0.02,
        help="a score fails only if it drops by more than this, in its own units (default 0.02 = 2 accuracy points)",
    )
    p.add_argument(
        "--tolerance-std",
        type=_tolerance("--tolerance-std"),
        default=4.0,
        help="... and by more than K standard errors of the difference of the seed-means (default 4; 0: off)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--update-baseline", action="store_true", help="copy --current over --baseline")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="the main job: train every method over seeds, evaluate, report")
    seen = add_settings(p, "training", [TrainConfig], skip=TRAIN_ONLY)
    add_method_settings(p, seen)
    add_settings(p, "evaluation", [EvalConfig], seen=seen)
    add_settings(p, "plan", [RunPlan], seen=seen)
    p.set_defaults(func=cmd_run)

    _add_status_and_list(sub)

    p = sub.add_parser("show-corruptions", help="write a corruption x severity picture grid")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--images", type=_positive_int("--images", 64), default=1)
    p.add_argument(
        "--corruptions", action="append", type=lambda t: [v.strip() for v in t.split(",") if v.strip()], default=None
    )
    p.set_defaults(func=cmd_show_corruptions)

    p = sub.add_parser(
        "show-boundaries",
        help="the paper's Fig. 1: decision boundaries and 2-D hidden states, "
        "ERM vs mixup vs Manifold Mixup on a 2-D problem",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--problem", default="spiral", choices=["spiral", "moons"])
    p.add_argument("--seed", type=_seed, default=0)
    p.set_defaults(func=cmd_show_boundaries)
    return parser


def _add_status_and_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="one line per run: finished, running, interrupted, failed or not started")
    p.add_argument("runs_dir", metavar="RUNS_DIR")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("list", help="registered datasets, architectures, methods, attacks, ...")
    p.add_argument("--presets", action="store_true")
    p.set_defaults(func=cmd_list)


def train_settings(argv: Sequence[str]) -> tuple[TrainOptions, TrainConfig]:
    """What ``mmbench train ARGV`` would train (defaults < preset < flags), without training it:
    scripts take the command's flags instead of growing parsers of their own."""
    options, cfg, _ = _settings(build_parser().parse_args(["train", *argv]))
    return options, cfg


def main(argv: Sequence[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # a log file sees each line when it is printed, not at exit
        sys.stdout.reconfigure(line_buffering=True)
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

"""``mmbench``: train | evaluate | report | check | run | list | show-corruptions.

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
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import UserError
from .settings import EvalConfig, EvaluateOptions, ReportOptions, RunPlan, Setting, TrainConfig, TrainOptions, settings_of
from .settings.fields import parse_text

TRAIN_ONLY = ("method", "seed")  # run plans these per run (--methods, --seeds)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog.split()[-1] if ' ' in self.prog else self.prog}: {message}")


# ------------------------------------------------------------------------------ settings <-> flags


def _dest(s: Setting) -> str:
    return s.flag[2:].replace("-", "_")


def _add(group: argparse._ArgumentGroup, s: Setting, seen: set[str], note: str = "") -> None:
    """One argument for setting ``s`` (a flag shared by several settings objects is added once)."""
    if s.flag in seen or not s.spec.cli:
        return
    seen.add(s.flag)
    default = "" if s.default in (None, [], False) or s.spec.per_dataset else f" (default {_shown(s.default)})"
    help_text = s.spec.help.replace(" (default per dataset)", "") + (note or default or _per_dataset(s))
    flags = [s.flag, *s.spec.aliases]
    if s.kind is bool:
        action = argparse.BooleanOptionalAction if s.default else "store_true"
        group.add_argument(*flags, dest=_dest(s), action=action, default=None, help=help_text)
        return
    parse = lambda text, s=s: parse_text(s, text)  # noqa: E731
    metavar = "{" + ",".join(s.spec.choices) + "}" if s.spec.choices else s.name.upper()
    group.add_argument(*flags, dest=_dest(s), type=parse, default=None, action="append" if s.is_list else "store",
                       metavar=metavar, help=help_text)


def _per_dataset(s: Setting) -> str:
    """``(digits 30, mnist 20, ...)``: a per-dataset default, spelled out from the one table."""
    from .settings import DATASET_DEFAULTS

    if not s.spec.per_dataset:
        return ""
    values = [(name, getattr(d, s.name, None)) for name, d in DATASET_DEFAULTS.items()]
    shown = ", ".join(f"{name} {value if value is not None else 'by image size'}" for name, value in values)
    return f" (default per dataset: {shown})"


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def add_settings(parser: argparse.ArgumentParser, title: str, classes: Iterable[type], skip: Sequence[str] = (),
                 seen: set[str] | None = None) -> set[str]:
    group = parser.add_argument_group(title)
    seen = set() if seen is None else seen
    for cls in classes:
        for s in settings_of(cls):
            if s.name not in skip:
                _add(group, s, seen)
    return seen


def add_method_settings(parser: argparse.ArgumentParser, seen: set[str]) -> None:
    from .methods import method_settings, methods_with

    group = parser.add_argument_group("method settings (each applies to the methods that declare it)")
    for s in method_settings():
        _add(group, s, seen, note=f" [{', '.join(methods_with(s.name))}; default per method]")


def given(args: argparse.Namespace, cls: type, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The values of ``cls``'s settings that the command line gave (lists flattened)."""
    out = {}
    for s in settings_of(cls):
        value = getattr(args, _dest(s), None)
        if s.name in skip or value is None:
            continue
        out[s.name] = [v for part in value for v in part] if s.is_list else value
    return out


def given_method_options(args: argparse.Namespace) -> dict[str, Any]:
    from .methods import method_settings

    out = {}
    for s in method_settings():
        value = getattr(args, _dest(s), None)
        if value is not None:
            out[s.name] = [v for part in value for v in part] if s.is_list else value
    return out


def _settings(args: argparse.Namespace) -> tuple[Any, TrainConfig, EvalConfig]:
    """(job options, training settings, evaluation settings): defaults < preset < flags."""
    from .presets import Preset, load_preset

    options_cls = RunPlan if args.command == "run" else TrainOptions
    options = options_cls(**given(args, options_cls))
    preset = load_preset(options.preset) if options.preset else Preset("none")
    if isinstance(options, RunPlan):
        options = preset.run_plan(given(args, RunPlan))
    train = preset.train_config(given(args, TrainConfig, TRAIN_ONLY if args.command == "run" else ()))
    train.method_options = given_method_options(args)
    evaluate = preset.eval_config(given(args, EvalConfig)) if args.command == "run" else EvalConfig()
    for obj in (options, train, evaluate):
        obj.validate(cli=True)
    if args.command == "train":
        from .methods import create_method

        create_method(train.method, train.method_options, cli=True)  # e.g. --alpha 0, or --alpha with erm
    return options, train, evaluate


# ------------------------------------------------------------------------------ commands


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    options, cfg, _ = _settings(args)
    # --quiet turns off the progress bars; the one-line notes (data placement, resuming) stay.
    result = train(cfg, out_dir=options.out_dir, force=options.force, progress=not options.quiet,
                   sync_bn=options.sync_bn)
    print(f"test accuracy: {result.test_accuracy * 100:.2f}% ({result.seconds:.1f} s)")
    print(result.run_dir)
    return 0


def eval_config(args: argparse.Namespace) -> EvalConfig:
    cfg = EvalConfig(**given(args, EvalConfig)).validate(cli=True)
    _validate_eval_names(cfg)
    return cfg


def _validate_eval_names(cfg: EvalConfig) -> None:
    """Unknown suites/attacks/deformation grids/corruptions fail before any work starts."""
    from .evaluation import check_suites

    if cfg.suites is not None:
        check_suites(cfg.suites)
    if cfg.attacks:
        from .attacks import ATTACKS

        for name in cfg.attacks:
            ATTACKS.get(name)
    from .corruptions import CORRUPTIONS, deformation_grid

    deformation_grid(cfg.deformations)
    for name in cfg.corruptions or []:
        CORRUPTIONS.get(name)
    if cfg.ood:
        from .ood import check_sets

        check_sets(cfg.ood)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import distributed
    from .evaluation import check_run, evaluate_run
    from .inference import resolve_device
    from .progress import mode_for

    cfg = eval_config(args)
    options = EvaluateOptions(**given(args, EvaluateOptions)).validate(cli=True)
    for run_dir in args.run_dirs:  # every run must load before any evaluation is written
        check_run(run_dir)
    # under torchrun: one process per GPU (or gloo on the CPU), attacks sharded, rank 0 writes
    device = resolve_device(cfg.device)
    shard = distributed.setup(device)
    try:
        if shard.active:
            cfg.device = str(distributed.rank_device(device, shard))
        for run_dir in args.run_dirs:
            evaluation = evaluate_run(run_dir, config=cfg, fresh=options.fresh, shard=shard,
                                      progress=mode_for(options.quiet))
            if shard.main:
                _print_evaluation(Path(run_dir), evaluation, shard)
    finally:
        distributed.teardown(shard)
    return 0


def _print_evaluation(run_dir: Path, evaluation: Any, shard: Any) -> None:
    """The run's headline, then every attack at the headline radius (AutoAttack included)."""
    from .document import markdown_table
    from .report import headline, headline_eps, summarize

    summary = summarize(evaluation.metrics)
    head, notes = headline(summary, evaluation.threat)
    print(f"## {run_dir.name}\n")
    print(markdown_table(head))
    for note in notes:
        print(note)
    eps = headline_eps(summary, evaluation.threat)
    at = summary[(summary.suite == "adversarial") & (summary.metric == "accuracy")]
    at = at[(at.severity - (eps or 0)).abs() < 1e-9] if eps is not None else at.iloc[0:0]
    if len(at):
        shown = evaluation.threat.show(eps) if evaluation.threat is not None else f"{eps:.4g}"
        print(f"\nat ε = {shown}: " + ", ".join(f"{r.test} {r['mean'] * 100:.1f}%" for _, r in at.iterrows()))
    processes = f", {shard.world} processes" if shard.active else ""
    where = run_dir / "eval" / "metrics.csv"
    print(f"\nwrote {where} ({len(evaluation.metrics)} rows, {evaluation.seconds:.1f} s{processes})\n")


def cmd_report(args: argparse.Namespace) -> int:
    from .report import headline_text, write_report

    options = ReportOptions(**given(args, ReportOptions)).validate(cli=True)
    report = write_report(args.run_dirs, args.out, formats=options.formats, plots=not args.no_plots,
                          floor=options.accuracy_floor)
    print(headline_text(report))
    for name in options.formats:
        print(f"wrote {Path(args.out) / ('report.' + name)}")
    return 1 if options.strict and report.guard.fired else 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import compare, read_report
    from .storage import atomic_write_bytes

    if args.update_baseline:
        read_report(args.current)  # validates before anything is replaced
        target = Path(args.baseline).resolve()  # a symlinked baseline: update the file it points to
        atomic_write_bytes(target, Path(args.current).read_bytes())
        print(f"baseline {args.baseline} updated from {args.current}; review the diff like code")
        return 0
    result = compare(read_report(args.baseline), read_report(args.current), args.tolerance, args.tolerance_std)
    print(result.to_json() if args.json else result.markdown())
    return 1 if result.failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import plan_commands, run_benchmark

    plan, train, evaluate = _settings(args)
    _validate_eval_names(evaluate)
    if plan.plan:
        for line in plan_commands(plan, train, evaluate):
            print(line)
        return 0
    return run_benchmark(plan, train, evaluate)


def cmd_list(args: argparse.Namespace) -> int:
    from .attacks import ATTACKS
    from .corruptions import CORRUPTIONS, DEFORMATIONS
    from .data import dataset_names
    from .evaluation import check_suites
    from .methods import METHODS, method_sort_key
    from .models import ARCHS
    from .suites import SUITES

    check_suites(["clean"])
    if args.presets:
        from .presets import load_preset, preset_names

        for name in preset_names():
            print(f"{name}: {load_preset(name).description}")
        return 0
    for title, names in (
        ("datasets", dataset_names()), ("architectures", ARCHS.names()),
        ("methods", sorted(METHODS.names(), key=method_sort_key)), ("suites", SUITES.names()),
        ("attacks", ATTACKS.names()), ("deformations", DEFORMATIONS.names()), ("corruptions", CORRUPTIONS.names()),
    ):
        print(f"{title}: {', '.join(names)}")
    return 0


def cmd_show_corruptions(args: argparse.Namespace) -> int:
    from .corruptions import corruption_grid_png, grid_names
    from .data import load_dataset, to_float
    from .storage import ensure_writable_dir

    names = grid_names([v for part in args.corruptions for v in part] if args.corruptions is not None else None)
    data = load_dataset(args.dataset, args.data_root, False)  # every input checked before the folder exists
    out = ensure_writable_dir(args.out)
    path = out / f"corruptions_{data.name.replace(':', '_').replace('/', '_')[:120]}.png"
    corruption_grid_png(to_float(data.test_x[: args.images]), path, names=names)
    print(path)
    return 0


def cmd_show_boundaries(args: argparse.Namespace) -> int:
    from .boundaries import render_boundaries
    from .storage import ensure_writable_dir

    out = ensure_writable_dir(args.out)
    print(render_boundaries(out / f"boundaries_{args.problem}_s{args.seed}.png", problem=args.problem, seed=args.seed))
    return 0


def _positive_int(flag: str, limit: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise UserError(f"{flag} must be an integer, got {text[:40]!r}") from None
        if not 1 <= value <= limit:
            raise UserError(f"{flag} must be in 1..{limit}, got {value}")
        return value

    return parse


def _tolerance(flag: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"{flag} must be a number, got {text[:40]!r}") from None
        if not value >= 0 or value == float("inf"):
            raise UserError(f"{flag} must be a finite number >= 0, got {text[:40]}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="mmbench", description="Robustness benchmark for Manifold Mixup (ERM vs mixup vs manifold-mixup).")
    parser.add_argument("--version", action="version", version=f"mmbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train one model into a run directory")
    seen = add_settings(p, "training", [TrainConfig])
    add_method_settings(p, seen)
    add_settings(p, "job", [TrainOptions], seen=seen)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate run directories; writes metrics.csv into each")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    seen = add_settings(p, "evaluation", [EvalConfig])
    add_settings(p, "job", [EvaluateOptions], seen=seen)
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
    p.add_argument("--tolerance", type=_tolerance("--tolerance"), default=0.02,
                   help="a score fails only if it drops by more than this, in its own units (default 0.02 = 2 accuracy points)")
    p.add_argument("--tolerance-std", type=_tolerance("--tolerance-std"), default=4.0,
                   help="... and by more than K standard errors of the difference of the seed-means (default 4; 0: off)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--update-baseline", action="store_true", help="copy --current over --baseline")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="the main job: train every method over seeds, evaluate, report")
    seen = add_settings(p, "training", [TrainConfig], skip=TRAIN_ONLY)
    add_method_settings(p, seen)
    add_settings(p, "evaluation", [EvalConfig], seen=seen)
    add_settings(p, "plan", [RunPlan], seen=seen)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("list", help="registered datasets, architectures, methods, attacks, ...")
    p.add_argument("--presets", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show-corruptions", help="write a corruption x severity picture grid")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--images", type=_positive_int("--images", 64), default=1)
    p.add_argument("--corruptions", action="append", type=lambda t: [v.strip() for v in t.split(",") if v.strip()], default=None)
    p.set_defaults(func=cmd_show_corruptions)

    p = sub.add_parser("show-boundaries", help="the paper's Fig. 1: decision boundaries and 2-D hidden states, "
                                                "ERM vs mixup vs Manifold Mixup on a 2-D problem")
    p.add_argument("--out", required=True)
    p.add_argument("--problem", default="spiral", choices=["spiral", "moons"])
    p.add_argument("--seed", type=_seed, default=0)
    p.set_defaults(func=cmd_show_boundaries)
    return parser


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"--seed must be an integer, got {text[:40]!r}") from None
    if not 0 <= value < 2**32:
        raise UserError(f"--seed must be in 0..4294967295, got {text[:40]}")
    return value


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

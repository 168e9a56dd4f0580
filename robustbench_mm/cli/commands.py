"""The commands: each unpacks its flags into settings objects and calls the library."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from robustbench_mm.cli.flags import _settings, given
from robustbench_mm.core.errors import UserError
from robustbench_mm.settings import EvalConfig, EvaluateOptions, ReportOptions


def cmd_train(args: argparse.Namespace) -> int:
    from robustbench_mm.training.loop import train

    options, cfg, _ = _settings(args)
    from robustbench_mm.core.progress import mode_for

    # a bar per epoch on a terminal, a line per epoch in a log, neither with --quiet; the one-line
    # notes (data placement, resuming) stay
    result = train(
        cfg, out_dir=options.out_dir, force=options.force, progress=mode_for(options.quiet), sync_bn=options.sync_bn
    )
    print(f"test accuracy: {result.test_accuracy * 100:.2f}% ({result.seconds:.1f} s)")
    print(result.run_dir)
    return 0


def eval_config(args: argparse.Namespace) -> EvalConfig:
    cfg = EvalConfig(**given(args, EvalConfig)).validate(cli=True)
    _validate_eval_names(cfg)
    return cfg


def _validate_eval_names(cfg: EvalConfig) -> None:
    """Unknown suites/attacks/deformation grids/corruptions fail before any work starts."""
    from robustbench_mm.core.inference import resolve_device
    from robustbench_mm.evaluation.runner import check_suites

    if cfg.batch_size == 0 and resolve_device(cfg.device).type != "cuda":
        # 0 sizes batches from free GPU memory; elsewhere it would silently stand for a fixed size
        raise UserError(
            "--eval-batch-size 0 sizes batches from free GPU memory; without a GPU give a size (default 500)"
        )
    if cfg.suites is not None:
        check_suites(cfg.suites)
    if cfg.attacks:
        from robustbench_mm.attacks import ATTACKS

        for name in cfg.attacks:
            ATTACKS.get(name)
    from robustbench_mm.corruptions import CORRUPTIONS, deformation_grid

    deformation_grid(cfg.deformations)
    for name in cfg.corruptions or []:
        CORRUPTIONS.get(name)
    if cfg.ood:
        from robustbench_mm.evaluation.suites.ood import check_sets

        check_sets(cfg.ood)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from robustbench_mm.core import distributed
    from robustbench_mm.core.inference import resolve_device
    from robustbench_mm.core.progress import mode_for
    from robustbench_mm.evaluation.runner import check_run, evaluate_run

    cfg = eval_config(args)
    options = EvaluateOptions(**given(args, EvaluateOptions)).validate(cli=True)
    if _evaluate_model(args, cfg, mode_for(options.quiet)):
        return 0
    # every run must load before any evaluation is written; each model is read this once
    loaded = [check_run(run_dir) for run_dir in args.run_dirs]
    # under torchrun: one process per GPU (or gloo on the CPU), attacks sharded, rank 0 writes
    device = resolve_device(cfg.device)
    shard = distributed.setup(device)
    try:
        if shard.active:
            cfg.device = str(distributed.rank_device(device, shard))
        for run_dir in args.run_dirs:
            evaluation = evaluate_run(
                run_dir,
                config=cfg,
                fresh=options.fresh,
                shard=shard,
                progress=mode_for(options.quiet),
                loaded=loaded.pop(0),  # released once evaluated
            )
            if shard.main:
                _print_evaluation(Path(run_dir), evaluation, shard)
    finally:
        distributed.teardown(shard)
    return 0


def _evaluate_model(args: argparse.Namespace, cfg: EvalConfig, progress: str) -> bool:
    """``mmbench evaluate --model``: evaluate a saved or published model (False: none given)."""
    from robustbench_mm.core.errors import UserError
    from robustbench_mm.settings.external import ExternalModelOptions

    external = ExternalModelOptions(**given(args, ExternalModelOptions)).validate(cli=True)
    if external.model is None:
        if not args.run_dirs:
            raise UserError("evaluate needs run directories or --model")
        given_only = [f"--{k.replace('_', '-')}" for k in given(args, ExternalModelOptions)]
        if given_only:
            raise UserError(f"{given_only[0]} applies to --model only")
        return False
    if args.run_dirs:
        raise UserError("evaluate takes run directories or --model, not both")
    from robustbench_mm.core import distributed
    from robustbench_mm.evaluation.saved_models import evaluate_model

    path, evaluation = evaluate_model(external, cfg, progress)
    _print_evaluation(path, evaluation, distributed.Dist())
    return True


def _print_evaluation(run_dir: Path, evaluation: Any, shard: Any) -> None:
    """The run's headline, then every attack at the headline radius (AutoAttack included)."""
    from robustbench_mm.report import headline, headline_eps, summarize
    from robustbench_mm.report.markup import markdown_table

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
    from robustbench_mm.store.rundir import RunDir

    where = RunDir(run_dir).metrics_path
    print(f"\nwrote {where} ({len(evaluation.metrics)} rows, {evaluation.seconds:.1f} s{processes})\n")


def cmd_report(args: argparse.Namespace) -> int:
    from robustbench_mm.report import headline_text, write_report

    options = ReportOptions(**given(args, ReportOptions)).validate(cli=True)
    report = write_report(
        args.run_dirs, args.out, formats=options.formats, plots=not args.no_plots, floor=options.accuracy_floor
    )
    print(headline_text(report))
    for name in options.formats:
        print(f"wrote {Path(args.out) / ('report.' + name)}")
    return 1 if options.strict and report.guard.fired else 0


def cmd_check(args: argparse.Namespace) -> int:
    from robustbench_mm.core.files import atomic_write_bytes
    from robustbench_mm.report.gate import compare, read_report

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
    from robustbench_mm.app.pipeline import plan_commands, run_benchmark

    plan, train, evaluate = _settings(args)
    _validate_eval_names(evaluate)
    if plan.plan:
        for line in plan_commands(plan, train, evaluate):
            print(line)
        return 0
    return run_benchmark(plan, train, evaluate)


def cmd_status(args: argparse.Namespace) -> int:
    from robustbench_mm.app.status import print_status

    return print_status(args.runs_dir)


def cmd_list(args: argparse.Namespace) -> int:
    from robustbench_mm.attacks import ATTACKS
    from robustbench_mm.corruptions import CORRUPTIONS, DEFORMATIONS
    from robustbench_mm.data.datasets import dataset_names
    from robustbench_mm.evaluation.catalog import all_suites
    from robustbench_mm.methods import METHODS, method_sort_key
    from robustbench_mm.models import ARCHS

    if args.presets:
        from robustbench_mm.settings.presets import load_preset, preset_names

        for name in preset_names():
            print(f"{name}: {load_preset(name).description}")
        return 0
    for title, names in (
        ("datasets", dataset_names()),
        ("architectures", [*ARCHS.names(), "torchvision:NAME", "timm:NAME"]),
        ("methods", sorted(METHODS.names(), key=method_sort_key)),
        ("suites", sorted(s.name for s in all_suites())),
        ("attacks", ATTACKS.names()),
        ("deformations", DEFORMATIONS.names()),
        ("corruptions", CORRUPTIONS.names()),
    ):
        print(f"{title}: {', '.join(names)}")
    return 0


def cmd_show_corruptions(args: argparse.Namespace) -> int:
    from robustbench_mm.core.files import ensure_writable_dir
    from robustbench_mm.corruptions import corruption_grid_png, grid_names
    from robustbench_mm.data.datasets import load_dataset, to_float

    names = grid_names([v for part in args.corruptions for v in part] if args.corruptions is not None else None)
    data = load_dataset(args.dataset, args.data_root, False)  # every input checked before the folder exists
    out = ensure_writable_dir(args.out)
    path = out / f"corruptions_{data.name.replace(':', '_').replace('/', '_')[:120]}.png"
    corruption_grid_png(to_float(data.test_x[: args.images]), path, names=names)
    print(path)
    return 0


def cmd_show_boundaries(args: argparse.Namespace) -> int:
    from robustbench_mm.core.files import ensure_writable_dir
    from robustbench_mm.report.figures.boundaries import render_boundaries

    out = ensure_writable_dir(args.out)
    print(render_boundaries(out / f"boundaries_{args.problem}_s{args.seed}.png", problem=args.problem, seed=args.seed))
    return 0

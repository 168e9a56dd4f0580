"""Settings dataclasses <-> command-line flags: every flag comes from a declared setting."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip
from robustbench_mm.settings import EvalConfig, RunPlan, Setting, TrainConfig, TrainOptions, settings_of
from robustbench_mm.settings.fields import parse_number, parse_text

TRAIN_ONLY = ("method", "seed")  # run plans these per run (--methods, --seeds)
# a tolerance past this tolerates any drop of any score (accuracies are in [0, 1], ECE too); bounded so
# that the gate's arithmetic (tolerance x standard errors) stays finite
TOLERANCE_MAX = 1e6


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse quotes the offending value whole ("invalid choice: 'xxx...'"): clip it to one short line
        message = " ".join(message.split())
        message = message if len(message) <= 300 else message[:299] + "…"
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
    group.add_argument(
        *flags,
        dest=_dest(s),
        type=parse,
        default=None,
        action="append" if s.is_list else "store",
        metavar=metavar,
        help=help_text,
    )


def _per_dataset(s: Setting) -> str:
    """``(digits 30, mnist 20, ...)``: a per-dataset default, spelled out from the dataset cards."""
    from robustbench_mm.data.cards import CARDS

    if not s.spec.per_dataset:
        return ""
    values = [(name, getattr(card, s.name, None)) for name, card in CARDS.items()]
    shown = ", ".join(f"{name} {value if value is not None else 'by image size'}" for name, value in values)
    return f" (default per dataset: {shown})"


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def add_settings(
    parser: argparse.ArgumentParser,
    title: str,
    classes: Iterable[type],
    skip: Sequence[str] = (),
    seen: set[str] | None = None,
) -> set[str]:
    group = parser.add_argument_group(title)
    seen = set() if seen is None else seen
    for cls in classes:
        for s in settings_of(cls):
            if s.name not in skip:
                _add(group, s, seen)
    return seen


def add_method_settings(parser: argparse.ArgumentParser, seen: set[str]) -> None:
    from robustbench_mm.methods import method_settings, methods_with

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
    from robustbench_mm.methods import method_settings

    out = {}
    for s in method_settings():
        value = getattr(args, _dest(s), None)
        if value is not None:
            out[s.name] = [v for part in value for v in part] if s.is_list else value
    return out


def _settings(args: argparse.Namespace) -> tuple[Any, TrainConfig, EvalConfig]:
    """(job options, training settings, evaluation settings): defaults < preset < flags."""
    from robustbench_mm.settings.presets import Preset, load_preset

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
        from robustbench_mm.methods import create_method

        create_method(train.method, train.method_options, cli=True)  # e.g. --alpha 0, or --alpha with erm
    return options, train, evaluate


# ------------------------------------------------------------------------------ commands


def _positive_int(flag: str, limit: int):
    def parse(text: str) -> int:
        value = int(parse_number(text, int, flag))
        if not 1 <= value <= limit:
            raise UserError(f"{flag} must be in 1..{limit}, got {value}")
        return value

    return parse


def _tolerance(flag: str):
    def parse(text: str) -> float:
        value = parse_number(text, float, flag)
        if not 0 <= value <= TOLERANCE_MAX:
            raise UserError(f"{flag} must be a finite number >= 0 (at most {TOLERANCE_MAX:g}), got {clip(text, 40)}")
        return value

    return parse


def _seed(text: str) -> int:
    value = int(parse_number(text, int, "--seed"))
    if not 0 <= value < 2**32:
        raise UserError(f"--seed must be in 0..4294967295, got {clip(text, 40)}")
    return value

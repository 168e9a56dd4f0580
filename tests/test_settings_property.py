"""A property test generated from the declarations: every flag of every command, hostile values.

Nothing here names a setting. The cases come from the parser itself (every option of every
sub-command, so each settings dataclass field, each method's own settings and the few flags that
are no dataclass field) and from the settings declarations (kind, bounds, help). Each argv is
parsed and validated the way the command does before it starts any work (:data:`VALIDATE`, the
same calls as ``cli.commands``); nothing trains, evaluates or writes.

The rule: exit 0 or one ``UserError`` line (the CLI's exit 2), never another exception. On top of
it, what a hostile value may not do when it is accepted:

* a magnitude no setting means (1e308, 2**64, -1e308) accepted: the setting lacks a bound, and
  the arithmetic downstream overflows (``--pgd-step-size 1e308`` was a RuntimeError);
* a number in another script's digits (``٣``), with underscores or blanks accepted: numbers
  are ASCII digits;
* 0 accepted where the default is not 0 and the help does not say what 0 means (``--eps 0``,
  ``--at-eps 0`` were taken without a word).

The enumeration is exhaustive (every flag x every hostile value); Hypothesis then draws seeded
combinations of a few flags at once. A failing example is printed with its argv.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from robustbench_mm.cli import build_parser, commands, flags
from robustbench_mm.core.errors import UserError
from robustbench_mm.methods import method_settings, methods_with
from robustbench_mm.settings import (
    EvalConfig,
    EvaluateOptions,
    ReportOptions,
    RunPlan,
    TrainConfig,
    TrainOptions,
    settings_of,
)

POSITIONAL = {  # the least each command needs besides the flag under test (never read: nothing runs)
    "train": [],
    "evaluate": ["R"],
    "run": [],
    "report": ["--out", "o"],
    "check": ["--baseline", "b.csv", "--current", "c.csv"],
    "show-corruptions": ["--out", "o"],
    "show-boundaries": ["--out", "o"],
}


def _validate_evaluate(args) -> None:
    commands.eval_config(args)
    EvaluateOptions(**flags.given(args, EvaluateOptions)).validate(cli=True)


def _validate_run(args) -> None:
    from robustbench_mm.app.pipeline import planned_configs

    plan, train, evaluate = flags._settings(args)
    commands._validate_eval_names(evaluate)
    planned_configs(plan, train)  # each planned method's own settings (run_benchmark's first check)


VALIDATE = {  # what each command checks before it starts work (see cli.commands.cmd_*)
    "train": flags._settings,
    "evaluate": _validate_evaluate,
    "run": _validate_run,
    "report": lambda args: ReportOptions(**flags.given(args, ReportOptions)).validate(cli=True),
}

HUGE = ("1e308", "-1e308", str(2**64), str(-(2**64)))
FOREIGN_DIGITS = ("٣", "१०", "３", "1_0")
BLANKS = (" 1", "1 ")  # a list's items are stripped ("0.01, 0.03"); a single number is not
HOSTILE = ("0", "-1", "nan", "NaN", "inf", "-inf", "", ",", "1,,2", "x" * 5000, "9" * 5000, "0x10", "1e-400")
VALUES = HUGE + FOREIGN_DIGITS + BLANKS + HOSTILE


def validate(argv: list[str]) -> tuple[int, str]:
    """(exit status, message) of ``mmbench ARGV`` up to the point where work would start."""
    try:
        args = build_parser().parse_args(argv)
        VALIDATE.get(args.command, lambda args: None)(args)
    except UserError as exc:
        return 2, str(exc)
    return 0, ""


def _options() -> list[tuple[str, str, bool]]:
    """(command, flag, takes a value) for every option of every sub-command."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    out = []
    for command, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                out.append((command, action.option_strings[0], action.nargs != 0))
    return out


OPTIONS = _options()
DECLARED = {
    s.flag: s
    for cls in (TrainConfig, EvalConfig, RunPlan, TrainOptions, ReportOptions, EvaluateOptions)
    for s in settings_of(cls)
}
DECLARED.update({s.flag: s for s in method_settings()})


def _zero_means_something(flag: str) -> bool:
    """The help says what 0 means, or 0 is the default: then 0 accepted is no surprise."""
    s = DECLARED.get(flag)
    if s is None:
        return True
    default = s.default if not isinstance(s.default, list) else s.default[:1]
    return default in (0, [0]) or bool(re.search(r"\b0\s*[:=]|\(0\b|\b0 means", s.spec.help))


METHOD_FLAG = {"train": "--method", "run": "--methods"}


def _method_for(command: str, flag: str) -> list[str]:
    """A method's own setting is tried with a method that declares it (else it is refused for that)."""
    s = DECLARED.get(flag)
    if command not in METHOD_FLAG or s is None or s.name not in {m.name for m in method_settings()}:
        return []
    return [METHOD_FLAG[command], methods_with(s.name)[0]]


def judge(command: str, flag: str, value: str) -> str | None:
    """What is wrong with the outcome of ``command flag value`` (None: nothing)."""
    argv = [command, *POSITIONAL[command], *_method_for(command, flag), flag, value]
    try:
        status, message = validate(argv)
    except Exception as exc:  # noqa: BLE001 - any other exception is a traceback for the user
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    if status == 2:
        if "\n" in message or len(message) > 400:
            return f"the message is not one short line ({len(message)} characters)"
        return None
    kind = getattr(DECLARED.get(flag), "kind", None)
    if kind not in (int, float) and flag not in ("--tolerance", "--tolerance-std", "--images", "--seed"):
        return None  # text: any string is a value (a path, a name checked later against its registry)
    if value in HUGE:
        return "a magnitude no setting means was accepted (the setting has no bound)"
    if value in FOREIGN_DIGITS or (value in BLANKS and not getattr(DECLARED.get(flag), "is_list", False)):
        return "a number not written in ASCII digits was accepted"
    if value == "0" and not _zero_means_something(flag):
        return "0 was accepted without the help saying what 0 means"
    return None


@pytest.mark.parametrize("command,flag", [(c, f) for c, f, takes in OPTIONS if takes])
def test_every_flag_survives_hostile_values(command, flag):
    failures = [(value[:20], why) for value in VALUES if (why := judge(command, flag, value))]
    assert not failures, f"mmbench {command} {flag} ...: {failures}"


def test_every_numeric_setting_declares_a_finite_range():
    """The declarations the rule relies on: a low and a high bound, inside what int64/float32 hold."""
    missing = []
    for flag, s in DECLARED.items():
        if s.kind in (int, float):
            low, high = s.spec.low, s.spec.high
            if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
                missing.append(flag)
            elif max(abs(low), abs(high)) > 2**63 - 1 or (s.kind is float and max(abs(low), abs(high)) > 3e38):
                missing.append(flag)
    assert not missing, f"numeric settings without a finite range: {missing}"


def test_the_enumeration_covers_every_declared_setting():
    covered = {flag for _, flag, _ in OPTIONS}
    declared = {flag for flag, s in DECLARED.items() if s.spec.cli}
    assert declared <= covered, declared - covered
    assert len(OPTIONS) > 60  # every command's options, not a hand list


_COMMANDS = sorted(VALIDATE)
_BY_COMMAND = {c: [f for cc, f, takes in OPTIONS if cc == c and takes] for c in _COMMANDS}
_VALID = ("1", "0.5", "2", "0.01,0.03", "cpu", "clean")


@seed(20261204)
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_combinations_of_flags_give_exit_0_or_one_line(data):
    command = data.draw(st.sampled_from(_COMMANDS), label="command")
    chosen = data.draw(st.lists(st.sampled_from(_BY_COMMAND[command]), min_size=1, max_size=3, unique=True))
    argv = [command, *POSITIONAL[command]]
    for flag in chosen:
        argv += [flag, data.draw(st.sampled_from(VALUES + _VALID), label=flag)]
    try:
        status, message = validate(argv)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"mmbench {' '.join(a[:30] for a in argv)}: {type(exc).__name__}: {exc}") from None
    assert status in (0, 2) and "\n" not in message and len(message) <= 400, argv


PY_HOSTILE = (
    0,
    -1,
    float("nan"),
    float("inf"),
    -float("inf"),
    1e308,
    2**64,
    10**400,
    True,
    "",
    "٣",
    "x" * 5000,
    [],
    [[1]],
    [1] * 2000,
    None,
    b"1",
    {"a": 1},
)


@pytest.mark.parametrize("flag", sorted(DECLARED))
def test_every_setting_takes_hostile_python_values_in_one_line(flag):
    """The same rule for config.toml, presets and the Python API (``coerce``, what ``from_table`` and
    ``validate`` call): a value, or one short UserError line."""
    from robustbench_mm.settings.fields import coerce

    s = DECLARED[flag]
    for value in PY_HOSTILE:
        try:
            out = coerce(s, value, cli=False)
        except UserError as exc:
            assert "\n" not in str(exc) and len(str(exc)) <= 400, (flag, str(exc)[:100])
            continue
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"{flag} = {str(value)[:30]}: {type(exc).__name__}: {str(exc)[:200]}") from None
        if s.kind in (int, float):
            for item in (out or []) if s.is_list else [out]:
                assert item is None or math.isfinite(item), (flag, value)

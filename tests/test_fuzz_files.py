"""Fuzz the files the bench reads: mutated copies of a real evaluated run, then ``mmbench report``
(or ``check``, or ``evaluate``): exit 0, or exit 2 with one line on stderr (and no warning); never
a traceback, and nothing on disk changed.

Exit 0 is not enough on its own: a command that accepts a file must only accept one that keeps
the files' documented contract, stated here independently of the code under test (:func:`_broken`:
values inside their metric's range, whole counts, one-dimensional per-example arrays of the run's
test examples, the run's own dataset and method); and the gate must never pass a current table
whose accuracies all fell to 0.

The mutations are drawn by Hypothesis, derandomized (the same examples every run) and bounded
(``FUZZ_EXAMPLES`` examples); a failure prints the mutation that broke the contract.
``FUZZ_TARGET=metrics.csv`` (a comma list) fuzzes only those files. The run is made once per module.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from test_bad_input import run_cli, snapshot

from robustbench_mm.core.metrics import NEITHER, is_known, metric
from robustbench_mm.evaluation.runner import evaluate_run
from robustbench_mm.settings import EvalConfig

ROOT = Path(__file__).resolve().parents[1]
R = "runs/digits-cnn-erm-s0"
EVAL = f"{R}/eval"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
TARGETS = [t for t in os.environ.get("FUZZ_TARGET", "").split(",") if t]
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # seeded: the same mutations on every run, in CI and here
    deadline=None,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

# values a hostile hand puts in a cell, a TOML value or a metadata field
HOSTILE = [
    "",
    "0",
    "-1",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "-1e308",
    str(2**64),
    "5",
    "0.5",
    "٣",
    "x" * 5000,
    "true",
    "evil",
    "erm",
    "mixup",
    "mnist",
    "'; rm -rf /",
    "\x1b[31m",
]
TOML_VALUES = [
    "-1",
    "0",
    "1e308",
    "nan",
    "inf",
    '"x"',
    '"' + "x" * 5000 + '"',
    "[1, 2]",
    "[[[[[[[[[[[[1]]]]]]]]]]]]",
    "{ a = 1 }",
    "true",
    str(2**63 - 1),
    "[]",
    '"٣"',
]


@pytest.fixture(scope="module")
def template(tmp_path_factory, trained_runs, digits) -> Path:
    from robustbench_mm.report import write_report

    root = tmp_path_factory.mktemp("fuzz_template")
    run = root / R
    shutil.copytree(trained_runs["erm"], run)
    evaluate_run(run, config=EvalConfig(suites=["clean", "calibration", "representation"]), data=digits)
    write_report([run], root / "rep", plots=False)
    return root


def _fresh(template: Path, tmp_path: Path, counter: list[int]) -> Path:
    counter[0] += 1
    work = tmp_path / f"ws{counter[0]}"
    shutil.copytree(template, work, symlinks=True)
    return work


def _run(work: Path, argv: list[str], capsys) -> tuple[int, str]:
    """Run ``argv`` in ``work``: no traceback, exit 0 or one line with exit 2, nothing on disk changed."""
    before = snapshot(work)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with warnings.catch_warnings(record=True) as caught:  # a user would see each one on stderr
            warnings.simplefilter("always")
            code, out, err = run_cli(argv, work, capsys, False)
    finally:
        os.chdir(cwd)
    err += "".join(f"warning: {w.message}\n" for w in caught)
    note(f"exit {code}; stderr: {err[-600:]!r}")
    assert "Traceback" not in err and "Traceback" not in out, err
    assert code in (0, 1, 2), (code, err[-2000:])
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("mmbench: error:"), err[-2000:]
    after = snapshot(work)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"files changed: {changed}"
    return code, err


def _broken(work: Path) -> str | None:
    """What in the run's (mutated) files breaks their documented contract, or None.

    Stated independently of the code under test: it reads the files with pandas, numpy and
    tomllib only, and asks nothing of robustbench_mm but the metric registry's ranges."""
    import tomllib

    try:
        config = tomllib.loads((work / R / "config.toml").read_text())["train"]
        record = tomllib.loads((work / EVAL / "evaluation.toml").read_text())
        metrics = pd.read_csv(work / EVAL / "metrics.csv")
        with np.load(work / EVAL / "per_example.npz") as archive:
            arrays = {k: archive[k] for k in archive.files}
    except Exception as exc:  # noqa: BLE001 - unreadable is broken
        return f"unreadable: {type(exc).__name__}"
    subset_n = record.get("subset", {}).get("n")  # absent in older evaluations: then the rows' n count
    if subset_n is not None and (not isinstance(subset_n, int) or subset_n < 1):
        return "evaluation.toml [subset] n is not a count"
    for column in ("dataset", "arch", "method", "seed"):
        if column not in config:  # a setting left out takes its default: the code's to resolve
            continue
        if column not in metrics or set(metrics[column].astype(str)) != {str(config[column])}:
            return f"metrics.csv {column} is not config.toml's"
    if not {"suite", "metric"} <= set(metrics.columns):
        return "metrics.csv lacks columns"
    try:
        n = metrics["n"].astype(float)
        values = metrics["value"].astype(float)
        severities = metrics["severity"].astype(float)
    except (ValueError, TypeError, KeyError):
        return "metrics.csv n/value/severity are not numbers"
    if n.isna().any() or severities.isna().any():
        return "metrics.csv has a row without n or severity"
    if not ((n >= 0) & (n == n.round())).all():
        return "metrics.csv n is not a whole count"
    for name, value, count in zip(metrics["metric"], values, n, strict=True):
        if not is_known(str(name)):
            return f"metrics.csv names an unknown metric {name}"
        info = metric(str(name))
        if not info.valid(value) or (math.isnan(value) and count > 0 and info.direction != NEITHER):
            return f"metrics.csv {name} = {value} is impossible"
    rows_n = {
        f"{a}|{b}|{c:g}": int(d) for a, b, c, d in zip(metrics["suite"], metrics["test"], severities, n, strict=True)
    }
    for key, array in arrays.items():
        wanted = {subset_n, rows_n.get(key)} - {None}
        if array.ndim != 1 or {len(array)} | wanted != {len(array)} or array.dtype.kind not in "bf":
            return f"per_example.npz {key} is not {wanted} results"
        if array.dtype.kind == "f" and not ((array >= 0) & (array <= 1)).all():
            return f"per_example.npz {key} holds values outside [0, 1]"
    if "clean|clean|0" in rows_n and "clean|clean|0" not in arrays:
        return "per_example.npz lacks the clean results"
    return None


def _report_argv(work: Path) -> list[str]:
    return ["report", R, "--out", str(work.parent / (work.name + "-out")), "--no-plots"]


# ------------------------------------------------------------------------------ mutations


NUMBERS = ["inf", "-1", "1e308", "nan", "", "5", "-inf", "0", "٣", "x"]  # what a number column may be given


def _mutate_csv(path: Path, data: st.DataObject, numeric: tuple[str, ...] = ()) -> None:
    """One hostile edit of a CSV: a cell, a whole column (mostly the ``numeric`` ones, given
    number-like values, when named), a dropped column, a repeated row, a cut or an empty file."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    kinds = ["column", "cell"] if numeric else []
    kind = data.draw(st.sampled_from([*kinds, "cell", "column", "drop-column", "duplicate", "truncate", "empty"]))
    note(f"{path.name}: {kind}")
    if kind == "truncate":
        raw = path.read_bytes()
        path.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
        return
    if kind == "empty":
        path.write_text("")
        return
    focus = [c for c in numeric if c in df.columns]
    if focus and kind in ("cell", "column") and data.draw(st.booleans()):
        column, value = data.draw(st.sampled_from(focus)), data.draw(st.sampled_from(NUMBERS))
    else:
        column, value = data.draw(st.sampled_from(list(df.columns))), data.draw(st.sampled_from(HOSTILE))
    note(f"column {column!r} <- {value[:40]!r}")
    if kind == "cell":
        df.loc[df.index[data.draw(st.integers(0, len(df) - 1))], column] = value
    elif kind == "column":
        df[column] = value
    elif kind == "drop-column":
        df = df.drop(columns=[column])
    else:
        df = pd.concat([df, df.iloc[:1]], ignore_index=True)
    path.write_text(df.to_csv(index=False))


def _mutate_npz(path: Path, data: st.DataObject) -> None:
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    key = data.draw(st.sampled_from(sorted(arrays)))
    n = len(arrays[key])
    replacements = {
        "scalar": np.float64(0.5),
        "2-d": np.ones((2, n), bool),
        "empty": np.zeros(0, bool),
        "short": np.ones(max(n - 1, 1), bool),
        "long": np.ones(n + 1, bool),
        "ints": np.arange(n),
        "floats-out-of-range": np.full(n, 7.5),
        "nan": np.full(n, np.nan),
        "text": np.array(["a"] * n),
    }
    kind = data.draw(st.sampled_from([*replacements, "drop-key", "no-keys", "rename"]))
    note(f"{path.name}[{key}]: {kind}")
    if kind == "drop-key":
        del arrays[key]
    elif kind == "no-keys":
        arrays.clear()
    elif kind == "rename":
        arrays[data.draw(st.sampled_from(["a|b", "a|b|c|d", "x|y|nan", "clean|clean|inf", "|||", "clean|clean|٣"]))] = (
            arrays.pop(key)
        )
    else:
        arrays[key] = replacements[kind]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def _mutate_toml(path: Path, data: st.DataObject) -> None:
    lines = path.read_text().splitlines()
    assignments = [i for i, line in enumerate(lines) if " = " in line]
    kind = data.draw(st.sampled_from(["value", "drop-line", "deep", "duplicate-table", "garbage"]))
    index = data.draw(st.sampled_from(assignments))
    note(f"{path.name} line {lines[index][:60]!r}: {kind}")
    key = lines[index].split(" = ")[0]
    if kind == "value":
        value = data.draw(st.sampled_from(TOML_VALUES))
        note(f"<- {value[:60]}")
        lines[index] = f"{key} = {value}"
    elif kind == "drop-line":
        del lines[index]
    elif kind == "deep":
        lines[index] = f"{key} = {'[' * 5000}{']' * 5000}"
    elif kind == "duplicate-table":
        lines.append(next(line for line in lines if line.startswith("[")))
    else:
        lines[index] = "\x00\xff = = ["
    path.write_text("\n".join(lines) + "\n")


def _mutate_model(path: Path, data: st.DataObject) -> None:
    payload = torch.load(path, weights_only=True)
    field = data.draw(
        st.sampled_from(["method", "dataset", "arch", "seed", "classes", "mean", "state_dict", "format", "sparse"])
    )
    value = data.draw(
        st.sampled_from(["evil", "mixup", "mnist", -1, 2**64, math.nan, [], ["0"] * 3, None, "x" * 5000, 1e308])
    )
    note(f"model.pt {field} <- {str(value)[:60]!r}")
    if field == "sparse":
        key = next(iter(payload["state_dict"]))
        payload["state_dict"][key] = payload["state_dict"][key].to_sparse()
    elif field == "state_dict" and isinstance(value, float):
        key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
        payload["state_dict"][key] = torch.full_like(
            payload["state_dict"][key], value if math.isnan(value) else math.inf
        )
    else:
        payload[field] = value
    torch.save(payload, path)


# ------------------------------------------------------------------------------ the properties


EVAL_FILES = ["metrics.csv", "reliability.csv", "spectra.csv", "per_example.npz", "evaluation.toml"]


@FUZZ
@given(data=st.data())
def test_fuzz_run_files_then_report(template, tmp_path, capsys, data):
    counter = getattr(test_fuzz_run_files_then_report, "_counter", [0])
    test_fuzz_run_files_then_report._counter = counter
    work = _fresh(template, tmp_path, counter)
    target = data.draw(st.sampled_from(TARGETS or [*EVAL_FILES, "config.toml"]))
    path = work / (R if target == "config.toml" else EVAL) / target
    if target.endswith(".csv"):
        _mutate_csv(path, data)
    elif target.endswith(".npz"):
        _mutate_npz(path, data)
    else:
        _mutate_toml(path, data)
    code, _ = _run(work, _report_argv(work), capsys)
    if code == 0:
        problem = _broken(work)
        assert problem is None, f"report accepted a broken file: {problem}"
    assert code != 1
    shutil.rmtree(work)


@pytest.fixture(scope="module")
def gate_tables(tmp_path_factory) -> Path:
    """The committed digits baseline (three seeds, so spreads count), without its calibration
    rows (most of its 6,000), and a current table of it whose accuracies all fell to 0."""
    root = tmp_path_factory.mktemp("gate_tables")
    baseline = pd.read_csv(ROOT / "results" / "report.csv")
    baseline = baseline[baseline["suite"] != "calibration"]
    baseline.to_csv(root / "baseline.csv", index=False)
    baseline.loc[baseline["metric"] == "accuracy", "mean"] = 0.0
    baseline.to_csv(root / "current.csv", index=False)
    return root


@settings(FUZZ, max_examples=max(EXAMPLES, 5))
@given(data=st.data())
def test_fuzz_report_csv_then_check(gate_tables, tmp_path, capsys, data):
    """A current table whose accuracies all fell to 0, then one hostile edit to either table: the
    gate fails (1) or refuses the input (2), never passes."""
    counter = getattr(test_fuzz_report_csv_then_check, "_counter", [0])
    test_fuzz_report_csv_then_check._counter = counter
    work = _fresh(gate_tables, tmp_path, counter)
    side = data.draw(st.sampled_from(["current.csv", "baseline.csv"]))
    _mutate_csv(work / side, data, numeric=("std", "mean", "seeds", "n", "severity"))
    code, err = _run(work, ["check", "--baseline", "baseline.csv", "--current", "current.csv"], capsys)
    if code == 0:
        assert _nothing_to_lose(work), "the gate passed a table whose accuracies all fell to 0"
    shutil.rmtree(work)


def _nothing_to_lose(work: Path) -> bool:
    """The mutated baseline itself holds no accuracy above 0 (then 0 is no regression)."""
    try:
        baseline = pd.read_csv(work / "baseline.csv")
        means = baseline.loc[baseline["metric"] == "accuracy", "mean"].astype(float)
    except (ValueError, KeyError, TypeError):
        return False
    return bool(means.empty or (means <= 0).all())  # NaN is not 0: a baseline of NaN is broken, not empty


@settings(FUZZ, max_examples=max(EXAMPLES // 6, 4))
@given(data=st.data())
def test_fuzz_model_pt_then_evaluate(template, tmp_path, capsys, data):
    counter = getattr(test_fuzz_model_pt_then_evaluate, "_counter", [0])
    test_fuzz_model_pt_then_evaluate._counter = counter
    work = _fresh(template, tmp_path, counter)
    _mutate_model(work / R / "model.pt", data)
    code, _ = _run(work, ["evaluate", R, "--suite", "clean"], capsys)
    assert code == 2, "evaluate accepted a damaged model.pt"  # every mutation above is one
    shutil.rmtree(work)

"""The files the bench reads (issue 25): one schema each, identity by content, links kept inside.

Regression tests for the hostile tester's rows 1, 2, 3, 4, 6, 9, 10, 11, 14, 16, 18 and 19, in
tests/test_bad_input.py's contract: exit status 2, one line on stderr, no traceback, nothing on
disk changed (``check_bad_input``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_bad_input import check_bad_input

from robustbench_mm.cli import main
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.results import COLUMNS
from robustbench_mm.evaluation.runner import evaluate_run
from robustbench_mm.settings import EvalConfig
from robustbench_mm.store.checkpoint import read_model_file, validate_checkpoint
from robustbench_mm.store.rundir import RunDir

R = "runs/digits-cnn-erm-s0"
EVAL = f"{R}/eval"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, trained_runs, digits) -> Path:
    """A template workspace: the erm run evaluated with clean, calibration and representation
    (metrics, per-example results, reliability bins, spectra), and a report of it."""
    from robustbench_mm.report import write_report

    root = tmp_path_factory.mktemp("files_template")
    run = root / R
    shutil.copytree(trained_runs["erm"], run)
    evaluate_run(run, config=EvalConfig(suites=["clean", "calibration", "representation"]), data=digits)
    write_report([run], root / "rep", plots=False)
    return root


@pytest.fixture
def ws(evaluated, tmp_path, monkeypatch) -> Path:
    work = tmp_path / "ws"
    shutil.copytree(evaluated, work, symlinks=True)  # as cp -a: the eval link stays a link
    monkeypatch.chdir(work)
    return work


def _report(ws: Path) -> list[str]:
    return ["report", R, "--out", str(ws.parent / "out"), "--no-plots"]


def _edit_metrics(ws: Path, column: str, value, where=None) -> None:
    path = ws / EVAL / "metrics.csv"
    df = pd.read_csv(path)
    df[column] = df[column].astype(object)
    rows = df.index[:1] if where is None else df.index[where(df)]
    df.loc[rows, column] = value
    path.write_text(df.to_csv(index=False))


# ------------------------------------------------------------------------------ row 1: identity by content


def test_a_copied_run_keeps_its_evaluation_when_evaluated_again(ws, digits):
    """Row 1: a run copied to another folder is the same model (same sha256): a new evaluation
    merges into the stored one instead of dropping its calibration rows and reliability bins."""
    copy = ws / "x" / "R"
    shutil.copytree(ws / R, copy, symlinks=True)
    before = pd.read_csv(copy / "eval" / "metrics.csv")
    evaluate_run(copy, config=EvalConfig(suites=["clean"]), data=digits)
    after = pd.read_csv(copy / "eval" / "metrics.csv")
    assert len(after) == len(before)
    assert set(after["suite"]) == set(before["suite"]) >= {"calibration", "representation"}
    assert set(after["run"]) == {"R"}  # every row under the folder's current name
    assert (copy / "eval" / "reliability.csv").exists() and (copy / "eval" / "spectra.csv").exists()
    assert set(pd.read_csv(copy / "eval" / "reliability.csv")["run"]) == {"R"}


def test_evaluate_reads_each_model_once(ws, monkeypatch, capsys):
    """``mmbench evaluate A B`` loads every run before it writes to any, and evaluates the
    models it loaded then: each model.pt is read once per command."""
    from robustbench_mm.store import checkpoint

    copy = ws / "x" / "R"
    shutil.copytree(ws / R, copy, symlinks=True)
    reads: list[Path] = []
    read = checkpoint.read_model_file
    monkeypatch.setattr(checkpoint, "read_model_file", lambda path: reads.append(Path(path).resolve()) or read(path))
    assert main(["evaluate", R, str(copy), "--suite", "clean", "--quiet"]) == 0
    assert reads == [(ws / R / "model.pt").resolve(), (copy / "model.pt").resolve()]
    assert "wrote" in capsys.readouterr().out


def test_an_evaluation_of_another_model_is_dropped_not_merged(ws, digits):
    """The other side of row 1: the same folder name with another model.pt (by content) starts over."""
    payload = torch.load(ws / R / "model.pt", weights_only=True)
    payload["test_accuracy"] = 0.5  # another file, another sha256
    torch.save(payload, ws / R / "model.pt")
    evaluate_run(ws / R, config=EvalConfig(suites=["clean"]), data=digits)
    assert set(pd.read_csv(ws / EVAL / "metrics.csv")["suite"]) == {"clean"}


def test_format_1_files_are_read_as_before(ws, digits):
    """model.pt of format 1 and checkpoint.pt of earlier versions also carried the training
    settings; such files still load, and the settings read are config.toml's (the holdout the
    temperature is fitted on included)."""
    cfg = RunDir(ws / R).read_config()
    before = pd.read_csv(ws / EVAL / "metrics.csv")
    payload = torch.load(ws / R / "model.pt", weights_only=True)
    assert payload["format"] == "robustbench_mm.model/2" and "holdout_fraction" not in payload
    payload.update(
        format="robustbench_mm.model/1",
        holdout_fraction=cfg.holdout_fraction,
        holdout_seed=cfg.seed,
        epoch=cfg.recipe.epochs,
        alpha=None,
        mix_layers=None,
        method_options="{}",
    )
    torch.save(payload, ws / R / "model.pt")
    after = evaluate_run(ws / R, config=EvalConfig(suites=["clean", "calibration"]), data=digits).metrics
    assert set(after["suite"]) == {"clean", "calibration"}
    keys = ["suite", "test", "severity", "metric"]
    old = before[before["suite"].isin(["clean", "calibration"])].sort_values(keys).reset_index(drop=True)
    new = after.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(new[COLUMNS], old[COLUMNS], check_dtype=False)
    state = torch.load(ws / R / "checkpoint.pt", weights_only=True)
    assert "config" not in state
    state["config"] = json.dumps({"epochs": cfg.recipe.epochs})
    validate_checkpoint(state, ws / R / "checkpoint.pt", cfg.recipe.epochs)
    with pytest.raises(UserError, match="config must be a dict"):
        validate_checkpoint({**state, "config": "[1]"}, ws / R / "checkpoint.pt", cfg.recipe.epochs)


def test_report_refuses_an_evaluation_of_another_model(ws, capsys):
    payload = torch.load(ws / R / "model.pt", weights_only=True)
    payload["test_accuracy"] = 0.5
    torch.save(payload, ws / R / "model.pt")
    check_bad_input(ws, capsys, _report(ws), "evaluation.toml", "sha256", "evaluate the run again")


# ------------------------------------------------------------------------------ rows 2, 3, 4, 19: the gate


def _gate_case(ws: Path, edit) -> list[str]:
    table = pd.read_csv(ws / "rep" / "report.csv")
    edit(table)
    table.to_csv(ws / "current.csv", index=False)
    return ["check", "--baseline", "rep/report.csv", "--current", "current.csv"]


@pytest.mark.parametrize("std", [math.inf, 1e6, -1.0, 1e308])
def test_gate_refuses_an_impossible_spread(ws, capsys, std):
    """Rows 2 and 4: every accuracy 0 with an impossible std used to pass (or overflow)."""

    def edit(t):
        t.loc[t["metric"] == "accuracy", "mean"] = 0.0
        t["std"] = std

    line = check_bad_input(ws, capsys, _gate_case(ws, edit), "current.csv", "std of accuracy", f"= {std:g}")
    assert "np.float64" not in line


def test_gate_refuses_a_baseline_of_nan_means(ws, capsys):
    """Row 3: a baseline whose mean column is all NaN gated nothing."""
    table = pd.read_csv(ws / "rep" / "report.csv")
    table["mean"] = math.nan
    table.to_csv(ws / "baseline.csv", index=False)
    check_bad_input(
        ws, capsys, ["check", "--baseline", "baseline.csv", "--current", "rep/report.csv"], "baseline.csv", "= nan"
    )


def test_gate_messages_show_plain_numbers(ws, capsys):
    """Row 19: '= 5', never 'np.float64(5.0)'."""

    def edit(t):
        t.loc[t.index[0], "mean"] = 5.0

    line = check_bad_input(ws, capsys, _gate_case(ws, edit), "= 5 is outside its range")
    assert "np.float64" not in line


@pytest.mark.parametrize("column, value", [("n", -1), ("seeds", 0), ("seeds", 1.5)])
def test_gate_refuses_impossible_counts(ws, capsys, column, value):
    def edit(t):
        t[column] = value

    check_bad_input(ws, capsys, _gate_case(ws, edit), f"{column} = {value:g}", "whole number")


def test_gate_spreads_never_overflow():
    from robustbench_mm.report.gate import _standard_error

    row = pd.Series({"std_base": 1e200, "seeds_base": 3, "std_cur": 1e200, "seeds_cur": 3})
    assert math.isclose(_standard_error(row), 1e200 * math.sqrt(2 / 3))


# ------------------------------------------------------------------------------ row 6: nesting depth


@pytest.mark.parametrize("file, table", [("config.toml", "train"), ("eval/evaluation.toml", "history")])
def test_toml_nested_5000_deep_is_one_line(ws, capsys, file, table):
    path = ws / R / file
    text = path.read_text().replace(f"[{table}]\n", f"[{table}]\nx = {'[' * 5000}{']' * 5000}\n")
    path.write_text(text)
    check_bad_input(ws, capsys, _report(ws), file.split("/")[-1], "nested too deep")


def test_toml_nested_a_little_too_deep_is_one_line(ws, capsys):
    path = ws / R / "config.toml"
    path.write_text(path.read_text().replace("[run]\n", f"[run]\nx = {'[' * 20}{']' * 20}\n"))
    check_bad_input(ws, capsys, _report(ws), "config.toml: run.x is nested too deep")


# ------------------------------------------------------------------------------ row 9: per_example.npz


def _rewrite_npz(ws: Path, change) -> None:
    path = ws / EVAL / "per_example.npz"
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    change(arrays)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


PER_EXAMPLE_CASES = {
    "float": (lambda a: a.update({"clean|clean|0": np.float64(0.5)}), "must be a non-empty 1-D array"),
    "2-d": (lambda a: a.update({"clean|clean|0": np.ones((2, 180), bool)}), "must be a non-empty 1-D array"),
    "empty": (lambda a: a.update({"clean|clean|0": np.zeros(0, bool)}), "must be a non-empty 1-D array"),
    "short": (lambda a: a.update({"clean|clean|0": np.ones(7, bool)}), "has 7 entries for 360"),
    "no-keys": (lambda a: a.clear(), "clean|clean|0 is missing"),
    "ints": (lambda a: a.update({"clean|clean|0": np.ones(360, np.int64)}), "true/false values"),
    "probability-2": (lambda a: a.update({"calibration|confidence|0": np.full(360, 2.0)}), "probabilities in [0, 1]"),
    "stray": (lambda a: a.update({"nowhere|x|1": np.ones(360, bool)}), "belongs to no row"),
    "negative-distance": (lambda a: a.update({"adversarial|eps-star|0": np.full(360, -0.1)}), "distances >= 0"),
    "nan-distance": (lambda a: a.update({"adversarial|fmn-linf|0": np.full(360, np.nan)}), "distances >= 0"),
    "nan-severity": (lambda a: a.update({"clean|clean|nan": np.ones(360, bool)}), "has no severity"),
}


def test_distances_per_example_may_exceed_one_or_be_infinite():
    """The minimum-norm attacks' distances and ε* (core.results.DISTANCE_ARRAYS) are stored as
    floats >= 0 with +inf where nothing was found: an L2 distance above 1, or an example FMN could
    not break, must publish (a Noisy Feature Mixup model's evaluation once failed on it)."""
    from robustbench_mm.attacks.eps_star import STAR_TEST
    from robustbench_mm.attacks.minimum_norm import MINIMUM_NORM
    from robustbench_mm.core.results import DISTANCE_ARRAYS
    from robustbench_mm.store.schemas import check_per_example

    assert {*STAR_TEST.values(), *MINIMUM_NORM} == DISTANCE_ARRAYS  # every distance array the suite stores

    metrics = pd.DataFrame(
        [
            {"suite": "adversarial", "test": "curve", "severity": 0.0, "n": 4},
            {"suite": "clean", "test": "clean", "severity": 0.0, "n": 4},
        ]
    )
    arrays = {("clean", "clean", 0.0): np.ones(4, bool)}
    arrays |= {("adversarial", test, 0.0): np.array([0.0, 0.3, 2.5, np.inf], np.float32) for test in DISTANCE_ARRAYS}
    check_per_example(arrays, Path("per_example.npz"), metrics, 4)  # no error
    arrays[("adversarial", "confidence", 0.0)] = np.array([0.0, 0.3, 2.5, np.inf], np.float32)
    with pytest.raises(UserError, match="probabilities"):
        check_per_example(arrays, Path("per_example.npz"), metrics, 4)


@pytest.mark.parametrize("name", sorted(PER_EXAMPLE_CASES))
def test_per_example_arrays_are_checked(ws, capsys, name):
    change, phrase = PER_EXAMPLE_CASES[name]
    _rewrite_npz(ws, change)
    check_bad_input(ws, capsys, _report(ws), "per_example.npz", phrase)


# ------------------------------------------------------------------------------ row 10: metrics.csv


@pytest.mark.parametrize(
    "column, value, phrase",
    [
        ("value", 5.0, "value 5 of accuracy"),
        ("value", math.inf, "value inf of accuracy"),
        ("value", math.nan, "value nan of accuracy"),
        ("n", -1, "column 'n' must hold whole numbers"),
        ("n", 2.5, "column 'n' must hold whole numbers"),
        ("seed", 2**40, "column 'seed'"),
        ("metric", "accuracyy", "unknown metric"),
    ],
)
def test_metrics_values_are_checked_against_the_registry(ws, capsys, column, value, phrase):
    _edit_metrics(ws, column, value, where=lambda df: df["metric"] == "accuracy")
    check_bad_input(ws, capsys, _report(ws), "metrics.csv", phrase)


@pytest.mark.parametrize(
    "column, value, phrase",
    [
        ("dataset", "mnist", "column 'dataset' says mnist but the run's config.toml says digits"),
        ("method", "mixup", "column 'method' says mixup but the run's config.toml says erm"),
        ("method", "evil", "unknown method"),
        ("arch", "mlp", "column 'arch' says mlp"),
    ],
)
def test_metrics_agree_with_the_run(ws, capsys, column, value, phrase):
    _edit_metrics(ws, column, value, where=lambda df: df.index >= 0)
    check_bad_input(ws, capsys, _report(ws), "metrics.csv", phrase)


@pytest.mark.parametrize(
    "file, column, value, phrase",
    [
        ("reliability.csv", "accuracy", 1.5, "column 'accuracy' must hold numbers in [0, 1]"),
        ("reliability.csv", "count", -3, "column 'count' must hold whole numbers"),
        ("reliability.csv", "method", "mixup", "column 'method' says erm, mixup but metrics.csv says erm"),
        ("spectra.csv", "value", -1.0, "column 'value' must hold finite numbers >= 0"),
        ("spectra.csv", "index", 0, "column 'index' must hold whole numbers"),
    ],
)
def test_reliability_and_spectra_are_checked(ws, capsys, file, column, value, phrase):
    path = ws / EVAL / file
    df = pd.read_csv(path)
    df[column] = df[column].astype(object)
    df.loc[df.index[-1], column] = value
    path.write_text(df.to_csv(index=False))
    check_bad_input(ws, capsys, _report(ws), file, phrase)


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ("[subset]\nn = 360", "[subset]\nn = -1", "[subset] n must be an integer"),
        ("[subset]\nn = 360", "[subset]\nn = 400", "n = 400 exceeds total = 360"),
        ('sha256 = "', 'sha256 = "zz', "sha256 must be"),
        ("[history]\nsettings = [", "[history]\nsettings = [1, ", "settings[0] must be a printable text"),
    ],
)
def test_evaluation_toml_is_checked(ws, capsys, old, new, phrase):
    path = ws / EVAL / "evaluation.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    check_bad_input(ws, capsys, _report(ws), "evaluation.toml", phrase)


# ------------------------------------------------------------------------------ row 11: model.pt method


@pytest.mark.parametrize(
    "method, phrase", [("evil", "is not a method of this bench"), ("mixup", "config.toml says erm")]
)
def test_model_method_is_registered_and_the_runs(ws, capsys, method, phrase):
    payload = torch.load(ws / R / "model.pt", weights_only=True)
    payload["method"] = method
    torch.save(payload, ws / R / "model.pt")
    check_bad_input(ws, capsys, ["evaluate", R, "--suite", "clean"], "model.pt", phrase)


# ------------------------------------------------------------------------------ row 14: links


def test_a_generation_linked_outside_the_run_is_refused(ws, capsys, tmp_path):
    outside = tmp_path / "elsewhere"
    generation = os.readlink(ws / EVAL)
    shutil.copytree(ws / R / generation, outside)
    shutil.rmtree(ws / R / generation)
    os.symlink(outside, ws / R / generation)
    check_bad_input(ws, capsys, _report(ws), "leads outside the run directory")


def test_a_file_linked_outside_the_run_is_refused(ws, capsys, tmp_path):
    outside = tmp_path / "metrics.csv"
    shutil.copy(ws / EVAL / "metrics.csv", outside)
    (ws / EVAL / "metrics.csv").unlink()
    os.symlink(outside, ws / EVAL / "metrics.csv")
    check_bad_input(ws, capsys, _report(ws), "metrics.csv leads outside the run directory")


# ------------------------------------------------------------------------------ rows 16, 18: tensors


@pytest.fixture(scope="module")
def checkpoint(trained_runs) -> dict:
    return torch.load(trained_runs["erm"] / "checkpoint.pt", weights_only=True)


def _copy(payload: dict) -> dict:
    return {
        **payload,
        "model": dict(payload["model"]),
        "optimizer": {**payload["optimizer"], "state": dict(payload["optimizer"]["state"])},
    }


def test_checkpoint_with_nan_weights_names_the_file_not_the_lr(checkpoint, tmp_path):
    """Row 16: "training diverged ... lower --lr" blamed the learning rate for a damaged file."""
    payload = _copy(checkpoint)
    key = next(k for k, v in payload["model"].items() if v.is_floating_point())
    payload["model"][key] = torch.full_like(payload["model"][key], math.nan)
    with pytest.raises(UserError, match=r"holds NaN or infinite values: the file is damaged") as info:
        validate_checkpoint(payload, tmp_path / "checkpoint.pt", 30)
    assert "lr" not in str(info.value)


def test_checkpoint_with_nan_optimizer_state_names_the_file(checkpoint, tmp_path):
    payload = _copy(checkpoint)
    param, state = next(iter(payload["optimizer"]["state"].items()))
    payload["optimizer"]["state"][param] = {k: torch.full_like(v, math.inf) for k, v in state.items()}
    with pytest.raises(UserError, match=r"optimizer\['state'\]\[\d+\] must be finite numbers \(the file is damaged\)"):
        validate_checkpoint(payload, tmp_path / "checkpoint.pt", 30)


def test_a_sparse_weight_is_named_as_such_without_a_warning(ws):
    """Row 18: 'must be a tensor, got <Tensor …>' after a torch warning."""
    payload = torch.load(ws / R / "model.pt", weights_only=True)
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] = payload["state_dict"][key].to_sparse()
    torch.save(payload, ws / R / "model.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserError, match="must be a dense tensor, got a sparse coo one"):
            read_model_file(ws / R / "model.pt")


def test_nan_weights_in_model_pt_are_refused(ws, capsys):
    payload = torch.load(ws / R / "model.pt", weights_only=True)
    key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][key] = torch.full_like(payload["state_dict"][key], math.nan)
    torch.save(payload, ws / R / "model.pt")
    check_bad_input(ws, capsys, ["evaluate", R, "--suite", "clean"], "model.pt", "NaN or infinite")


# ------------------------------------------------------------------------------ row 19: no empty --out


def test_a_refused_run_leaves_no_empty_out_folder(ws, capsys, monkeypatch):
    from robustbench_mm.app import schedulers

    class Refusing:  # a scheduler whose first run is refused by its lock, after the --out folder exists
        detached = False

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, specs):
            raise UserError(f"{R} is in use by process 1 (mmbench train); wait for it to finish or stop it")

    monkeypatch.setattr(schedulers, "create_scheduler", lambda *args, **kwargs: Refusing())
    code = main(["run", "--runs-dir", "runs", "--out", "fresh-report", "--methods", "erm", "--seeds", "0"])
    assert code == 2 and "is in use" in capsys.readouterr().err
    assert not (ws / "fresh-report").exists()

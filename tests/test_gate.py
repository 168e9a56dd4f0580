"""The regression gate, ``mmbench check``: unit behaviour on small tables, and end to end on
real digits runs (a deliberately degraded model fails the gate; an unchanged re-run passes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from robustbench_mm.cli import main

# ------------------------------------------------------------------ unit behaviour

ROWS = [  # method, suite, test, severity, metric, mean, std
    ("erm", "clean", "clean", 0.0, "accuracy", 0.95, 0.01),
    ("erm", "adversarial", "pgd-linf", 0.1, "accuracy", 0.50, 0.03),
    ("erm", "calibration", "clean", 0.0, "ece", 0.05, 0.01),
    ("erm", "calibration", "clean", 0.0, "temperature", 1.50, 0.10),
    ("mixup", "clean", "clean", 0.0, "accuracy", 0.96, 0.00),
    ("mixup", "deformation", "rotate", 20.0, "accuracy", 0.80, 0.02),
]


def table(changes: dict | None = None, drop: tuple | None = None, add: tuple | None = None) -> pd.DataFrame:
    """A report.csv-shaped table; ``changes`` maps (method, suite, test, severity, metric) -> new mean."""
    rows = []
    for method, suite, test, severity, metric, mean, std in ROWS + ([add] if add else []):
        key = (method, suite, test, severity, metric)
        if key == drop:
            continue
        mean = (changes or {}).get(key, mean)
        rows.append(
            {
                "dataset": "digits",
                "arch": "cnn",
                "method": method,
                "suite": suite,
                "test": test,
                "severity": severity,
                "metric": metric,
                "mean": mean,
                "std": std,
                "seeds": 3,
                "n": 360,
            }
        )
    return pd.DataFrame(rows)


def write(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False, float_format="%.6g")
    return path


def gate(
    tmp_path: Path, capsys, current: pd.DataFrame, *flags: str, baseline: pd.DataFrame | None = None
) -> tuple[int, str]:
    base = write(table() if baseline is None else baseline, tmp_path / "baseline.csv")
    cur = write(current, tmp_path / "current.csv")
    capsys.readouterr()
    code = main(["check", "--baseline", str(base), "--current", str(cur), *flags])
    out, err = capsys.readouterr()
    assert err == "" and "Traceback" not in out
    return code, out


PGD = ("erm", "adversarial", "pgd-linf", 0.1, "accuracy")
ECE = ("erm", "calibration", "clean", 0.0, "ece")


def markdown_rows(out: str) -> list[list[str]]:
    """The body rows of the Markdown table in ``out`` (cells stripped)."""
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert lines and lines[0].startswith("| status | method | suite | test | severity | metric |"), out
    assert set(lines[1]) <= set("|-"), "second line must be the Markdown rule"
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_identical_tables_pass(tmp_path, capsys):
    code, out = gate(tmp_path, capsys, table())
    assert code == 0
    assert "passed" in out and "0 worse" in out and "No score changed" in out


ABSOLUTE = ("--tolerance-std", "0")  # the absolute margin alone


def test_drop_beyond_tolerance_fails_with_a_markdown_row(tmp_path, capsys):
    code, out = gate(tmp_path, capsys, table({PGD: 0.45}), *ABSOLUTE)
    assert code == 1 and "FAILED" in out and "1 worse" in out
    rows = markdown_rows(out)
    assert rows == [["worse", "erm", "adversarial", "pgd-linf", "0.1", "accuracy", "0.5", "0.45", "-0.05", "0.02"]]


def test_drop_within_tolerance_passes(tmp_path, capsys):
    code, out = gate(tmp_path, capsys, table({PGD: 0.485}), *ABSOLUTE)
    assert code == 0 and "passed" in out
    code, _ = gate(tmp_path, capsys, table({PGD: 0.485}), "--tolerance", "0.01", *ABSOLUTE)
    assert code == 1


def test_improvement_is_reported_as_better_and_passes(tmp_path, capsys):
    code, out = gate(tmp_path, capsys, table({PGD: 0.60, ECE: 0.01}))
    assert code == 0 and "passed" in out and "2 better" in out
    rows = markdown_rows(out)
    assert {(r[0], r[3], r[5]) for r in rows} == {("better", "pgd-linf", "accuracy"), ("better", "clean", "ece")}


def test_direction_is_per_metric(tmp_path, capsys):
    code, out = gate(tmp_path, capsys, table({ECE: 0.10}))  # calibration error up: worse
    assert code == 1 and markdown_rows(out)[0][:6] == ["worse", "erm", "calibration", "clean", "0", "ece"]
    temperature = ("erm", "calibration", "clean", 0.0, "temperature")
    code, out = gate(tmp_path, capsys, table({temperature: 3.0}))  # descriptive: shown as same, never fails
    assert code == 0


def test_missing_baseline_row_fails(tmp_path, capsys):
    rotate = ("mixup", "deformation", "rotate", 20.0, "accuracy")
    code, out = gate(tmp_path, capsys, table(drop=rotate), *ABSOLUTE)
    assert code == 1 and "1 missing" in out
    assert markdown_rows(out) == [
        ["missing", "mixup", "deformation", "rotate", "20", "accuracy", "0.8", "–", "–", "0.02"]
    ]


def test_new_rows_are_listed_but_pass(tmp_path, capsys):
    code, out = gate(tmp_path, capsys, table(add=("manifold-mixup", "clean", "clean", 0.0, "accuracy", 0.97, 0.0)))
    assert code == 0 and "1 new" in out
    assert markdown_rows(out)[0][:3] == ["new", "manifold-mixup", "clean"]


def test_tolerance_std_widens_the_allowance(tmp_path, capsys):
    """K standard errors of the difference of two 3-seed means, both tables' std 0.03:
    SE = sqrt(0.03²/3 + 0.03²/3) = 0.0245."""
    dropped = table({PGD: 0.45})  # a drop of 0.05
    assert gate(tmp_path, capsys, dropped, *ABSOLUTE)[0] == 1  # 0.05 > 0.02
    assert gate(tmp_path, capsys, dropped, "--tolerance-std", "1")[0] == 1  # 0.05 > 0.0245
    code, out = gate(tmp_path, capsys, dropped, "--tolerance-std", "2.5")  # 0.05 <= 0.061
    assert code == 0 and "passed" in out
    code, out = gate(tmp_path, capsys, dropped)  # the default, K = 4: within seed noise
    assert code == 0 and "passed" in out
    assert gate(tmp_path, capsys, table({PGD: 0.35}))[0] == 1  # 0.15 > 4 SE = 0.098: a real drop
    # The absolute tolerance stays the floor: a zero-std row still gets 0.02.
    clean = ("mixup", "clean", "clean", 0.0, "accuracy")
    assert gate(tmp_path, capsys, table({clean: 0.945}), "--tolerance-std", "5")[0] == 0
    assert gate(tmp_path, capsys, table({clean: 0.93}), "--tolerance-std", "5")[0] == 1


def test_json_output(tmp_path, capsys):
    code, out = gate(tmp_path, capsys, table({PGD: 0.40}), "--json")
    result = json.loads(out)
    assert code == 1 and result["failed"] is True
    worse = [r for r in result["rows"] if r["status"] == "worse"]
    assert len(worse) == 1 and worse[0]["test"] == "pgd-linf" and worse[0]["change"] == pytest.approx(-0.10)
    assert len(result["rows"]) == len(ROWS)
    code, out = gate(tmp_path, capsys, table(), "--json")
    assert code == 0 and json.loads(out)["failed"] is False


def test_update_baseline_replaces_atomically_only_with_a_valid_current(tmp_path, capsys):
    base = write(table(), tmp_path / "baseline.csv")
    old_bytes, old_stat = base.read_bytes(), base.stat()
    for bad_text in ("", "a,b\n1,2\n", ",".join(table().columns) + "\n"):
        (tmp_path / "bad.csv").write_text(bad_text)
        capsys.readouterr()
        code = main(["check", "--baseline", str(base), "--current", str(tmp_path / "bad.csv"), "--update-baseline"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("mmbench: error:") and err.count("\n") == 1, err
        assert base.read_bytes() == old_bytes and base.stat().st_mtime_ns == old_stat.st_mtime_ns
    assert main(["check", "--baseline", str(base), "--current", str(tmp_path / "none.csv"), "--update-baseline"]) == 2
    assert base.read_bytes() == old_bytes

    cur = write(table({PGD: 0.30}), tmp_path / "current.csv")
    assert main(["check", "--baseline", str(base), "--current", str(cur)]) == 1
    capsys.readouterr()
    assert main(["check", "--baseline", str(base), "--current", str(cur), "--update-baseline"]) == 0
    assert "updated" in capsys.readouterr().out
    assert base.read_bytes() == cur.read_bytes()
    assert base.stat().st_ino != old_stat.st_ino, "replaced by rename, not rewritten in place"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "baseline.csv", "current.csv"], "no temp file left"
    assert main(["check", "--baseline", str(base), "--current", str(cur)]) == 0


# ------------------------------------------------------------------ end to end on real runs

FAST_EVAL = [
    "--suite",
    "clean,adversarial,deformation,calibration",
    "--attacks",
    "fgsm,pgd-linf",
    "--eps",
    "0.05,0.1",
    "--pgd-steps",
    "5",
]


def _pipeline(run_dirs: list[Path], out: Path) -> Path:
    assert main(["evaluate", *map(str, run_dirs), *FAST_EVAL]) == 0
    assert main(["report", *map(str, run_dirs), "--out", str(out), "--no-plots"]) == 0
    return out / "report.csv"


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, trained_runs):
    root = tmp_path_factory.mktemp("gate_e2e")
    reports = {}
    for name in ("baseline", "rerun", "degraded"):
        runs = root / name
        for run in trained_runs.values():
            shutil.copytree(run, runs / run.name)
        if name == "degraded":  # same methods, 1 epoch at a tiny learning rate, --force over the copies
            for method in trained_runs:
                assert (
                    main(
                        [
                            "train",
                            "--method",
                            method,
                            "--out-dir",
                            str(runs),
                            "--epochs",
                            "1",
                            "--lr",
                            "0.001",
                            "--force",
                            "--quiet",
                        ]
                    )
                    == 0
                )
        reports[name] = _pipeline(sorted(runs.iterdir()), root / f"{name}-report")
    return reports


def test_unchanged_rerun_passes_the_gate(e2e, capsys):
    capsys.readouterr()
    code = main(["check", "--baseline", str(e2e["baseline"]), "--current", str(e2e["rerun"])])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "passed" in out and "0 worse" in out and "0 missing" in out


def test_degraded_model_fails_the_gate_with_readable_rows(e2e, capsys):
    capsys.readouterr()
    code = main(["check", "--baseline", str(e2e["baseline"]), "--current", str(e2e["degraded"])])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "FAILED" in out
    rows = markdown_rows(out)
    worse = [r for r in rows if r[0] == "worse"]
    assert len(worse) >= 10, out
    for method in ("erm", "mixup", "manifold-mixup"):
        assert [method, "clean", "clean", "0", "accuracy"] in [r[1:6] for r in worse], out
    assert any(r[2] == "adversarial" for r in worse) and any(r[2] == "deformation" for r in worse)
    for r in worse:  # a readable row: numbers, a negative change for accuracy, the allowance
        baseline, current, change, allowed = map(float, r[6:10])
        assert change == pytest.approx(current - baseline, abs=2e-3)
        assert abs(change) > allowed
    # worse rows come first
    statuses = [r[0] for r in rows]
    assert statuses == sorted(statuses, key=["worse", "missing", "better", "new", "same"].index)


def test_degraded_model_json_lists_the_same_rows(e2e, capsys):
    capsys.readouterr()
    assert main(["check", "--baseline", str(e2e["baseline"]), "--current", str(e2e["degraded"]), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True
    clean = [r for r in result["rows"] if r["suite"] == "clean" and r["metric"] == "accuracy"]
    assert len(clean) == 3 and all(r["status"] == "worse" for r in clean)

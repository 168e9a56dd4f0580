"""Every bad input: exit status 2, one line on stderr, no traceback, nothing on disk changed.

A catalogue of malformed inputs across all commands. Each case builds its workspace (a copy of
evaluated digits runs plus whatever broken file the case needs), snapshots every file under
it, runs ``mmbench`` (in-process through ``cli.main`` for speed, a handful as real
``python -m robustbench_mm`` subprocesses to prove it end to end) and checks the contract of
the README: "Every bad input gets one line on stderr and exit status 2, and nothing already on
disk is changed".
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustbench_mm.cli import main
from robustbench_mm.core.errors import UserError
from robustbench_mm.evaluation.runner import evaluate_run
from robustbench_mm.settings import EvalConfig, TrainConfig

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
R = "runs/digits-cnn-erm-s0"  # evaluated erm run (relative to the workspace)
MX = "runs/digits-cnn-mixup-s0"  # evaluated mixup run
MLP = "mlp/digits-mlp-erm-s0"  # a trained mlp run (not evaluated)
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")


# ------------------------------------------------------------------------------ workspace


@pytest.fixture(scope="module")
def template(tmp_path_factory, trained_runs, digits) -> Path:
    """Read-only template workspace: two evaluated digits runs, an mlp run, a report.csv."""
    from robustbench_mm.report import write_report
    from robustbench_mm.training.loop import train

    root = tmp_path_factory.mktemp("bad_input_template")
    for method in ("erm", "mixup"):
        run = root / "runs" / trained_runs[method].name
        shutil.copytree(trained_runs[method], run)
        evaluate_run(run, config=EvalConfig(suites=["clean", "calibration"]), data=digits)
    train(TrainConfig(arch="mlp", epochs=1), out_dir=str(root / "mlp"), progress=False, data=digits, log=lambda s: None)
    write_report([root / R, root / MX], root / "rep", plots=False)
    return root


@pytest.fixture
def ws(template, tmp_path, monkeypatch) -> Path:
    """A private copy of the template; the current directory for the command."""
    work = tmp_path / "ws"
    shutil.copytree(template, work, symlinks=True)  # as cp -a would: the eval link stays a link
    monkeypatch.chdir(work)
    return work


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under ``root``: content hash, mtime and mode (new, lost and changed files all show)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            out[str(path.relative_to(root))] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                stat.st_mtime_ns,
                stat.st_mode,
            )
    return out


def run_cli(argv: list[str], cwd: Path, capsys, subprocess_: bool) -> tuple[int, str, str]:
    if subprocess_:
        proc = subprocess.run(
            [sys.executable, "-m", "robustbench_mm", *argv],
            cwd=cwd,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=180,
        )
        return proc.returncode, proc.stdout, proc.stderr
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, phrases: tuple[str, ...]) -> str:
    assert "Traceback" not in err and "Traceback" not in out, err
    assert code == 2, (code, err)
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one stderr line, got:\n{err}"
    line = err.rstrip("\n")
    assert line.startswith("mmbench: error:") and len(line) > len("mmbench: error: "), line
    for phrase in phrases:
        if isinstance(phrase, AnyOf):
            assert any(p in line for p in phrase.options), (phrase.options, line)
        else:
            assert phrase in line, (phrase, line)
    return line


class AnyOf:
    def __init__(self, *options: str) -> None:
        self.options = options


def check_bad_input(ws: Path, capsys, argv: list[str], *phrases, subprocess_: bool = False) -> str:
    before = snapshot(ws)
    code, out, err = run_cli(argv, ws, capsys, subprocess_)
    line = assert_one_line_error(code, out, err, phrases)
    after = snapshot(ws)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"files changed by a rejected command: {changed}"
    return line


# ------------------------------------------------------------------------------ case builders


def _image_folder(
    root: Path, sizes: dict[str, list[int]] | None = None, classes=("cat", "dog"), broken: bool = False
) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for i, size in enumerate((sizes or {}).get(split, [8, 8, 8])):
                Image.new("L", (size, size), 40 * i).save(folder / f"{i}.png")
    if broken:
        (root / "train" / classes[0] / "broken.png").write_bytes(b"this is not a png")
    return root


def _resave_model(path: Path, **changes) -> None:
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)


def _edit_csv(path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path.write_text(edit(pd.read_csv(path)).to_csv(index=False))


def _set(df: pd.DataFrame, column: str, value) -> pd.DataFrame:
    df = df.copy()
    df[column] = df[column].astype(object)
    df.loc[df.index[0], column] = value
    return df


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _npz_with_pickle(path: Path) -> None:
    import numpy as np

    with open(path, "wb") as handle:
        np.savez(handle, **{"clean|clean|0": np.array([{"a": 1}], dtype=object)})


def _foreign_imagefolder_run(ws: Path) -> list[str]:
    """A real run trained on an image folder whose classes were renamed afterwards."""
    from robustbench_mm.training.loop import train

    folder = _image_folder(ws / "pets")
    result = train(
        TrainConfig(dataset=f"imagefolder:{folder}", epochs=1, batch_size=2, holdout_fraction=0.0),
        out_dir=str(ws / "petruns"),
        progress=False,
        log=lambda s: None,
    )
    for split in ("train", "test"):
        (folder / split / "dog").rename(folder / split / "fox")
    return ["evaluate", str(result.run_dir)]


@dataclass
class Case:
    id: str
    setup: Callable[[Path], list[str]]
    phrases: tuple
    subprocess_: bool = False
    marks: tuple = ()


def case(id: str, argv, *phrases, setup: Callable[[Path], None] | None = None, sub: bool = False, marks=()):
    def build(ws: Path) -> list[str]:
        if setup is not None:
            setup(ws)
        return list(argv(ws)) if callable(argv) else list(argv)

    return pytest.param(Case(id, build, phrases, sub), id=id, marks=marks)


def w(rel: str, text: str | bytes):
    def setup(ws: Path) -> None:
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)

    return setup


EVAL_FAST = ["--suite", "clean"]

CASES = [
    # ---- unknown names (each message lists the valid names)
    case(
        "train-unknown-dataset",
        ["train", "--dataset", "imagenet-x"],
        "unknown dataset 'imagenet-x'",
        "valid:",
        "digits",
        "cifar10",
        sub=True,
    ),
    case(
        "train-unknown-arch",
        ["train", "--arch", "resnet9000"],
        "unknown architecture 'resnet9000'",
        "cnn",
        "preactresnet18",
    ),
    case("train-unknown-method", ["train", "--method", "snapmix"], "unknown method 'snapmix'", "manifold-mixup"),
    case("train-unknown-preset", ["train", "--preset", "table99"], "unknown preset 'table99'", "valid:"),
    case("train-unknown-amp", ["train", "--amp", "maybe"], "unknown --amp 'maybe'; valid: auto, on, off"),
    case(
        "evaluate-unknown-suite",
        ["evaluate", R, "--suite", "clean,robustness"],
        "unknown suite 'robustness'",
        "adversarial",
        "calibration",
    ),
    case("evaluate-no-suite", ["evaluate", R, "--suite", ","], "--suite is empty"),
    case(
        "evaluate-unknown-attack",
        ["evaluate", R, "--suite", "adversarial", "--attacks", "fgsm,pgd-l7"],
        "unknown attack 'pgd-l7'",
        "pgd-linf",
    ),
    case(
        "evaluate-unknown-corruption",
        ["evaluate", R, "--suite", "corruption", "--corruptions", "fog,lava"],
        "unknown corruption 'lava'",
        "gaussian_noise",
    ),
    case(
        "evaluate-unknown-deformation-grid",
        ["evaluate", R, "--deformations", "paper-xl"],
        "unknown deformation grid 'paper-xl'",
        "paper-full",
    ),
    case("run-unknown-method", ["run", "--methods", "erm,snapmix"], "unknown method 'snapmix'"),
    case(
        "show-corruptions-unknown",
        ["show-corruptions", "--out", "pics", "--corruptions", "lava"],
        "unknown corruption 'lava'",
    ),
    case("unknown-command", ["fit"], "invalid choice: 'fit'"),
    case("list-unknown-flag", ["list", "--everything"], "unrecognized arguments: --everything"),
    # ---- numbers out of range
    case("train-alpha-zero", ["train", "--method", "mixup", "--alpha", "0"], "--alpha must be > 0"),
    case("train-alpha-negative", ["train", "--method", "manifold-mixup", "--alpha", "-1"], "--alpha must be > 0"),
    case("train-epochs-zero", ["train", "--epochs", "0"], "--epochs must be >= 1"),
    case("train-epochs-text", ["train", "--epochs", "ten"], "--epochs must be an integer, got 'ten'"),
    case("train-batch-size-zero", ["train", "--batch-size", "0"], "--batch-size must be >= 2"),
    case("train-batch-size-one", ["train", "--batch-size", "1"], "--batch-size must be >= 2"),
    case("train-lr-nan", ["train", "--lr", "nan"], "--lr must be a finite number"),
    case("train-negative-seed", ["train", "--seed", "-1"], "--seed must be >= 0"),
    case(
        "train-mix-layer-missing",
        ["train", "--method", "manifold-mixup", "--mix-layers", "0,9"],
        "mix layer(s) [9] not available for this architecture",
    ),
    case(
        "train-mix-layer-mlp",
        ["train", "--arch", "mlp", "--method", "manifold-mixup", "--mix-layers", "7"],
        "not available for this architecture",
    ),
    case("evaluate-negative-eps", ["evaluate", R, "--eps", "0.03,-0.1"], "--eps must be > 0, got -0.1"),
    case(
        "evaluate-severity-0",
        ["evaluate", R, "--suite", "corruption", "--severities", "0"],
        "--severities must be >= 1, got 0",
    ),
    case(
        "evaluate-severity-6",
        ["evaluate", R, "--suite", "corruption", "--severities", "1,6"],
        "--severities must be <= 5, got 6",
    ),
    case("evaluate-pgd-steps-zero", ["evaluate", R, "--pgd-steps", "0"], "--pgd-steps must be >= 1"),
    case("evaluate-n-test-negative", ["evaluate", R, "--n-test", "-1"], "--n-test must be >= 0"),
    case("run-jobs-zero", ["run", "--jobs", "0"], "--jobs must be >= 1"),
    case("run-negative-seed", ["run", "--seeds", "0,-1"], "--seeds must be >= 0"),
    case(
        "check-negative-tolerance",
        ["check", "--baseline", "rep/report.csv", "--current", "rep/report.csv", "--tolerance", "-1"],
        "--tolerance must be a finite number >= 0",
    ),
    case(
        "show-corruptions-zero-images",
        ["show-corruptions", "--out", "pics", "--images", "0"],
        "--images must be in 1..64",
    ),
    # ---- devices
    case(
        "train-device-cuda",
        ["train", "--device", "cuda", "--epochs", "1", "--out-dir", "new"],
        "no CUDA GPU",
        marks=NO_GPU,
    ),
    case("evaluate-device-cuda", ["evaluate", R, "--device", "cuda:0", *EVAL_FAST], "no CUDA GPU", marks=NO_GPU),
    case(
        "run-device-cuda",
        ["run", "--device", "cuda", "--epochs", "1", "--runs-dir", "new", "--out", "newrep"],
        "no CUDA GPU",
        marks=NO_GPU,
    ),
    case("train-device-nonsense", ["train", "--device", "tpu7", "--epochs", "1", "--out-dir", "new"], "device 'tpu7'"),
    # ---- datasets on disk
    case("train-cifar10-no-data-root", ["train", "--dataset", "cifar10"], "needs a data root: --data-root DIR"),
    case(
        "train-cifar10-empty-data-root",
        ["train", "--dataset", "cifar10", "--data-root", "nodata"],
        "not found under nodata",
        setup=lambda ws: (ws / "nodata").mkdir(),
    ),
    case("imagefolder-no-path", ["train", "--dataset", "imagefolder:"], "imagefolder needs a path"),
    case(
        "imagefolder-no-splits",
        ["train", "--dataset", "imagefolder:pics"],
        "needs train/ and test/",
        setup=lambda ws: (ws / "pics" / "cat").mkdir(parents=True),
    ),
    case(
        "imagefolder-empty",
        ["train", "--dataset", "imagefolder:pics"],
        "class folder",
        setup=lambda ws: [(ws / "pics" / s).mkdir(parents=True) for s in ("train", "test")],
    ),
    case(
        "imagefolder-classes-without-images",
        ["train", "--dataset", "imagefolder:pics"],
        "Found no valid file",
        setup=lambda ws: [(ws / "pics" / s / c).mkdir(parents=True) for s in ("train", "test") for c in ("a", "b")],
    ),
    case(
        "imagefolder-mixed-sizes",
        ["train", "--dataset", "imagefolder:pics"],
        "images of mixed sizes",
        setup=lambda ws: _image_folder(ws / "pics", {"train": [8, 8, 10], "test": [8, 8]}),
    ),
    case(
        "imagefolder-broken-image",
        ["train", "--dataset", "imagefolder:pics"],
        "cannot read image",
        "broken.png",
        setup=lambda ws: _image_folder(ws / "pics", broken=True),
    ),
    case(
        "imagefolder-class-sets-differ",
        ["train", "--dataset", "imagefolder:pics"],
        "differ from test classes",
        setup=lambda ws: (_image_folder(ws / "pics"), shutil.copytree(ws / "pics/test/cat", ws / "pics/test/bird")),
    ),
    # ---- run directories and checkpoints
    case(
        "train-existing-run-without-force",
        ["train", "--epochs", "1"],
        "holds a run with other settings (epochs)",
        "--force",
        sub=True,
    ),
    case("train-changed-settings", ["train", "--epochs", "3"], "holds a run with other settings (epochs)", "--force"),
    case(
        "run-existing-runs-without-force",
        ["run", "--methods", "erm", "--seeds", "0", "--epochs", "1", *EVAL_FAST],
        "holds a run with other settings (epochs)",
    ),
    case("evaluate-missing-dir", ["evaluate", "runs/nothing-here"], "run directory not found: runs/nothing-here"),
    case("evaluate-no-model", ["evaluate", R], "has no model.pt", setup=lambda ws: (ws / R / "model.pt").unlink()),
    case(
        "evaluate-model-is-dir",
        ["evaluate", R],
        "is a directory",
        setup=lambda ws: ((ws / R / "model.pt").unlink(), (ws / R / "model.pt").mkdir()),
    ),
    case("evaluate-empty-model", ["evaluate", R], "checkpoint is empty", setup=w(f"{R}/model.pt", b"")),
    case(
        "evaluate-truncated-model",
        ["evaluate", R],
        "corrupt, truncated",
        sub=True,
        setup=lambda ws: _truncate(ws / R / "model.pt"),
    ),
    case(
        "evaluate-random-bytes-model",
        ["evaluate", R],
        "model.pt",
        AnyOf("not a safe checkpoint", "corrupt, truncated"),
        setup=w(f"{R}/model.pt", random.Random(0).randbytes(4096)),
    ),
    case(
        "evaluate-text-model",
        ["evaluate", R],
        "model.pt",
        AnyOf("not a safe checkpoint", "corrupt, truncated"),
        sub=True,
        setup=w(f"{R}/model.pt", "hello, I am not a checkpoint\n"),
    ),
    case(
        "evaluate-foreign-torch-file",
        ["evaluate", R],
        "not a robustbench_mm model file",
        setup=lambda ws: torch.save({"weights": torch.zeros(3)}, ws / R / "model.pt"),
    ),
    case(
        "evaluate-model-without-metadata",
        ["evaluate", R],
        "lacks metadata",
        "classes",
        setup=lambda ws: _drop_key(ws / R / "model.pt", "classes"),
    ),
    case(
        "evaluate-config-arch-edited",
        ["evaluate", R],
        "holds a cnn model, expected mlp",
        setup=lambda ws: (ws / R / "config.toml").write_text(
            (ws / R / "config.toml").read_text().replace('arch = "cnn"', 'arch = "mlp"')
        ),
    ),
    case(
        "evaluate-model-swapped-arch",
        ["evaluate", R],
        "holds a mlp model, expected cnn",
        setup=lambda ws: shutil.copy(ws / MLP / "model.pt", ws / R / "model.pt"),
    ),
    case(
        "evaluate-model-other-dataset",
        ["evaluate", R],
        "was trained on mnist, expected digits",
        setup=lambda ws: _resave_model(ws / R / "model.pt", dataset="mnist"),
    ),
    case(
        "evaluate-model-other-classes",
        ["evaluate", R],
        "classes",
        setup=lambda ws: _resave_model(ws / R / "model.pt", classes=list("abcdefghij")),
    ),
    case("evaluate-imagefolder-classes-renamed", _foreign_imagefolder_run, "was trained on 2 classes", "fox"),
    case(
        "evaluate-weights-do-not-fit",
        ["evaluate", R],
        "weights do not fit",
        setup=lambda ws: _resave_model(ws / R / "model.pt", state_dict={"bogus": torch.zeros(1)}),
    ),
    case(
        "evaluate-corrupt-config", ["evaluate", R], "not valid TOML", setup=w(f"{R}/config.toml", "arch = [unclosed\n")
    ),
    case(
        "evaluate-config-missing",
        ["evaluate", R],
        "config file not found",
        setup=lambda ws: (ws / R / "config.toml").unlink(),
    ),
    case(
        "evaluate-config-unknown-setting",
        ["evaluate", R],
        "unknown setting(s) 'colour'",
        setup=lambda ws: (ws / R / "config.toml").write_text(
            (ws / R / "config.toml").read_text().replace("[train]\n", '[train]\ncolour = "red"\n')
        ),
    ),
    # ---- report
    case("report-zero-runs", ["report", "--out", "newrep"], "no run directories given", sub=True),
    case(
        "report-unknown-format",
        ["report", R, "--out", "newrep", "--format", "md,pdf"],
        "unknown --format 'pdf'; valid: md, html",
    ),
    case("report-missing-run", ["report", R, "runs/nothing", "--out", "newrep"], "run directory not found"),
    case("report-run-without-metrics", ["report", R, MLP, "--out", "newrep"], "has no evaluation"),
    case(
        "report-different-datasets",
        ["report", R, MX, "--out", "newrep"],
        AnyOf("different datasets", "config.toml says digits"),  # the run's own record disagrees first
        "digits",
        "mnist",
        setup=lambda ws: _edit_csv(ws / MX / "eval" / "metrics.csv", lambda df: df.assign(dataset="mnist")),
    ),
    case("report-same-run-twice", ["report", R, R, "--out", "newrep"], "share a name"),
    case(
        "report-copy-of-a-run",
        ["report", R, "runs/copy", "--out", "newrep"],
        "are all erm seed 0",
        "once",
        setup=lambda ws: (
            shutil.copytree(ws / R, ws / "runs" / "copy"),
            _edit_csv(ws / "runs" / "copy" / "eval" / "metrics.csv", lambda df: df.assign(run="copy")),
        ),
    ),
    case(
        "report-different-test-sizes",
        ["report", R, MX, "--out", "newrep"],
        AnyOf("different numbers of test examples (50)", "has 360 entries for 50 test examples"),
        setup=lambda ws: _edit_csv(ws / MX / "eval" / "metrics.csv", lambda df: df.assign(n=50)),
    ),
    case(
        "report-different-attacks",
        ["report", R, MX, "--out", "newrep"],
        "attacked differently",
        "fgsm",
        setup=lambda ws: _edit_csv(
            ws / MX / "eval" / "metrics.csv",
            lambda df: pd.concat(
                [df, df.head(1).assign(suite="adversarial", test="fgsm", severity=0.1, metric="accuracy")]
            ),
        ),
    ),
    case(
        "report-metrics-truncated",
        ["report", R, "--out", "newrep"],
        "not a valid metrics file",
        "incomplete",
        setup=lambda ws: (ws / R / "eval" / "metrics.csv").write_bytes(
            (ws / R / "eval" / "metrics.csv").read_bytes()[:300]
        ),
    ),
    case("run-empty-methods", ["run", "--methods", ",", "--plan"], "--methods is empty"),
    case("run-empty-seeds", ["run", "--seeds", ",", "--plan"], "--seeds is empty"),
    case("train-milestone-after-the-end", ["train", "--epochs", "3", "--milestones", "50"], "before the last epoch"),
    case("train-milestones-unsorted", ["train", "--epochs", "9", "--milestones", "6,3"], "must be increasing"),
    case("evaluate-empty-eps", ["evaluate", R, "--suite", "adversarial", "--eps", ","], "--eps is empty"),
    case(
        "evaluate-second-run-broken",
        ["evaluate", R, MX, "--suite", "clean"],
        "refusing to load",
        MX,
        setup=w(f"{MX}/model.pt", b"not a torch file"),
    ),
    case(
        "report-metrics-garbage",
        ["report", R, "--out", "newrep"],
        "not a valid metrics file",
        setup=w(f"{R}/eval/metrics.csv", bytes(range(256)) * 4),
    ),
    case(
        "report-metrics-empty",
        ["report", R, "--out", "newrep"],
        "not a valid metrics file",
        setup=w(f"{R}/eval/metrics.csv", ""),
    ),
    case(
        "report-metrics-no-columns",
        ["report", R, "--out", "newrep"],
        "lacks columns",
        setup=w(f"{R}/eval/metrics.csv", "a,b\n1,2\n"),
    ),
    case(
        "report-metrics-non-numeric",
        ["report", R, "--out", "newrep"],
        "column 'value' holds non-numeric values",
        setup=lambda ws: _edit_csv(ws / R / "eval" / "metrics.csv", lambda df: _set(df, "value", "high")),
    ),
    case(
        "report-per-example-truncated",
        ["report", R, "--out", "newrep"],
        "per_example.npz is unreadable",
        setup=lambda ws: _truncate(ws / R / "eval" / "per_example.npz"),
    ),
    case(
        "report-per-example-pickled",
        ["report", R, "--out", "newrep"],
        "per_example.npz is unreadable",
        setup=lambda ws: _npz_with_pickle(ws / R / "eval" / "per_example.npz"),
    ),
    case(
        "report-out-under-a-file",
        ["report", R, "--out", "afile/sub"],
        "cannot create output directory afile/sub",
        setup=w("afile", "x"),
    ),
    case(
        "report-out-is-a-file",
        ["report", R, "--out", "afile"],
        "cannot create output directory afile",
        setup=w("afile", "x"),
    ),
    case(
        "report-reliability-garbage",
        ["report", R, "--out", "newrep"],
        "reliability.csv",
        setup=w(f"{R}/eval/reliability.csv", b""),
    ),
    case(
        "report-train-log-garbage",
        ["report", R, "--out", "newrep"],
        "train_log.csv",
        setup=w(f"{R}/train_log.csv", "a,b\n1,2\n"),
    ),
    case(
        "show-corruptions-out-under-a-file",
        ["show-corruptions", "--out", "afile/sub"],
        "cannot create output directory",
        setup=w("afile", "x"),
    ),
    # ---- check
    case(
        "check-missing-baseline",
        ["check", "--baseline", "results/report.csv", "--current", "rep/report.csv"],
        "report table not found: results/report.csv",
    ),
    case(
        "check-missing-current",
        ["check", "--baseline", "rep/report.csv", "--current", "nope.csv"],
        "report table not found: nope.csv",
    ),
    case(
        "check-no-columns",
        ["check", "--baseline", "rep/report.csv", "--current", "bad.csv"],
        "missing column(s)",
        "mean",
        setup=w("bad.csv", "a,b\n1,2\n"),
    ),
    case(
        "check-empty-file",
        ["check", "--baseline", "bad.csv", "--current", "rep/report.csv"],
        "not a readable CSV report",
        sub=True,
        setup=w("bad.csv", ""),
    ),
    case(
        "check-header-only",
        ["check", "--baseline", "rep/report.csv", "--current", "bad.csv"],
        "holds no rows",
        setup=lambda ws: (ws / "bad.csv").write_text((ws / "rep/report.csv").read_text().splitlines()[0] + "\n"),
    ),
    case(
        "check-binary-file",
        ["check", "--baseline", "rep/report.csv", "--current", "bad.csv"],
        "bad.csv",
        setup=w("bad.csv", bytes(range(256)) * 8),
    ),
    case(
        "check-non-numeric-mean",
        ["check", "--baseline", "rep/report.csv", "--current", "bad.csv"],
        "column 'mean' holds non-numeric values",
        setup=lambda ws: (ws / "bad.csv").write_text(
            _set(pd.read_csv(ws / "rep/report.csv"), "mean", "high").to_csv(index=False)
        ),
    ),
    case(
        "check-duplicate-rows",
        ["check", "--baseline", "bad.csv", "--current", "rep/report.csv"],
        "duplicate rows",
        setup=lambda ws: (ws / "bad.csv").write_text(
            pd.concat([pd.read_csv(ws / "rep/report.csv")] * 2).to_csv(index=False)
        ),
    ),
    case("check-baseline-is-dir", ["check", "--baseline", "rep", "--current", "rep/report.csv"], "is a directory"),
    case(
        "check-update-baseline-invalid-current",
        ["check", "--baseline", "rep/report.csv", "--current", "bad.csv", "--update-baseline"],
        "missing column(s)",
        setup=w("bad.csv", "a,b\n1,2\n"),
    ),
    case(
        "run-unknown-format",
        [
            "run",
            "--methods",
            "erm",
            "--seeds",
            "5",
            "--epochs",
            "1",
            "--runs-dir",
            "new",
            "--format",
            "pdf",
            *EVAL_FAST,
        ],
        "unknown --format 'pdf'",
    ),
]


def _drop_key(path: Path, key: str) -> None:
    payload = torch.load(path, weights_only=True)
    del payload[key]
    torch.save(payload, path)


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(bad: Case, ws, capsys):
    argv = bad.setup(ws)
    check_bad_input(ws, capsys, argv, *bad.phrases, subprocess_=bad.subprocess_)


def test_catalogue_is_large_and_has_real_subprocesses():
    assert len(CASES) >= 30
    assert sum(p.values[0].subprocess_ for p in CASES) >= 5


def test_train_into_existing_run_keeps_the_old_model(ws, capsys):
    model = ws / R / "model.pt"
    old = model.read_bytes()
    check_bad_input(
        ws, capsys, ["train", "--epochs", "1", "--lr", "0.001"], "holds a run with other settings (epochs, lr)"
    )
    assert model.read_bytes() == old


def _chmod_blocks_writes(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_text("x")
    except PermissionError:
        return True
    probe.unlink()
    return False


def test_report_into_read_only_directory(ws, capsys):
    out = ws / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        if _chmod_blocks_writes(out) is False:
            pytest.skip("running as root: chmod 0o555 does not block writes (see report-out-under-a-file)")
        check_bad_input(
            ws, capsys, ["report", R, "--out", "ro"], AnyOf("not writable", "cannot create", "permission denied")
        )
        check_bad_input(
            ws, capsys, ["report", R, "--out", "ro/sub"], AnyOf("not writable", "cannot create", "permission denied")
        )
    finally:
        out.chmod(0o755)


def test_nan_producing_model_is_refused_by_the_api(digits):
    import robustbench_mm as rb

    class NaNModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(64, 10)

        def forward(self, x):
            return self.linear(x.flatten(1)) * float("nan")

    model = NaNModel().train()
    with pytest.raises(UserError, match="NaN or infinite outputs"):
        rb.evaluate(model, digits, suites=["clean"])
    assert model.training  # the caller gets its model back in the mode it was in


def test_wrong_output_shape_is_refused_by_the_api(digits):
    import robustbench_mm as rb

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    with pytest.raises(UserError, match=r"expected \(N, 10\)"):
        rb.evaluate(model, digits, suites=["clean"])


def test_an_unwritable_disk_is_one_line_exit_2(ws, monkeypatch, capsys):
    """A read-only file system (or a full disk) while writing results: one line, exit 2, and the
    old files stay (writes are atomic)."""
    import errno

    from robustbench_mm.store import publish

    def refuse(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(publish, "atomic_write_bytes", refuse)
    run = ws / R
    before = {p.name: sorted(q.name for q in p.iterdir()) if p.is_dir() else p.read_bytes() for p in run.iterdir()}
    metrics = (run / "eval" / "metrics.csv").read_bytes()
    assert main(["evaluate", str(run), "--suite", "clean"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mmbench: error: Read-only file system: ") and "metrics.csv" in err[0]
    assert (run / "eval" / "metrics.csv").read_bytes() == metrics  # the published evaluation is untouched
    after = {p.name: sorted(q.name for q in p.iterdir()) if p.is_dir() else p.read_bytes() for p in run.iterdir()}
    assert after == before  # and no half-built generation is left behind


def test_a_closed_pipe_ends_quietly():
    """`mmbench ... | head`: the reader leaves, mmbench stops without a traceback."""
    done = subprocess.run(
        f"{sys.executable} -m robustbench_mm list --presets | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr

"""Safety: crafted checkpoints never run code, killed writers never leave half a file, and
model metadata is checked before weights are used."""

from __future__ import annotations

import builtins
import inspect
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robustbench_mm.cli import main
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.files import atomic_write_text, safe_torch_load
from robustbench_mm.core.results import COLUMNS
from robustbench_mm.store.checkpoint import MODEL_FORMAT, load_model, read_model_file

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


# ------------------------------------------------------------------ (a) pickles that run code


class _ShellPayload:
    """Unpickling this calls os.system("touch MARKER")."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _OpenPayload:
    """Unpickling this calls builtins.open(MARKER, "w"), creating the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def _craft(kind: str, marker: Path, path: Path, template: Path) -> None:
    """A model.pt that looks right (real metadata) but carries a code-running object."""
    payload = torch.load(template, weights_only=True)
    payload["state_dict"] = _ShellPayload(marker) if kind != "open" else _OpenPayload(marker)
    if kind == "legacy":  # the pre-1.6 non-zip pickle format goes through the same unpickler
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(payload, path)


@pytest.fixture
def run_copy(trained_runs, tmp_path) -> Path:
    run = tmp_path / "runs" / trained_runs["erm"].name
    shutil.copytree(trained_runs["erm"], run)
    return run


@pytest.mark.parametrize("kind", ["system", "open", "legacy"])
def test_code_running_checkpoint_is_refused_by_load_model(kind, run_copy, tmp_path):
    marker = tmp_path / "MARKER"
    _craft(kind, marker, run_copy / "model.pt", run_copy / "model.pt")
    with pytest.raises(UserError, match="not a safe checkpoint"):
        load_model(run_copy / "model.pt")
    with pytest.raises(UserError, match="not a safe checkpoint"):
        safe_torch_load(run_copy / "model.pt")
    assert not marker.exists()
    # The payload is live: an unsafe load would have run it (proves the test is not vacuous).
    torch.load(run_copy / "model.pt", weights_only=False)
    assert marker.exists()


def test_code_running_checkpoint_is_refused_by_the_cli(run_copy, trained_runs, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    _craft("system", marker, run_copy / "model.pt", trained_runs["erm"] / "model.pt")
    before = {p: p.read_bytes() for p in run_copy.iterdir()}
    proc = subprocess.run(
        [sys.executable, "-m", "robustbench_mm", "evaluate", str(run_copy), "--suite", "clean"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("mmbench: error:"), proc.stderr
    assert "not a safe checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()
    assert {p: p.read_bytes() for p in run_copy.iterdir()} == before

    # Continuing an interrupted run (no model.pt yet) reads checkpoint.pt through the same safe loader.
    _craft("open", marker, run_copy / "checkpoint.pt", trained_runs["erm"] / "model.pt")
    (run_copy / "model.pt").unlink()
    capsys.readouterr()
    code = main(["train", "--out-dir", str(run_copy.parent), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a safe checkpoint" in err, err
    assert not marker.exists()


def test_pickled_per_example_file_is_refused(run_copy, tmp_path):
    from robustbench_mm.store.rundir import RunDir

    marker = tmp_path / "MARKER"
    (run_copy / "metrics.csv").write_text("run,dataset,arch,method,seed,suite,test,severity,metric,value,n\n")
    with open(run_copy / "per_example.npz", "wb") as handle:
        np.savez(handle, **{"clean|clean|0": np.array([_ShellPayload(marker)], dtype=object)})
    with pytest.raises(UserError, match="unreadable"):
        RunDir(run_copy).evaluation()
    assert not marker.exists()


# ------------------------------------------------------------------ (b) SIGKILL while writing

ROWS = 150_000  # ~9 MB per version: a write takes long enough for kills to land inside it


def _version_text(k: int) -> str:
    head = ",".join(COLUMNS) + "\n"  # the version k is the value: a "value" row may hold any number
    return head + "".join(f"r,digits,cnn,erm,0,clean,clean,{i},value,{k},360\n" for i in range(ROWS))


def _writer_loop(path: str, start: int) -> None:  # runs in the child process
    k = start
    while True:
        atomic_write_text(path, _version_text(k))
        k += 1


def _assert_complete(path: Path, previous: str) -> str:
    text = path.read_text()
    if text == previous:
        return text
    df = pd.read_csv(path)
    assert list(df.columns) == COLUMNS and len(df) == ROWS
    versions = df["value"].unique()
    assert len(versions) == 1, "a mix of two versions"
    assert text == _version_text(int(versions[0])), "a partial file"
    return text


def _writer_script() -> str:
    """The writer loop for a fresh interpreter, sharing _version_text's source."""
    return "\n".join(
        [
            "import sys",
            "from robustbench_mm.core.results import COLUMNS",
            "from robustbench_mm.core.files import atomic_write_text",
            f"ROWS = {ROWS}",
            inspect.getsource(_version_text),
            'print("ready", flush=True)',
            "k = 10**6",
            "while True:",
            "    atomic_write_text(sys.argv[1], _version_text(k))",
            "    k += 1",
        ]
    )


def test_sigkill_during_metrics_write_leaves_old_or_new_file(run_copy, digits):
    from robustbench_mm.evaluation.runner import evaluate_run
    from robustbench_mm.report import collect
    from robustbench_mm.settings import EvalConfig
    from robustbench_mm.store.rundir import RunDir

    evaluate_run(run_copy, config=EvalConfig(suites=["clean"]), data=digits)
    path = run_copy / "eval" / "metrics.csv"
    folder = path.parent.resolve()
    expected = {p.name for p in folder.iterdir()}
    previous = path.read_text()
    rng = random.Random(1234)

    # One writer in a fresh interpreter (end to end), then several forked ones (cheap to start).
    proc = subprocess.Popen(
        [sys.executable, "-c", _writer_script(), str(path)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(rng.uniform(0.2, 0.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    previous = _assert_complete(path, previous)

    context = multiprocessing.get_context("fork")
    versions_seen = set()
    for trial in range(8):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (Python 3.12+)
            child = context.Process(target=_writer_loop, args=(str(path), 1000 * (trial + 1)), daemon=True)
            child.start()
        time.sleep(rng.uniform(0.05, 0.5))
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
        assert child.exitcode == -signal.SIGKILL
        previous = _assert_complete(path, previous)
        versions_seen.add(previous.splitlines()[1])
    assert len(versions_seen) > 1, "the writers never completed a write; the test proved nothing"

    # Leftover temp files are dot-prefixed and ignored by every reader.
    strays = [p.name for p in folder.iterdir() if p.name not in expected]
    assert all(name.startswith(".metrics.csv.") and name.endswith(".tmp") for name in strays), strays
    df = RunDir(run_copy).read_metrics()
    assert len(df) == ROWS
    assert len(collect([run_copy]).metrics) == ROWS


# ------------------------------------------------------------------ (c) model metadata


def test_metadata_mismatches_are_named(trained_runs):
    path = trained_runs["erm"] / "model.pt"
    with pytest.raises(UserError, match="holds a cnn model, expected mlp"):
        load_model(path, expect_arch="mlp")
    with pytest.raises(UserError, match="was trained on digits, expected mnist"):
        load_model(path, expect_dataset="mnist")
    with pytest.raises(UserError, match=r"was trained on 10 classes .* the dataset has 2 \['cat', 'dog'\]"):
        load_model(path, expect_classes=["cat", "dog"])
    with pytest.raises(UserError, match="10 classes"):
        load_model(path, expect_classes=[str(c) for c in range(9, -1, -1)])  # same names, other order
    model, meta = load_model(
        path, expect_arch="cnn", expect_dataset="digits", expect_classes=[str(c) for c in range(10)]
    )
    assert meta["arch"] == "cnn" and not model.training


def test_model_file_markers_and_metadata_are_required(trained_runs, tmp_path):
    payload = torch.load(trained_runs["erm"] / "model.pt", weights_only=True)
    assert payload["format"] == MODEL_FORMAT
    no_marker = {k: v for k, v in payload.items() if k != "format"}
    torch.save(no_marker, tmp_path / "a.pt")
    with pytest.raises(UserError, match="not a robustbench_mm model file"):
        read_model_file(tmp_path / "a.pt")
    no_std = {k: v for k, v in payload.items() if k != "std"}
    torch.save(no_std, tmp_path / "b.pt")
    with pytest.raises(UserError, match="lacks metadata: std"):
        read_model_file(tmp_path / "b.pt")
    torch.save(payload["state_dict"], tmp_path / "c.pt")  # a bare state dict is not a model file
    with pytest.raises(UserError, match="not a robustbench_mm model file"):
        load_model(tmp_path / "c.pt")
    shapes = {**payload, "classes": payload["classes"][:5]}  # the head has 10 outputs
    torch.save(shapes, tmp_path / "d.pt")
    with pytest.raises(UserError, match="weights do not fit a cnn model"):
        load_model(tmp_path / "d.pt")


def test_ctrl_c_stops_a_parallel_run_without_starting_queued_runs(tmp_path):
    """Ctrl-C (SIGINT to the process group) during `mmbench run --jobs 2`: the workers stop with
    the parent, no queued run starts, exit status 130; the same command then finishes the job."""
    command = [
        sys.executable,
        "-m",
        "robustbench_mm",
        "run",
        "--jobs",
        "2",
        "--suites",
        "clean",
        "--out",
        str(tmp_path / "rep"),
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob("*/train_log.csv")):  # an epoch of a run is done
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "mmbench: interrupted"
    assert (
        len(list((tmp_path / "runs").iterdir())) <= 3
    )  # 9 planned; only the started ones (and at most one more) exist
    assert (
        main(
            [
                "run",
                "--jobs",
                "2",
                "--suites",
                "clean",
                "--out",
                str(tmp_path / "rep"),
                "--runs-dir",
                str(tmp_path / "runs"),
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "runs").glob("*/eval/metrics.csv"))) == 9

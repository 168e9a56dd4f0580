"""Issue 25, the inputs: numbers, flags, the Python API, MNIST headers, small and one-class folders.

Each reproduction of the issue's rows 5, 7, 12, 13, 15 and 17 (and the values "accepted without a
word") gives a clean result or one line with exit status 2, and nothing on disk changes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from robustbench_mm.cli import main
from robustbench_mm.core.errors import UserError


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    status = main(argv)
    err = capsys.readouterr().err.strip()
    return status, err


def _one_line(status: int, err: str, *phrases: str) -> None:
    assert status == 2 and "\n" not in err and err.startswith("mmbench: error: "), err
    for phrase in phrases:
        assert phrase in err, (phrase, err)


# ------------------------------------------------------------------------------ numbers and flags


@pytest.mark.parametrize(
    "argv,phrases",
    [
        # row 5: the step size is bounded (1e308 overflowed float32 into NaN images)
        (["evaluate", "R", "--pgd-step-size", "1e308"], ["--pgd-step-size must be <= 10000"]),
        (["evaluate", "R", "--pgd-step-size", "1e23"], ["--pgd-step-size must be <= 10000"]),
        # unicode digits, underscores
        (["train", "--epochs", "٣"], ["--epochs must be an integer (in ASCII digits 0-9)", "٣"]),
        (["evaluate", "R", "--eps", "٠.١"], ["--eps must be a finite number (in ASCII digits 0-9)"]),
        (["train", "--epochs", "1_0"], ["--epochs must be an integer"]),
        (["check", "--baseline", "b", "--current", "c", "--tolerance", "٣"], ["--tolerance must be a finite number"]),
        # accepted without a word
        (["evaluate", "R", "--eps", "0.03,0"], ["--eps must be > 0, got 0.0"]),
        (["evaluate", "R", "--eps-l2", "0"], ["--eps-l2 must be > 0"]),
        (["train", "--method", "pgd-at", "--at-eps", "0"], ["--at-eps must be > 0"]),
        (["run", "--methods", "pgd-at", "--at-eps", "0"], ["--at-eps must be > 0"]),
        # row 17: --attacks without the adversarial suite is refused (not ignored)
        (
            ["evaluate", "R", "--suite", "clean", "--attacks", "fgsm"],
            ["--attacks has no effect without the adversarial"],
        ),
        (
            ["evaluate", "R", "--suite", "clean", "--corruptions", "fog"],
            ["--corruptions has no effect without the corr"],
        ),
        # argparse quoted an invalid choice whole
        (["show-boundaries", "--out", "o", "--problem", "x" * 5000], ["invalid choice"]),
    ],
)
def test_bad_numbers_and_flags_are_one_line(capsys, tmp_path, monkeypatch, argv, phrases):
    monkeypatch.chdir(tmp_path)
    status, err = _run(capsys, argv)
    _one_line(status, err, *phrases)
    assert len(err) < 400 and list(tmp_path.iterdir()) == []


def test_eval_batch_size_0_needs_a_gpu(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    status, err = _run(capsys, ["evaluate", "R", "--eval-batch-size", "0"])
    _one_line(status, err, "--eval-batch-size 0 sizes batches from free GPU memory")


def test_run_passes_a_method_setting_whose_default_is_none(capsys):
    """--at-eps (default None) was dropped from the planned runs: they trained at the headline ε."""
    assert main(["run", "--methods", "pgd-at", "--at-eps", "0.2", "--seeds", "0", "--plan"]) == 0
    assert "--at-eps 0.2 " in capsys.readouterr().out


def test_attacks_with_the_adversarial_suite_are_fine():
    from robustbench_mm.settings import EvalConfig

    EvalConfig(suites=["clean", "adversarial"], attacks=["fgsm"]).validate()
    with pytest.raises(
        UserError, match="^attacks has no effect without the adversarial suite; add adversarial to suites"
    ):
        EvalConfig(suites=["clean"], attacks=["fgsm"]).validate()


# ------------------------------------------------------------------------------ the Python API (row 15)


class _Tuple(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)), x


def _linear() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


@pytest.mark.parametrize(
    "model,dataset,phrase",
    [
        (lambda x: x, "digits", "got a function; wrap it in an nn.Module"),
        (None, "digits", "got NoneType"),
        ("runs/x/model.pt", "digits", "got a path; for a run directory use evaluate_run"),
        (_Tuple(), "digits", "the model returns a tuple of 2; evaluate needs the logits tensor alone"),
        (_linear(), 5, "dataset must be a name"),
        (_linear().double(), "digits", "the model holds float64 weights"),
        (_linear().half(), "digits", "the model holds float16 weights"),
    ],
)
def test_evaluate_api_refuses_wrong_arguments_in_one_line(model, dataset, phrase):
    import robustbench_mm as rb

    with pytest.raises(UserError) as error:
        rb.evaluate(model, dataset, suites=["clean"])
    message = str(error.value)
    assert phrase in message and "\n" not in message, message


def test_evaluate_api_still_scores_a_plain_model():
    import robustbench_mm as rb

    torch.manual_seed(0)
    rows = rb.evaluate(_linear(), "digits", suites=["clean"])
    accuracy = rows[(rows.suite == "clean") & (rows.metric == "accuracy")].value
    assert len(accuracy) == 1 and 0.0 <= float(accuracy.iloc[0]) <= 1.0


# ------------------------------------------------------------------------------ MNIST headers (row 13)


def _mnist(root: Path, rows: int = 28, cols: int = 28) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        body = rng.integers(0, 256, n * 784, dtype=np.uint8).tobytes()
        (raw / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, rows, cols) + body)
        labels = (np.arange(n) % 10).astype(np.uint8).tobytes()
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels)
    return raw


def test_mnist_header_dims_are_checked(tmp_path):
    from robustbench_mm.data.datasets import load_dataset

    raw = _mnist(tmp_path, 14, 56)  # the same byte count as 28x28
    before = sorted(p.name for p in raw.iterdir())
    with pytest.raises(UserError, match="holds 14x56 images; MNIST-format datasets are 28x28") as error:
        load_dataset("mnist", data_root=tmp_path)
    assert str(raw / "train-images-idx3-ubyte") in str(error.value)
    assert sorted(p.name for p in raw.iterdir()) == before


def test_mnist_of_28x28_loads(tmp_path):
    from robustbench_mm.data.datasets import load_dataset

    _mnist(tmp_path)
    assert load_dataset("mnist", data_root=tmp_path).train_x.shape == (30, 1, 28, 28)


# ------------------------------------------------------------------------------ image folders (rows 7, 8, 12)


def _folder(root: Path, size: int, classes=("a", "b"), per_class=(3, 2), mode: str = "L", array=None) -> Path:
    from PIL import Image

    for split, n in zip(("train", "test"), per_class, strict=True):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = Image.fromarray(array) if array is not None else Image.new(mode, (size, size), 40 * i)
                image.save(root / split / c / f"{i}.png")
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _train_refused(capsys, tmp_path, folder: Path, *extra: str) -> str:
    runs = tmp_path / "runs"
    argv = ["train", "--dataset", f"imagefolder:{folder}", "--out-dir", str(runs), "--epochs", "1", "--quiet"]
    status, err = _run(capsys, [*argv, *extra])
    assert status == 2 and "\n" not in err and err.startswith("mmbench: error: "), err
    assert not runs.exists()  # refused before any folder was made
    return err


def test_images_smaller_than_the_architecture_are_refused_before_training(capsys, tmp_path, cache):
    """Row 7: 1x1 PNGs used to reach the cnn's pooling ("Output size is too small")."""
    err = _train_refused(capsys, tmp_path, _folder(tmp_path / "one", 1))
    assert "architecture cnn needs images of at least 2x2, got 1x1" in err
    assert "mlp" in err  # the architectures that take them are named
    err = _train_refused(capsys, tmp_path, _folder(tmp_path / "five", 5), "--arch", "fast32")
    assert "architecture fast32 needs images of at least 8x8, got 5x5" in err


def test_a_class_left_without_training_images_is_refused(capsys, tmp_path, cache):
    """Row 12: one training image per class; the holdout takes a class's only image."""
    err = _train_refused(capsys, tmp_path, _folder(tmp_path / "single", 8, per_class=(1, 1)))
    assert "has no training image after the calibration holdout (1 of 2 images)" in err
    assert "lower --holdout-fraction" in err


def test_a_one_class_folder_is_refused(capsys, tmp_path, cache):
    err = _train_refused(capsys, tmp_path, _folder(tmp_path / "oneclass", 8, classes=("a",)))
    assert "has 1 class; a classifier needs at least 2" in err


def test_sixteen_bit_grey_folder_is_scaled_not_clipped(tmp_path, cache):
    """Row 8: every pixel of an I;16 folder used to read 255."""
    from robustbench_mm.data.datasets import load_dataset

    values = np.array([[0, 257], [32896, 65535]], dtype=np.uint16)
    data = load_dataset(f"imagefolder:{_folder(tmp_path / 'g16', 2, array=values)}")
    assert data.train_x.dtype == torch.uint8 and data.in_channels == 1
    assert data.train_x[0, 0].tolist() == [[0, 1], [128, 255]]


def test_python_numbers_past_float_range_are_one_line():
    """The API takes ints for floats: 10**400 overflowed float() into an OverflowError traceback."""
    from robustbench_mm.settings import EvalConfig, TrainConfig

    with pytest.raises(UserError, match="pgd_step_size must be a finite number, got an integer of 1329 bits"):
        EvalConfig(pgd_step_size=10**400).validate()
    with pytest.raises(UserError, match="lr must be <= 100"):
        TrainConfig(lr=10**300).validate()

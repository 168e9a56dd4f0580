"""Damaged MNIST-format files are refused in one line naming the file; stratified test subsets.

Fixtures are MNIST IDX files written byte for byte as torchvision reads them.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from robustbench_mm.cli import main
from robustbench_mm.core.errors import UserError
from robustbench_mm.data.datasets import load_dataset, stratified_subset


def _mnist(root: Path, n_train: int = 100, n_labels: int | None = None, folder: str = "MNIST") -> Path:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", 20)):
        labels = n if split == "t10k" or n_labels is None else n_labels
        with open(raw / f"{split}-images-idx3-ubyte", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + rng.integers(0, 256, n * 784, dtype=np.uint8).tobytes())
        with open(raw / f"{split}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">II", 2049, labels) + (np.arange(labels) % 10).astype(np.uint8).tobytes())
    return raw


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _refused(root: Path, pattern: str, name: str = "mnist") -> str:
    with pytest.raises(UserError, match=pattern) as error:
        load_dataset(name, data_root=root)
    message = str(error.value)
    assert "\n" not in message and "--download" not in message
    return message


def test_intact_fixture_loads(tmp_path):
    _mnist(tmp_path)
    data = load_dataset("mnist", data_root=tmp_path)
    assert data.train_x.shape == (100, 1, 28, 28) and len(data.train_y) == 100


def test_100_images_and_60_labels_are_refused_naming_both_files(tmp_path):
    raw = _mnist(tmp_path, n_train=100, n_labels=60)
    message = _refused(tmp_path, "holds 100 images but .* holds 60 labels")
    assert str(raw / "train-images-idx3-ubyte") in message and str(raw / "train-labels-idx1-ubyte") in message


@pytest.mark.parametrize(
    "file,keep",
    [
        ("train-images-idx3-ubyte", 16 + 50 * 784),
        ("t10k-images-idx3-ubyte", 16 + 5),
        ("train-labels-idx1-ubyte", 8 + 30),
        ("t10k-labels-idx1-ubyte", 8),
    ],
)
def test_a_file_cut_short_is_named_as_truncated(tmp_path, file, keep):
    raw = _mnist(tmp_path)
    _cut(raw / file, keep)
    message = _refused(tmp_path, "is truncated")
    assert message.startswith(str(raw / file))


def test_a_file_cut_inside_its_header_is_named_as_truncated(tmp_path):
    raw = _mnist(tmp_path)
    _cut(raw / "train-images-idx3-ubyte", 7)
    assert _refused(tmp_path, "is truncated: 7 bytes").startswith(str(raw / "train-images-idx3-ubyte"))


def test_wrong_magic_number_and_bad_labels_are_refused(tmp_path):
    raw = _mnist(tmp_path / "a")
    (raw / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2051, 20) + bytes(20))
    _refused(tmp_path / "a", "not an MNIST-format file .*expected 2049")
    raw = _mnist(tmp_path / "b", folder="FashionMNIST")
    labels = raw / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1] + bytes([200]))
    _refused(tmp_path / "b", "holds label 200; labels must be 0..9", name="fashion-mnist")


def test_truncated_file_through_the_cli_is_one_line_and_exit_2(tmp_path, capsys):
    raw = _mnist(tmp_path)
    _cut(raw / "train-images-idx3-ubyte", 1000)
    assert main(["train", "--dataset", "mnist", "--data-root", str(tmp_path), "--out-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train-images-idx3-ubyte is truncated" in err
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------- stratified_subset


def test_class_sorted_labels_give_an_equal_share_per_class():
    labels = torch.arange(10).repeat_interleave(50)  # sorted by class, as an image folder is
    index = stratified_subset(labels, 100, seed=0)
    assert torch.equal(index, index.sort().values) and len(set(index.tolist())) == 100
    assert torch.bincount(labels[index], minlength=10).tolist() == [10] * 10


def test_same_seed_same_subset_and_subsets_nest():
    labels = torch.from_numpy(np.random.default_rng(3).integers(0, 10, 2000))
    a, b = stratified_subset(labels, 300, seed=1), stratified_subset(labels, 300, seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, stratified_subset(labels, 300, seed=2))
    small, large = (
        set(stratified_subset(labels, 150, seed=1).tolist()),
        set(stratified_subset(labels, 450, seed=1).tolist()),
    )
    assert small <= set(a.tolist()) <= large


def test_remainder_and_small_classes():
    labels = torch.tensor([0] * 3 + [1] * 40 + [2] * 40)
    counts = torch.bincount(labels[stratified_subset(labels, 30, seed=0)]).tolist()
    assert counts == [3, 14, 13]  # class 0 gives all it has; the odd one goes to the lower label
    assert torch.equal(stratified_subset(labels, 500, seed=0), torch.arange(83))
    with pytest.raises(UserError, match="> 0"):
        stratified_subset(labels, 0, seed=0)

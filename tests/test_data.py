"""Datasets load through the same code a user runs, from fixtures in the real on-disk formats."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from robustbench_mm.core.errors import UserError
from robustbench_mm.data.datasets import load_dataset, random_crop_flip, to_float


def test_digits_split_is_fixed_stratified_and_in_unit_range(digits):
    assert digits.train_x.shape == (1437, 1, 8, 8) and digits.test_x.shape == (360, 1, 8, 8)
    assert digits.train_x.dtype == torch.float32
    assert 0.0 <= float(digits.train_x.min()) and float(digits.train_x.max()) <= 1.0
    counts = torch.bincount(digits.test_y, minlength=10).float()
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 per class
    again = load_dataset("digits")
    assert torch.equal(again.test_x, digits.test_x) and torch.equal(again.train_y, digits.train_y)
    assert digits.crop_padding == 0 and not digits.flip and digits.default_arch == "cnn"


def _write_idx_images(path, images: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(images), images.shape[1], images.shape[2]))
        f.write(images.astype(np.uint8).tobytes())


def _write_idx_labels(path, labels: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)))
        f.write(labels.astype(np.uint8).tobytes())


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_idx_fixture_loads(tmp_path, name, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (6, 28, 28))
    test = rng.integers(0, 256, (4, 28, 28))
    _write_idx_images(raw / "train-images-idx3-ubyte", train)
    _write_idx_labels(raw / "train-labels-idx1-ubyte", np.arange(6) % 10)
    _write_idx_images(raw / "t10k-images-idx3-ubyte", test)
    _write_idx_labels(raw / "t10k-labels-idx1-ubyte", np.arange(4) % 10)
    data = load_dataset(name, data_root=tmp_path)
    assert data.train_x.shape == (6, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert torch.equal(data.train_x[:, 0], torch.from_numpy(train.astype(np.uint8)))
    assert data.test_y.tolist() == [0, 1, 2, 3]
    assert data.num_classes == 10 and data.default_arch == "fast28"
    assert float(to_float(data.test_x).max()) <= 1.0


def _cifar_batch(path, images: np.ndarray, labels, key: str) -> None:
    with open(path, "wb") as f:
        pickle.dump({"data": images.reshape(len(images), -1), key: list(labels)}, f)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_pickle_fixture_loads(tmp_path, monkeypatch, name):
    import torchvision.datasets as tvd

    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    folder = tmp_path / cls.base_folder
    folder.mkdir()
    rng = np.random.default_rng(1)
    key = "labels" if name == "cifar10" else "fine_labels"
    images = {}
    for file_name, _ in cls.train_list + cls.test_list:
        images[file_name] = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
        _cifar_batch(folder / file_name, images[file_name], [0, 1, 2], key)
    classes = [f"class{i}" for i in range(10 if name == "cifar10" else 100)]
    meta_key = cls.meta["key"]
    with open(folder / cls.meta["filename"], "wb") as f:
        pickle.dump({meta_key: classes}, f)
    # The real files carry md5 sums that a tiny fixture cannot match; everything else is real.
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(cls, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    data = load_dataset(name, data_root=tmp_path)
    n_train = 3 * len(cls.train_list)
    assert data.train_x.shape == (n_train, 3, 32, 32) and data.test_x.shape == (3, 3, 32, 32)
    assert torch.equal(data.test_x, torch.from_numpy(images[cls.test_list[0][0]]))
    # CIFAR-10 defaults to the CPU-fast net (its recipe is measured); CIFAR-100 keeps the paper's
    assert data.crop_padding == 2 and data.flip
    assert data.default_arch == ("fast32" if name == "cifar10" else "preactresnet18")
    assert data.classes == classes


def test_svhn_mat_fixture_loads(tmp_path, monkeypatch):
    import scipy.io
    import torchvision.datasets as tvd

    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        x = rng.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
        scipy.io.savemat(tmp_path / tvd.SVHN.split_list[split][1], {"X": x, "y": np.array([[10], [1], [2], [3], [4]])})
    monkeypatch.setattr(tvd.SVHN, "_check_integrity", lambda self: True)
    data = load_dataset("svhn", data_root=tmp_path)
    assert data.train_x.shape == (5, 3, 32, 32)
    assert data.train_y.tolist() == [0, 1, 2, 3, 4]  # SVHN's label 10 means digit 0
    assert data.crop_padding == 2 and not data.flip


def _image_folder(root, size=(12, 12), classes=("cat", "dog"), per_class=3):
    for split in ("train", "test"):
        for i, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for j in range(per_class):
                array = np.full((*size, 3), 40 * i + j, dtype=np.uint8)
                Image.fromarray(array).save(folder / f"{j}.png")


def test_imagefolder_loads(tmp_path):
    _image_folder(tmp_path)
    data = load_dataset(f"imagefolder:{tmp_path}")
    assert data.train_x.shape == (6, 3, 12, 12) and data.classes == ["cat", "dog"]
    assert data.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    assert int(data.train_x[3, 0, 0, 0]) == 40


def test_imagefolder_mixed_sizes_refused(tmp_path):
    _image_folder(tmp_path)
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(tmp_path / "train" / "cat" / "big.png")
    with pytest.raises(UserError, match="mixed sizes"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_missing_data_root_explains_how_to_get_data(tmp_path):
    with pytest.raises(UserError, match="--data-root"):
        load_dataset("cifar10")
    with pytest.raises(UserError, match="--download"):
        load_dataset("mnist", data_root=tmp_path)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UserError, match="valid: .*cifar10.*digits"):
        load_dataset("imagenet")


def test_random_crop_flip_is_a_seeded_per_example_crop():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    a = random_crop_flip(x, 2, True, torch.Generator().manual_seed(0))
    b = random_crop_flip(x, 2, True, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    # Every output pixel is either zero padding or a pixel of the same image.
    for i in range(2):
        values = set(a[i].flatten().tolist()) - {0.0}
        assert values <= set(x[i].flatten().tolist())
    same = random_crop_flip(x, 0, False, torch.Generator().manual_seed(0))
    assert torch.equal(same, x)


def test_an_image_folder_run_evaluates_from_any_directory(tmp_path, monkeypatch):
    """A relative imagefolder path is stored absolute: the run evaluates from elsewhere."""
    from test_bad_input import _image_folder

    from robustbench_mm.cli import main

    monkeypatch.chdir(tmp_path)
    _image_folder(tmp_path / "pets")
    assert (
        main(
            [
                "train",
                "--dataset",
                "imagefolder:pets",
                "--epochs",
                "1",
                "--batch-size",
                "2",
                "--quiet",
                "--out-dir",
                "runs",
            ]
        )
        == 0
    )
    (run,) = (tmp_path / "runs").iterdir()
    assert f"imagefolder:{tmp_path / 'pets'}" in (run / "config.toml").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["evaluate", str(run), "--suites", "clean"]) == 0
    assert (run / "eval" / "metrics.csv").exists()

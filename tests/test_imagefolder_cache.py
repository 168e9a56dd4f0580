"""Image folders: the uint8 cache (hit, invalidation, opt-out), grey folders, link loops.

Fixtures are real image files (PNG and JPEG) in torchvision's ImageFolder layout; the cache
goes to this test session's XDG_CACHE_HOME (see conftest.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustbench_mm.core.errors import UserError
from robustbench_mm.data import imagefolder
from robustbench_mm.data.datasets import load_dataset


def _folder(root: Path, per_class: int = 3, mode: str = "RGB", ext: str = "png") -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(per_class):
                shape = (6, 6) if mode == "L" else (6, 6, 3)
                pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(pixels, mode).save(
                    folder / f"{index}.{ext}", **({"quality": 95} if ext == "jpg" else {})
                )
    return root


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        array = np.asarray(image)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr(imagefolder, "decode_splits", refuse)


def test_second_load_reads_the_cache_with_the_same_tensors(tmp_path, monkeypatch):
    root = _folder(tmp_path / "pets")
    first = load_dataset(f"imagefolder:{root}")
    entries = sorted(p.name for p in imagefolder.cache_dir(root).iterdir())
    assert any(name.endswith(".json") for name in entries) and len(entries) == 5  # manifest + 2 splits x 2 arrays
    _no_decoding(monkeypatch)
    second = load_dataset(f"imagefolder:{root}")
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert (first.mean, first.std, first.classes) == (second.mean, second.std, second.classes)
    # the pixels are the files' pixels, in torchvision's order (class, then file name)
    assert np.array_equal(second.train_x[4].numpy(), _pixels(root / "train" / "dog" / "1.png"))
    assert second.train_y.tolist() == [0, 0, 0, 1, 1, 1]


def test_a_changed_file_invalidates_the_cache(tmp_path, monkeypatch):
    root = _folder(tmp_path / "pets")
    load_dataset(f"imagefolder:{root}")
    target = root / "test" / "cat" / "2.png"
    Image.fromarray(np.full((6, 6, 3), 7, dtype=np.uint8)).save(target)
    os.utime(target, ns=(1, 1))  # a new mtime whatever the file system's resolution
    data = load_dataset(f"imagefolder:{root}")
    assert int(data.test_x[2].max()) == 7 and int(data.test_x[2].min()) == 7
    keys = {p.name.split(".")[0] for p in imagefolder.cache_dir(root).iterdir()}
    assert len(keys) == 1  # the stale entry is gone
    _no_decoding(monkeypatch)  # and the new one is used from now on
    assert int(load_dataset(f"imagefolder:{root}").test_x[2].max()) == 7


def test_added_and_removed_files_invalidate_the_cache(tmp_path):
    root = _folder(tmp_path / "pets")
    assert len(load_dataset(f"imagefolder:{root}").train_y) == 6
    (root / "train" / "dog" / "0.png").unlink()
    assert len(load_dataset(f"imagefolder:{root}").train_y) == 5
    Image.fromarray(np.zeros((6, 6, 3), dtype=np.uint8)).save(root / "train" / "cat" / "9.png")
    assert load_dataset(f"imagefolder:{root}").train_y.tolist() == [0, 0, 0, 0, 1, 1]


def test_no_cache_writes_nothing_and_a_damaged_cache_is_rebuilt(tmp_path):
    root = _folder(tmp_path / "pets")
    reference = load_dataset(f"imagefolder:{root}", cache=False)
    assert not imagefolder.cache_dir(root).exists()
    load_dataset(f"imagefolder:{root}")
    for array in imagefolder.cache_dir(root).glob("*.train.images.npy"):
        array.write_bytes(array.read_bytes()[:40])  # cut short, as by a full disk
    again = load_dataset(f"imagefolder:{root}")
    assert torch.equal(again.train_x, reference.train_x)


def test_read_only_data_folder_is_cached_elsewhere(tmp_path):
    root = _folder(tmp_path / "pets")
    for path in sorted(root.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    root.chmod(0o555)
    try:
        load_dataset(f"imagefolder:{root}")
        assert imagefolder.cache_dir(root).is_dir() and not imagefolder.cache_dir(root).is_relative_to(root)
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_grey_folder_gives_one_channel_and_colour_wins_when_mixed(tmp_path):
    grey = _folder(tmp_path / "grey", mode="L")
    data = load_dataset(f"imagefolder:{grey}", cache=False)
    assert data.train_x.shape == (6, 1, 6, 6)
    assert np.array_equal(data.train_x[0].numpy(), _pixels(grey / "train" / "cat" / "0.png"))
    Image.fromarray(np.full((6, 6, 3), (10, 20, 30), dtype=np.uint8)).save(grey / "test" / "dog" / "5.png")
    mixed = load_dataset(f"imagefolder:{grey}", cache=False)
    assert mixed.train_x.shape == (6, 3, 6, 6)
    assert mixed.test_x[-1, :, 0, 0].tolist() == [10, 20, 30]
    assert torch.equal(mixed.train_x[0, 0], mixed.train_x[0, 2])  # grey images repeat their channel


def test_jpeg_pixels_match_pil(tmp_path):
    root = _folder(tmp_path / "jpegs", ext="jpg")
    data = load_dataset(f"imagefolder:{root}", cache=False)
    with Image.open(root / "test" / "dog" / "2.jpg") as image:
        expected = np.asarray(image.convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(data.test_x[5].numpy(), expected)


def test_symlink_loop_in_a_class_folder_is_refused_naming_it(tmp_path):
    root = _folder(tmp_path / "pets")
    (root / "train" / "cat" / "again").symlink_to(root / "train" / "cat", target_is_directory=True)
    with pytest.raises(UserError, match=r"cat/again is the folder .*/train/cat again \(a symbolic link loop") as error:
        load_dataset(f"imagefolder:{root}")
    assert "\n" not in str(error.value)


def test_a_link_to_another_class_folder_is_refused(tmp_path):
    root = _folder(tmp_path / "pets")
    (root / "train" / "cat" / "dogs").symlink_to(root / "train" / "dog", target_is_directory=True)
    with pytest.raises(UserError, match="symbolic link loop or duplicate"):
        load_dataset(f"imagefolder:{root}")


def test_progress_bar_only_when_asked(tmp_path, capsys):
    root = _folder(tmp_path / "pets")
    load_dataset(f"imagefolder:{root}", cache=False, progress=False)
    assert "decoding" not in capsys.readouterr().err
    load_dataset(f"imagefolder:{root}", cache=False, progress=True)
    assert "decoding train" in capsys.readouterr().err


def test_class_lists_in_messages_are_capped(tmp_path):
    root = tmp_path / "many"
    for split, count in (("train", 40), ("test", 39)):
        for index in range(count):
            (root / split / f"c{index:02d}").mkdir(parents=True)
            Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(root / split / f"c{index:02d}" / "0.png")
    with pytest.raises(UserError, match="differ from test classes") as error:
        load_dataset(f"imagefolder:{root}", cache=False)
    assert "40 in all" in str(error.value) and "c30" not in str(error.value)


def test_a_class_sorted_folder_gives_a_stratified_subset_of_n_test(tmp_path):
    """--n-test 100 on a folder sorted by class: 10 of each of 10 classes, the same draw every time
    (the first 100 files would all be class 0); --max-examples is the same setting."""
    from PIL import Image

    from robustbench_mm.cli import build_parser
    from robustbench_mm.cli.commands import eval_config
    from robustbench_mm.evaluation.runner import test_indices
    from robustbench_mm.settings import EvalConfig

    root = tmp_path / "sorted"
    for split, count in (("train", 2), ("test", 30)):
        for label in range(10):
            folder = root / split / f"c{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("L", (8, 8), 20 * label + i).save(folder / f"{i:03d}.png")
    data = load_dataset(f"imagefolder:{root}", cache=False)
    picked = test_indices(data, EvalConfig(n_test=100))
    assert torch.bincount(data.test_y[picked], minlength=10).tolist() == [10] * 10
    assert torch.equal(picked, test_indices(data, EvalConfig(n_test=100)))
    assert not torch.equal(picked, test_indices(data, EvalConfig(n_test=100, seed=1)))
    assert len(test_indices(data, EvalConfig(n_test=0))) == 300  # 0: the whole test set
    for flag in ("--n-test", "--max-examples"):
        assert eval_config(build_parser().parse_args(["evaluate", "run", flag, "100"])).n_test == 100

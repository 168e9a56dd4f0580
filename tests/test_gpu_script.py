"""The CIFAR-10 GPU run on a CPU: its data tarball (benchmarks/gpu/cifar10_data.py) and a smoke
test of the one command it is, ``mmbench run --preset cifar10-gpu``, on a tiny synthetic folder."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "gpu"))

import cifar10_data  # noqa: E402

from robustbench_mm.core.errors import UserError  # noqa: E402
from robustbench_mm.data.datasets import load_dataset  # noqa: E402


def _folder(root: Path, per_class: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def test_tarball_round_trip_keeps_every_pixel_and_label(tmp_path):
    source = _folder(tmp_path / "cifar10")
    archive = tmp_path / "c.tar.gz"
    assert cifar10_data.make_tar(source, archive) == 12
    folder, fresh = cifar10_data.unpack(archive, tmp_path / "unpacked")
    assert fresh and folder.name == "cifar10"
    a, b = load_dataset(f"imagefolder:{source}"), load_dataset(f"imagefolder:{folder}")
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_x, b.test_x)
    assert torch.equal(a.train_y, b.train_y) and a.classes == b.classes == ["cat", "dog"]
    assert cifar10_data.unpack(archive, tmp_path / "unpacked") == (folder, False)  # the same archive: reused


def test_per_class_takes_the_first_images_of_each_class(tmp_path):
    source = _folder(tmp_path / "cifar10", per_class=5)
    archive = tmp_path / "small.tar"
    assert cifar10_data.make_tar(source, archive, per_class=2) == 8
    folder, _ = cifar10_data.unpack(archive, tmp_path / "out")
    assert sorted(p.name for p in (folder / "train" / "dog").iterdir()) == ["0.png", "1.png"]


def test_a_broken_tarball_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball at all")
    with pytest.raises(UserError, match="cannot unpack") as info:
        cifar10_data.unpack(bad, tmp_path / "out")
    assert "\n" not in str(info.value)


def test_cifar10_gpu_preset_runs_end_to_end_on_a_tiny_synthetic_folder(tmp_path, capsys):
    """The preset's own settings (overlapped launcher, image folder, the floor, md + html, 2,000
    stratified test images) with only the sizes shrunk for a CPU."""
    from robustbench_mm.cli import main
    from robustbench_mm.settings.presets import load_preset

    preset = load_preset("cifar10-gpu")
    assert preset.run["launcher"] == "overlapped" and preset.run["seeds"] == [0, 1]
    assert preset.train["arch"] == "preactresnet18" and preset.train["epochs"] >= 30 and preset.train["amp"] == "on"
    assert preset.eval["n_test"] >= 2000 and preset.run["methods"] == ["erm", "mixup", "manifold-mixup"]
    folder = cifar10_data.synthetic_imagefolder(tmp_path / "cifar10", 6, 3)
    tiny = ["--dataset", f"imagefolder:{folder}", "--arch", "cnn", "--epochs", "1", "--batch-size", "16"]
    tiny += ["--methods", "erm,manifold-mixup", "--seeds", "0", "--suite", "clean,calibration", "--amp", "off"]
    where = ["--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "report"), "--quiet"]
    assert main(["run", "--preset", "cifar10-gpu", *tiny, *where]) == 0
    report = pd.read_csv(tmp_path / "report" / "report.csv")
    assert set(report["method"]) == {"erm", "manifold-mixup"}
    assert (tmp_path / "report" / "report.html").exists()
    clean = report[(report.suite == "clean") & (report.metric == "accuracy")]
    assert len(clean) == 2 and (clean["n"] == 30).all()  # every test image (fewer than the preset's 2,000)

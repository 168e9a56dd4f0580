"""The CPU-checkable parts of benchmarks/gpu/cifar10_run.py: the data tarball, the budget check,
the summary table. (The whole script's smoke test, ``--tiny``, takes minutes: its docstring.)"""

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
import cifar10_run  # noqa: E402
import cifar10_summary  # noqa: E402

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


def test_budget_check_exit_status_follows_the_limit(capsys):
    assert cifar10_run.main(["--budget-check"]) == 0  # the default work fits the default 7.5 minutes
    assert "fits in --max-minutes 7.5" in capsys.readouterr().out
    assert cifar10_run.main(["--budget-check", "--max-minutes", "5"]) == 1


def test_summary_table_reads_the_report_rows(tmp_path):
    rows = [
        ("erm", "clean", "clean", 0.0, 0.93, 0.01),
        ("erm", "adversarial", "fgsm", 2 / 255, 0.41, 0.02),
        ("erm", "adversarial", "fgsm", 8 / 255, 0.12, 0.03),
        ("erm", "adversarial", "pgd-linf", 8 / 255, 0.0, 0.0),
        ("erm", "adversarial", "fgsm", 4 / 255, 0.99, 0.0),
    ]
    table = pd.DataFrame(
        [
            {"method": m, "suite": s, "test": t, "severity": e, "metric": "accuracy", "mean": v, "std": sd, "seeds": 2}
            for m, s, t, e, v, sd in rows
        ]
    )
    table.to_csv(tmp_path / "report.csv", index=False, float_format="%.6g")  # as the report writes it
    pd.DataFrame([{"method": "erm", "eps": 0.03, "accuracy": a} for a in (0.2, 0.3)]).to_csv(tmp_path / "f.csv")
    lines = cifar10_summary.fgsm_table(tmp_path / "report.csv", tmp_path / "f.csv")
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    row = dict(zip(head, cells, strict=True))
    assert (
        row["clean"] == "93.00 ± 1.00" and row["FGSM 2/255"] == "41.00 ± 2.00" and row["FGSM 8/255"] == "12.00 ± 3.00"
    )
    assert row["FGSM 1/255"] == "–" and row["FGSM 0.03 (pixels; preset)"] == "25.00 ± 7.07"
    assert row["paper Table 7 (FGSM, 1,200 ep.)"] == "36.32" and row["PGD-10 8/255"] == "0.00 ± 0.00"

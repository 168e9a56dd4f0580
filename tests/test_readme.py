"""The README's promises that code can check: its Python block runs as written, and the
Python API takes a dataset's folder where the CLI does (``data_root=``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import robustbench_mm as rb
from robustbench_mm.core.errors import UserError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_block_runs_as_written(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    df = namespace["df"]
    worst = df.query("test == 'worst-case'")
    assert len(worst) >= 3 and worst["value"].between(0, 1).all()
    assert "severity" in capsys.readouterr().out


def _mnist_folder(root: Path) -> Path:
    from test_data import _write_idx_images, _write_idx_labels

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 30)):
        _write_idx_images(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return root


def test_evaluate_takes_mnist_from_its_data_root(tmp_path):
    root = _mnist_folder(tmp_path / "data")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    df = rb.evaluate(model, "mnist", data_root=str(root), suites=["clean"])
    (accuracy,) = df.query("suite == 'clean'")["value"]
    assert 0 <= accuracy <= 1 and int(df["n"].iloc[0]) == 30
    with pytest.raises(UserError, match="data_root="):  # worded for a Python caller too
        rb.evaluate(model, "mnist", suites=["clean"])

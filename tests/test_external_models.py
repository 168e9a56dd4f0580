"""``mmbench evaluate --model``: TorchScript, torch.export and state-dict files, and RobustBench's
zoo offline, through the suites and into a report beside trained runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_mm.cli import main
from robustbench_mm.models import create_model


@pytest.fixture(scope="module")
def digits_model(digits) -> nn.Module:
    """A digits cnn, briefly trained so its accuracies mean something (the same every time)."""
    from robustbench_mm.data.datasets import to_float

    torch.manual_seed(0)
    model = create_model("cnn", 10, 1, 8, digits.mean, digits.std)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = to_float(digits.train_x), digits.train_y
    for _ in range(2):
        for start in range(0, len(y), 64):
            loss = nn.functional.cross_entropy(model(x[start : start + 64]), y[start : start + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def _metrics(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "eval" / "metrics.csv")


def _clean(folder: Path) -> float:
    df = _metrics(folder)
    return float(df.query("suite == 'clean' and metric == 'accuracy'")["value"].iloc[0])


def _evaluate(tmp_path: Path, *flags: str) -> int:
    return main(["evaluate", "--dataset", "digits", "--out-dir", str(tmp_path / "out"), "--quiet", *flags])


def test_torchscript_export_and_state_dict_files_score_like_the_model(tmp_path, digits_model, digits):
    import robustbench_mm as rb

    (expected,) = rb.evaluate(digits_model, digits, suites=["clean"]).query("metric == 'accuracy'")["value"]
    x = torch.rand(4, 1, 8, 8)
    torch.jit.save(torch.jit.trace(digits_model, x), tmp_path / "scripted.pt")
    batch = torch.export.Dim("batch")
    program = torch.export.export(digits_model, (x,), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, tmp_path / "exported.pt2")
    torch.save(digits_model.state_dict(), tmp_path / "weights.pt")
    for name, flags in (
        ("scripted", []),
        ("exported", []),
        ("weights", ["--arch", "cnn"]),
    ):
        suffix = ".pt2" if name == "exported" else ".pt"
        assert _evaluate(tmp_path, "--model", str(tmp_path / f"{name}{suffix}"), "--suites", "clean", *flags) == 0
        folder = tmp_path / "out" / f"{name}-s0"
        assert _clean(folder) == pytest.approx(expected, abs=1e-6), name  # metrics.csv keeps 6 digits
        assert set(_metrics(folder)[["method", "seed"]].itertuples(index=False)) == {(name, 0)}


def test_bad_model_files_are_one_line_errors(tmp_path, capsys, digits_model):
    torch.save(digits_model.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    cases = [
        (["--model", str(tmp_path / "weights.pt")], "a state dict needs --arch"),
        (["--model", str(tmp_path / "weights.pt"), "--arch", "mlp"], "do not fit a mlp model"),
        (["--model", str(tmp_path / "junk.pt"), "--arch", "cnn"], "cannot read .* as a state dict"),
        (["--model", str(tmp_path / "missing.pt")], "model file not found"),
        (["--model", "robustbench:Standard", "--robustbench-dir", str(tmp_path)], "zoo covers cifar10"),
    ]
    for flags, message in cases:
        assert _evaluate(tmp_path, *flags, "--suites", "clean") == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and pytest.importorskip("re").search(message, err), err
    assert main(["evaluate", "--arch", "cnn", str(tmp_path)]) == 2
    assert "--arch applies to --model only" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written for refused input


def test_a_saved_model_goes_through_every_default_suite_and_into_a_report(tmp_path, digits_model, digits):
    from robustbench_mm.settings import TrainConfig
    from robustbench_mm.training.loop import train

    torch.jit.save(torch.jit.trace(digits_model, torch.rand(2, 1, 8, 8)), tmp_path / "mine.pt")
    fast = ["--attacks", "fgsm", "--eps", "0.1", "--corruptions", "gaussian_noise", "--severities", "3"]
    assert _evaluate(tmp_path, "--model", str(tmp_path / "mine.pt"), "--label", "my-model", *fast) == 0
    folder = tmp_path / "out" / "my-model-s0"
    suites = set(_metrics(folder)["suite"])
    # TorchScript has no hidden states to read: every default suite but representation
    from robustbench_mm.evaluation.catalog import default_suites

    assert suites >= set(default_suites()) - {"representation"}
    run = train(TrainConfig(epochs=2), out_dir=str(tmp_path / "runs"), progress=False, data=digits, log=lambda s: None)
    assert main(["evaluate", str(run.run_dir), "--quiet", *fast]) == 0
    assert main(["report", str(run.run_dir), str(folder), "--out", str(tmp_path / "report"), "--no-plots"]) == 0
    report = pd.read_csv(tmp_path / "report" / "report.csv")
    assert {"erm", "my-model"} <= set(report["method"])


# ------------------------------------------------------------------------------ RobustBench's zoo


class _TinyCifar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@pytest.fixture
def zoo_entry():
    """A RobustBench zoo entry whose weights the test writes itself (no network)."""
    pytest.importorskip("geotorch")  # robustbench's own imports
    from robustbench_mm.models.robustbench_zoo import _robustbench

    _, model_dicts, BenchmarkDataset, ThreatModel = _robustbench()
    entries = model_dicts[BenchmarkDataset("cifar10")][ThreatModel("Linf")]
    entries["TinyTest2026"] = {"model": _TinyCifar, "gdrive_id": "none"}
    yield "TinyTest2026"
    entries.pop("TinyTest2026")


def _cifar_like_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in range(10):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(2):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return root


def test_a_robustbench_zoo_model_loads_offline_and_is_evaluated(tmp_path, capsys, zoo_entry):
    from robustbench_mm.models.robustbench_zoo import load_zoo_model

    data = _cifar_like_folder(tmp_path / "data")
    spec = f"robustbench:cifar10/Linf/{zoo_entry}"
    flags = [
        "evaluate",
        "--model",
        spec,
        "--dataset",
        f"imagefolder:{data}",
        "--robustbench-dir",
        str(tmp_path / "zoo"),
    ]
    flags += ["--out-dir", str(tmp_path / "out"), "--suites", "clean,representation", "--quiet"]
    assert main(flags) == 2
    err = capsys.readouterr().err
    expected = tmp_path / "zoo" / "cifar10" / "Linf" / f"{zoo_entry}.pt"
    assert f"RobustBench expects the weights of {zoo_entry} at {expected}" in err and "load_model(" in err
    torch.manual_seed(0)
    reference = _TinyCifar().eval()
    expected.parent.mkdir(parents=True)
    torch.save({"state_dict": {"module." + k: v for k, v in reference.state_dict().items()}}, expected)
    loaded = load_zoo_model(spec, "imagefolder", tmp_path / "zoo")
    x = torch.rand(5, 3, 32, 32)
    assert torch.equal(loaded.model(x), reference(x)) and loaded.label == f"robustbench:{zoo_entry}"
    assert loaded.model.state_names() == ["layer0", "penultimate"]
    assert main(flags) == 0
    df = _metrics(tmp_path / "out" / f"robustbench_{zoo_entry}-s0")
    assert set(df["method"]) == {f"robustbench:{zoo_entry}"} and {"clean", "representation"} <= set(df["suite"])

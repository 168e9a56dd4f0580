"""Shared fixtures: three real digits models (erm, mixup, manifold-mixup) trained once per session."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from robustbench_mm.data.datasets import load_dataset
from robustbench_mm.settings import TrainConfig

METHODS = ("erm", "mixup", "manifold-mixup")


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, digits) -> dict[str, Path]:
    """Run directories of the three default digits models (seed 0), trained with default settings."""
    from robustbench_mm.training.loop import train

    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for method in METHODS:
        result = train(TrainConfig(method=method), out_dir=str(out), progress=False, data=digits, log=lambda s: None)
        runs[method] = result.run_dir
    return runs


@pytest.fixture(scope="session")
def trained_models(trained_runs):
    """The three digits models loaded on the CPU in eval mode: {method: model}."""
    from robustbench_mm.store.checkpoint import load_model

    return {method: load_model(run / "model.pt")[0] for method, run in trained_runs.items()}


@pytest.fixture(scope="session", autouse=True)
def _private_cache_folder(tmp_path_factory):
    """Image-folder caches go to a folder of this test session, never the user's ~/.cache."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """One torch thread for the whole test session.

    On a 2-core machine a second OpenMP thread makes these small tensors' ops many times
    slower whenever anything else runs (measured: training three digits models took 190 s
    instead of 10 s under load), and no test here needs intra-op parallelism.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def sigint_ignored():
    """This process ignores SIGINT, as a shell without job control starts a background command
    (nohup, ``&``, some CI runners): what it starts inherits that unless we reset it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)

"""Evaluating a model that was not trained here (``mmbench evaluate --model``) into a folder a
report reads beside trained runs.

The folder ``<out_dir>/<label>-s0`` holds the same published evaluation a run directory holds
(``eval/``), under the identity (method = the label, seed 0), so ``mmbench report`` puts the
model in every table and figure as one more method. It holds no model.pt: the evaluation
record's model digest is that of the source file (the TorchScript/export file, the state
dict, or RobustBench's weights file).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from robustbench_mm.core.results import Evaluation
from robustbench_mm.data.datasets import load_dataset
from robustbench_mm.evaluation.catalog import default_suites
from robustbench_mm.evaluation.runner import evaluate_details
from robustbench_mm.settings import EvalConfig
from robustbench_mm.settings.external import ExternalModelOptions

NO_HIDDEN_STATES = ("representation",)  # suites that need a model's hidden states


@dataclass
class ExternalRun:
    """What publishing an evaluation needs of a run: its folder, and the file its model came from."""

    path: Path
    source: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_path(self) -> Path:
        return self.source


def run_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:120] + "-s0"


def evaluate_model(
    options: ExternalModelOptions, config: EvalConfig, progress: str = "off", say=print
) -> tuple[Path, Evaluation]:
    """Load ``options.model`` for ``options.dataset``, evaluate it and publish the result."""
    from robustbench_mm.models.robustbench_zoo import load_zoo_model
    from robustbench_mm.models.saved import load_file
    from robustbench_mm.store import accumulate

    assert options.model is not None and options.dataset is not None  # checked by the options' validation
    data = load_dataset(options.dataset, config.data_root, config.download)
    if options.model.startswith("robustbench:"):
        loaded = load_zoo_model(options.model, data.name, options.robustbench_dir)
    else:
        loaded = load_file(options.model, options.arch, data)
    config = dataclasses.replace(config)
    if config.suites is None:
        config.suites = default_suites()
        if not callable(getattr(loaded.model, "state_names", None)):
            config.suites = [s for s in config.suites if s not in NO_HIDDEN_STATES]
            say(f"{loaded.label}: no hidden states to read, so no {', '.join(NO_HIDDEN_STATES)} suite")
    label = options.label or loaded.label
    run = ExternalRun(Path(options.out_dir).expanduser().resolve() / run_name(label), loaded.source)
    identity = {"run": run.name, "dataset": data.name, "arch": loaded.arch, "method": label, "seed": 0}
    evaluation = evaluate_details(loaded.model, data, None, config, identity=identity, progress=progress)
    run.path.mkdir(parents=True, exist_ok=True)
    accumulate.publish(run, evaluation, config)
    return run.path, evaluation

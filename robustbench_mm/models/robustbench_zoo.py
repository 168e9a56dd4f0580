"""``--model robustbench:NAME``: a published model from RobustBench's zoo, offline.

``robustbench:NAME`` is the zoo entry NAME for the evaluated dataset (cifar10, cifar100 or
imagenet) under the L∞ threat model; ``robustbench:DATASET/THREAT/NAME`` names both (THREAT:
Linf, L2 or corruptions). The weights are read from RobustBench's own model folder layout,
``<robustbench_dir>/<dataset>/<threat>/<NAME>.pt``, through ``robustbench.utils.load_model``, so
its per-entry fixes (prefixes, checkpoint keys) apply. Nothing is downloaded: a missing file is
one line saying where RobustBench expects it and how to fetch it once on a machine with network.

Zoo models take [0, 1] images and normalize inside, as every model here; the wrapper adds mix
points on none of its modules but reads the classifier's input, so the representation lens can
measure the penultimate layer.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip, clip_path, plain
from robustbench_mm.models.hooks import HookedNet
from robustbench_mm.models.saved import LoadedModel
from robustbench_mm.models.thirdparty import last_linear

THREATS = ("Linf", "L2", "corruptions")
DATASETS = ("cifar10", "cifar100", "imagenet")


def _robustbench() -> Any:
    """The package's model zoo and loader (optional extra: ``pip install 'robustbench-mm[robustbench]'``)."""
    try:
        importlib.import_module("autoattack")
    except ImportError:
        # PyPI's robustbench imports ``autoattack``, which PyPI ships as ``pyautoattack``
        try:
            sys.modules["autoattack"] = importlib.import_module("pyautoattack")
        except ImportError:
            pass
    try:
        from robustbench import utils
        from robustbench.model_zoo import model_dicts
        from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    except ImportError as exc:
        raise UserError(
            f"--model robustbench:NAME needs robustbench: pip install 'robustbench-mm[robustbench]' ({plain(exc, 80)})"
        ) from None
    return utils, model_dicts, BenchmarkDataset, ThreatModel


def parse(spec: str, dataset: str) -> tuple[str, str, str]:
    """(dataset, threat, name) of ``robustbench:NAME`` or ``robustbench:DATASET/THREAT/NAME``."""
    parts = spec.split(":", 1)[1].split("/")
    if len(parts) == 1:
        zoo_dataset, threat, name = dataset, "Linf", parts[0]
    elif len(parts) == 3:
        zoo_dataset, threat, name = parts
    else:
        raise UserError(f"--model {clip(spec, 80)}: expected robustbench:NAME or robustbench:DATASET/THREAT/NAME")
    if zoo_dataset not in DATASETS:
        raise UserError(
            f"RobustBench's zoo covers {', '.join(DATASETS)}, not {clip(zoo_dataset, 60)}: "
            "name one as robustbench:DATASET/THREAT/NAME"
        )
    if threat not in THREATS:
        raise UserError(f"unknown RobustBench threat model {clip(threat, 30)}; valid: {', '.join(THREATS)}")
    if not name:
        raise UserError("--model robustbench: needs a model name")
    return zoo_dataset, threat, name


def load_zoo_model(spec: str, dataset: str, model_dir: str | Path) -> LoadedModel:
    """The zoo entry ``spec`` with its weights from ``model_dir`` (no network)."""
    zoo_dataset, threat, name = parse(spec, dataset)
    utils, model_dicts, BenchmarkDataset, ThreatModel = _robustbench()
    entries = model_dicts[BenchmarkDataset(zoo_dataset)][ThreatModel(threat)]
    if name not in entries:
        close = sorted(entries, key=lambda n: (n.lower()[:4] != name.lower()[:4], n))[:8]
        raise UserError(f"no RobustBench model {clip(name, 80)} for {zoo_dataset} {threat}; e.g. {', '.join(close)}")
    path = Path(model_dir).expanduser().resolve() / zoo_dataset / threat / f"{name}.pt"
    if not path.is_file() or isinstance(entries[name].get("gdrive_id"), list):
        fetch = (
            f"python -c \"from robustbench.utils import load_model; load_model('{name}', "
            f"model_dir='{Path(model_dir)}', dataset='{zoo_dataset}', threat_model='{threat}')\""
        )
        what = "an ensemble, which this loader does not read" if path.is_file() else "not there"
        raise UserError(f"RobustBench expects the weights of {name} at {clip_path(path)} ({what}); fetch once: {fetch}")
    try:
        model = utils.load_model(name, model_dir=str(model_dir), dataset=zoo_dataset, threat_model=threat)
    except Exception as exc:  # noqa: BLE001 - the zoo's loader raises whatever its entry raises
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"RobustBench could not load {name} from {clip_path(path)} ({plain(detail, 160)})") from None
    channels = 3
    wrapped = HookedNet(model.eval(), [], [0.0] * channels, [1.0] * channels, head=last_linear(model))
    return LoadedModel(wrapped.eval(), f"robustbench:{name}", "robustbench", path)

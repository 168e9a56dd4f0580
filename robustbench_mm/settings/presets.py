"""Paper presets: TOML files shipped in the package (``robustbench_mm/settings/paper_presets/*.toml``).

A preset holds the methods and seeds of ``mmbench run``, training settings (``[train]``), each
method's own settings (``[method.<name>]``) and evaluation settings (``[eval]``), in the same
names as config.toml and the flags. Layering is defaults < preset < flags given on the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip
from robustbench_mm.settings import EvalConfig, RunPlan, TrainConfig, from_table, read_toml


@dataclass
class Preset:
    name: str
    description: str = ""
    train: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> its own settings
    run: dict[str, Any] = field(default_factory=dict)  # RunPlan values: methods, seeds
    eval: dict[str, Any] = field(default_factory=dict)

    def train_config(self, given: dict[str, Any]) -> TrainConfig:
        """The preset's training settings with ``given`` (flags) on top.

        A preset's lr drops scale with a shorter or longer run: 400/800 of 1,200 epochs become
        1/3 and 2/3 of ``--epochs`` unless ``--milestones`` is given too.
        """
        cfg = dataclasses.replace(from_table(TrainConfig, self.train, f"preset {self.name} [train]"), **given)
        preset_epochs, marks = self.train.get("epochs"), self.train.get("milestones")
        if "epochs" in given and "milestones" not in given and marks and preset_epochs:
            cfg.milestones = [max(1, round(m * given["epochs"] / preset_epochs)) for m in marks]
        return cfg

    def eval_config(self, given: dict[str, Any]) -> EvalConfig:
        return dataclasses.replace(from_table(EvalConfig, self.eval, f"preset {self.name} [eval]"), **given)

    def run_plan(self, given: dict[str, Any]) -> RunPlan:
        plan = dataclasses.replace(from_table(RunPlan, self.run, f"preset {self.name}"), **given)
        plan.per_method = {m: dict(v) for m, v in self.methods.items()}
        return plan


def _folder():
    return resources.files("robustbench_mm.settings") / "paper_presets"


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> Preset:
    if name not in preset_names():
        raise UserError(f"unknown preset {clip(name)}; valid: {', '.join(preset_names())}")
    with resources.as_file(_folder() / f"{name}.toml") as path:
        data = read_toml(path)
    known = {"description", "methods", "seeds", "run", "train", "method", "eval"}
    unknown = sorted(set(data) - known)
    if unknown:  # a shipped preset is code: a typo is a bug, not user input
        raise ValueError(f"preset {name}: unknown key(s) {unknown}")
    run: dict[str, Any] = {**{k: data[k] for k in ("methods", "seeds") if k in data}, **data.get("run", {})}  # [run]
    return Preset(
        name, data.get("description", ""), data.get("train", {}), data.get("method", {}), run, data.get("eval", {})
    )

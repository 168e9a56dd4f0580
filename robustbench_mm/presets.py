"""Paper presets: TOML files shipped in the package (``robustbench_mm/presets/*.toml``).

A preset sets training values (``[train]``), per-method α (``[alpha]``), the methods and
seeds of ``mmbench run``, and evaluation settings (``[eval]``). Flags given on the command
line override the preset's values.
"""

from __future__ import annotations

import argparse
import dataclasses
from importlib import resources
from typing import Any

from .config import EvalConfig, TrainConfig, read_toml
from .errors import UserError


def _folder():
    return resources.files("robustbench_mm") / "presets"


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise UserError(f"unknown preset {name!r}; valid: {', '.join(preset_names())}")
    with resources.as_file(_folder() / f"{name}.toml") as path:
        return read_toml(path)


def apply_preset(name: str, base: TrainConfig) -> tuple[TrainConfig, dict[str, Any]]:
    preset = load_preset(name)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    train = preset.get("train", {})
    unknown = sorted(set(train) - known)
    if unknown:  # a shipped preset is code: a typo is a bug, not user input
        raise ValueError(f"preset {name}: unknown training setting(s) {unknown}")
    return dataclasses.replace(base, **train), preset


def apply_eval_preset(values: dict[str, Any], cfg: EvalConfig, args: argparse.Namespace) -> EvalConfig:
    """Preset evaluation values, except where the command line set the same field."""
    flag_for = {"suites": "suites", "attacks": "attacks", "eps": "eps", "eps_l2": "eps_l2", "pgd_steps": "pgd_steps",
                "pgd_restarts": "pgd_restarts", "deformations": "deformations", "corruptions": "corruptions"}
    changes = {}
    for key, value in values.items():
        if key not in flag_for:
            raise ValueError(f"preset: unknown evaluation setting {key!r}")
        if getattr(args, flag_for[key], None) is None:
            changes[key] = value
    cfg = dataclasses.replace(cfg, **changes)
    cfg.validate()
    return cfg

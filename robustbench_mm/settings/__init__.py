"""Every setting of the benchmark, each declared once as a dataclass field (see :mod:`.fields`).

``TrainConfig`` (a trained model), ``EvalConfig`` (an evaluation), ``TrainOptions`` and
``RunPlan`` (what ``mmbench train`` / ``mmbench run`` do with them). The CLI's flags, config.toml,
presets, validation and ``--plan`` lines all come from these declarations.
"""

from robustbench_mm.settings.evaluate import EvalConfig
from robustbench_mm.settings.fields import Setting, check, from_table, settings_of, to_argv, to_table
from robustbench_mm.settings.jobs import (
    DEFAULT_METHODS,
    DEFAULT_SEEDS,
    EvaluateOptions,
    JobOptions,
    ReportOptions,
    RunPlan,
    TrainOptions,
)
from robustbench_mm.settings.toml import read_toml, to_toml
from robustbench_mm.settings.train import DATASET_DEFAULTS, TrainConfig, dataset_defaults, dataset_family, differences

__all__ = [
    "DATASET_DEFAULTS",
    "dataset_defaults",
    "DEFAULT_METHODS",
    "DEFAULT_SEEDS",
    "EvalConfig",
    "EvaluateOptions",
    "JobOptions",
    "ReportOptions",
    "RunPlan",
    "Setting",
    "TrainConfig",
    "TrainOptions",
    "check",
    "dataset_family",
    "differences",
    "from_table",
    "read_toml",
    "settings_of",
    "to_argv",
    "to_table",
    "to_toml",
]

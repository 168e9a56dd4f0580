"""Settings as dataclasses, resolved against per-dataset defaults, saved as TOML.

A run directory's ``config.toml`` holds the fully resolved settings: enough to re-run it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .schedules import SCHEDULES

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from .storage import atomic_write_text


@dataclass(frozen=True)
class DatasetDefaults:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    schedule: str = "trapezoid"  # per-step lr shape (schedules.py); the paper presets set "step"


# Defaults per dataset. digits: small and fast (a run takes seconds on a laptop CPU while
# reaching >= 97% test accuracy for all three methods). The 32x32 datasets follow the paper's
# App. C (lr 0.1, weight decay 1e-4, batch 100 in the official code); 200 epochs rather than
# the paper's 1,200 as a practical default — the paper presets restore 1,200.
DATASET_DEFAULTS: dict[str, DatasetDefaults] = {
    "digits": DatasetDefaults(epochs=30, batch_size=64, lr=0.05, weight_decay=5e-4, schedule="step"),
    # MNIST: fast28, 4 epochs: >= 98.5% for all three methods on 8,000 real MNIST images (notes/recipe.md)
    "mnist": DatasetDefaults(epochs=4, batch_size=128, lr=0.1, weight_decay=5e-4),
    "fashion-mnist": DatasetDefaults(epochs=10, batch_size=128, lr=0.1, weight_decay=5e-4),  # not measured here
    "cifar10": DatasetDefaults(epochs=200, batch_size=100, lr=0.1, weight_decay=1e-4),
    "cifar100": DatasetDefaults(epochs=200, batch_size=100, lr=0.1, weight_decay=1e-4),
    "svhn": DatasetDefaults(epochs=100, batch_size=100, lr=0.1, weight_decay=1e-4),
    "imagefolder": DatasetDefaults(epochs=50, batch_size=64, lr=0.05, weight_decay=5e-4),
}

AMP_MODES = ("auto", "on", "off")


def dataset_family(dataset: str) -> str:
    return "imagefolder" if dataset.startswith("imagefolder:") else dataset


@dataclass
class TrainConfig:
    dataset: str = "digits"  # a registered dataset or imagefolder:<path>
    data_root: str | None = None  # where torchvision datasets live
    download: bool = False  # let torchvision download into data_root
    arch: str | None = None  # None: the dataset's default (digits -> cnn, 32x32 -> preactresnet18)
    method: str = "erm"  # erm | mixup | manifold-mixup
    alpha: float | None = None  # Beta(alpha, alpha); None: 1.0 for mixup, 2.0 for manifold-mixup
    mix_layers: list[int] | None = None  # None: [0] for mixup, [0, 1, 2] for manifold-mixup
    mix_loss: str = "ce"  # ce (soft-target cross-entropy) | bce (official code's BCE on softmax)
    pairing: str = "flip"  # flip: pair the shuffled batch with its reverse (cheap); permute: random permutation
    epochs: int | None = None  # None: per-dataset default
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9  # SGD momentum with Nesterov, as the official code
    nesterov: bool = True
    schedule: str | None = None  # None: the dataset's (trapezoid; digits: step); see schedules.py
    milestones: list[int] | None = None  # step schedule: epochs at which lr /= 10 (None: 1/3 and 2/3)
    seed: int = 0
    holdout_fraction: float = 0.1  # share of the training split kept out for temperature scaling
    device: str = "auto"  # auto: cuda when present
    amp: str = "auto"  # auto: bf16 autocast + channels_last on CUDA, off on CPU
    compile: bool = False  # torch.compile the model (worth it for long CUDA runs)
    out_dir: str = "runs"  # the run directory is out_dir/<dataset>-<arch>-<method>-s<seed>

    def resolved(self, default_arch: str) -> "TrainConfig":
        """Fill every None with its dataset/method default and validate ranges."""
        defaults = DATASET_DEFAULTS.get(dataset_family(self.dataset), DATASET_DEFAULTS["imagefolder"])
        cfg = dataclasses.replace(self)
        # paths are stored absolute, so a run directory evaluates from any working directory
        if cfg.dataset.startswith("imagefolder:") and cfg.dataset.split(":", 1)[1]:
            cfg.dataset = "imagefolder:" + str(Path(cfg.dataset.split(":", 1)[1]).expanduser().resolve())
        if cfg.data_root:
            cfg.data_root = str(Path(cfg.data_root).expanduser().resolve())
        cfg.arch = cfg.arch or default_arch
        cfg.epochs = defaults.epochs if cfg.epochs is None else cfg.epochs
        cfg.batch_size = defaults.batch_size if cfg.batch_size is None else cfg.batch_size
        cfg.lr = defaults.lr if cfg.lr is None else cfg.lr
        cfg.weight_decay = defaults.weight_decay if cfg.weight_decay is None else cfg.weight_decay
        cfg.schedule = defaults.schedule if cfg.schedule is None else cfg.schedule
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.epochs is not None and self.epochs <= 0:
            raise UserError(f"--epochs must be > 0, got {self.epochs}")
        if self.batch_size is not None and self.batch_size <= 1:
            raise UserError(f"--batch-size must be > 1 (BatchNorm needs two examples), got {self.batch_size}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"--lr must be > 0, got {self.lr}")
        if self.weight_decay is not None and not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise UserError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.milestones is not None:
            if not self.milestones or any(m <= 0 for m in self.milestones):
                raise UserError(f"--milestones must be positive epochs, got {self.milestones}")
            if list(self.milestones) != sorted(set(self.milestones)):
                raise UserError(f"--milestones must be increasing, got {self.milestones}")
            if self.epochs is not None and self.milestones[-1] >= self.epochs:
                raise UserError(f"--milestones must fall before the last epoch ({self.epochs}), got {self.milestones}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.amp not in AMP_MODES:
            raise UserError(f"unknown --amp {self.amp!r}; valid: {', '.join(AMP_MODES)}")
        if not 0.0 <= self.holdout_fraction < 0.5:
            raise UserError(f"--holdout-fraction must be in [0, 0.5), got {self.holdout_fraction}")
        if self.seed < 0:
            raise UserError(f"--seed must be >= 0, got {self.seed}")

    @property
    def run_name(self) -> str:
        dataset = self.dataset
        if dataset.startswith("imagefolder:"):
            dataset = "imagefolder-" + (Path(dataset.split(":", 1)[1]).name or "data")
        name = f"{dataset}-{self.arch}-{self.method}-s{self.seed}"
        return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def to_toml(values: dict[str, Any], table: str | None = None) -> str:
    """Minimal TOML writer for flat tables of scalars and lists (None values are omitted)."""
    lines = [f"[{table}]"] if table else []
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def save_train_config(cfg: TrainConfig, path: Path, extra: dict[str, Any] | None = None) -> None:
    text = to_toml(dataclasses.asdict(cfg), "train")
    if extra:
        text += "\n" + to_toml(extra, "run")
    atomic_write_text(path, text)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None


def load_train_config(path: Path) -> TrainConfig:
    data = read_toml(path).get("train")
    if not isinstance(data, dict):
        raise UserError(f"config file {path} has no [train] table")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return TrainConfig(**data)


def config_differences(a: TrainConfig, b: TrainConfig, ignore: tuple[str, ...] = ("device", "out_dir")) -> list[str]:
    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    return [k for k in da if k not in ignore and da[k] != db[k]]


@dataclass
class EvalConfig:
    suites: list[str] = field(default_factory=lambda: ["clean", "adversarial", "deformation", "corruption", "calibration"])
    attacks: list[str] | None = None  # None: the default set (fgsm, pgd-linf, pgd-l2, square)
    eps: list[float] | None = None  # L-inf radii; None: the dataset's grid
    eps_l2: list[float] | None = None  # L2 radii; None: the dataset's grid
    pgd_steps: int = 10
    pgd_restarts: int = 1
    pgd_step_size: float | None = None  # None: 2.5 * eps / steps (Madry et al.)
    attack_precision: str = "auto"  # auto | fp32 | bf16 (bf16 autocast + channels_last, CUDA only)
    deformations: str = "paper"  # paper (Table 4) | paper-full (Table 9)
    corruptions: list[str] | None = None  # None: all 19
    severities: list[int] | None = None  # corruption levels; None: 1..5
    cifar_c_root: str | None = None  # folder holding CIFAR-10-C/ or CIFAR-100-C/: use the published images
    batch_size: int = 500  # None-like 0: choose from free memory on CUDA
    seed: int = 0  # seeds attacks' random starts, deformations and corruptions
    device: str = "auto"
    max_examples: int | None = None  # evaluate on the first N test examples only
    n_bins: int = 15  # calibration bins

    def validate(self) -> None:
        for name in ("suites", "attacks", "eps", "eps_l2", "corruptions", "severities"):
            value = getattr(self, name)
            if isinstance(value, (str, int, float)):  # API: suites="clean", eps=0.1 mean one value
                value = [value]
                setattr(self, name, value)
            if value is not None and len(value) == 0:
                raise UserError(f"--{name.replace('_', '-')} is empty; give at least one value or leave it out")
        for name in ("eps", "eps_l2"):
            values = getattr(self, name)
            if values is not None:
                try:
                    values = [float(v) for v in values]
                except (TypeError, ValueError):
                    raise UserError(f"--{name.replace('_', '-')} must be numbers, got {values!r}") from None
                # a radius given twice would be attacked twice and reported as two rows
                setattr(self, name, sorted(set(values)))
        for eps in (self.eps or []) + (self.eps_l2 or []):
            if not (eps >= 0 and math.isfinite(eps)):
                raise UserError(f"epsilon must be >= 0, got {eps}")
        if self.pgd_steps <= 0:
            raise UserError(f"--pgd-steps must be > 0, got {self.pgd_steps}")
        if self.pgd_restarts <= 0:
            raise UserError(f"--pgd-restarts must be > 0, got {self.pgd_restarts}")
        if self.pgd_step_size is not None and not self.pgd_step_size > 0:
            raise UserError(f"--pgd-step-size must be > 0, got {self.pgd_step_size}")
        if self.attack_precision not in ("auto", "fp32", "bf16"):
            raise UserError(f"unknown --attack-precision {self.attack_precision!r}; valid: auto, fp32, bf16")
        if self.batch_size < 0:
            raise UserError(f"--eval-batch-size must be >= 0, got {self.batch_size}")
        if self.max_examples is not None and self.max_examples <= 0:
            raise UserError(f"--max-examples must be > 0, got {self.max_examples}")
        if self.n_bins <= 0:
            raise UserError(f"--bins must be > 0, got {self.n_bins}")
        for severity in self.severities or []:
            if severity not in (1, 2, 3, 4, 5):
                raise UserError(f"corruption severity must be 1..5, got {severity}")

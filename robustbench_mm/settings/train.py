"""Training settings: one :class:`TrainConfig` per run, saved resolved in the run's config.toml."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import plain
from robustbench_mm.data.cards import CARDS, DatasetCard, card_for, dataset_family
from robustbench_mm.settings.fields import check, setting

# the lr schedules training/schedules.py implements, one function per name
SCHEDULES = ("step", "cosine", "trapezoid")
SEED_MAX = 2**32 - 1  # NumPy's and torch's seeds are 32/64-bit; one bound for every seed we take

EPOCHS_MAX = 100_000


# Per-dataset defaults are the dataset cards' (data/cards.py); these names stay for callers.
DatasetDefaults = DatasetCard
DATASET_DEFAULTS = CARDS
dataset_defaults = card_for


@dataclass
class TrainConfig:
    """Everything that determines a trained model (``None``: the dataset's default)."""

    dataset: str = setting("digits", "digits, mnist, fashion-mnist, cifar10, cifar100, svhn or imagefolder:<path>")
    data_root: str | None = setting(None, "folder holding the torchvision dataset files")
    download: bool = setting(False, "let torchvision download the dataset into --data-root")
    arch: str | None = setting(
        None, "architecture (default per dataset; mmbench list; or torchvision:NAME, timm:NAME)", per_dataset=True
    )
    mix_modules: list[str] | None = setting(
        None,
        "torchvision:/timm: models: the submodules to mix after (default: the ResNet stages layer1..4, "
        "timm's feature_info)",
        unique=True,
    )
    method: str = setting("erm", "training method (mmbench list); its own settings have their own flags")
    mix_loss: str = setting(
        "ce",
        "loss against the (mixed) targets: soft-target cross-entropy, or the official code's BCE on softmax",
        choices=("ce", "bce"),
    )
    epochs: int | None = setting(
        None, "training epochs (default per dataset)", low=1, high=EPOCHS_MAX, per_dataset=True
    )
    batch_size: int | None = setting(
        None, "training batch size (default per dataset)", low=2, high=65_536, per_dataset=True
    )
    lr: float | None = setting(
        None, "peak SGD learning rate (default per dataset)", low=0, low_open=True, high=100, per_dataset=True
    )
    weight_decay: float | None = setting(
        None, "SGD weight decay (0: none) (default per dataset)", low=0, high=1, per_dataset=True
    )
    momentum: float = setting(
        0.9, "SGD momentum (Nesterov, as the official code; 0: plain SGD)", low=0, high=1, high_open=True
    )
    nesterov: bool = setting(True, "Nesterov momentum")
    schedule: str | None = setting(
        None,
        "learning-rate schedule, per step: trapezoid (short warm-up, flat, then "
        "linear decay to 0), cosine (warm-up + cosine) or step (lr / 10 at "
        "--milestones, default 1/3 and 2/3 of training) (default per dataset)",
        choices=SCHEDULES,
        per_dataset=True,
    )
    milestones: list[int] | None = setting(
        None, "step schedule: epochs at which lr /= 10 (default 1/3 and 2/3)", low=1, high=EPOCHS_MAX
    )
    seed: int = setting(
        0, "seed of the model's initialisation, the data order, augmentation and mixing", low=0, high=SEED_MAX
    )
    holdout_fraction: float = setting(
        0.1,
        "share of the training split held out to fit the calibration temperature (0: none, no temperature)",
        low=0,
        high=0.5,
        high_open=True,
    )
    device: str = setting("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    # CPU kernels sum in an order that depends on the thread count, so the count is part of what
    # determines the model: fixed here (and recorded), never taken from the machine
    cpu_threads: int = setting(1, "torch threads when training on the CPU (the result depends on it)", low=1, high=256)
    amp: str = setting("auto", "bf16 autocast + channels_last (auto: on for CUDA)", choices=("auto", "on", "off"))
    compile: bool = setting(False, "torch.compile the model (long CUDA runs)")
    # The method's own settings (alpha, mix_layers, ...), declared by the method's class; given values
    # only until resolved, every value after (what config.toml's [method] table holds).
    method_options: dict[str, Any] = field(default_factory=dict)

    def validate(self, cli: bool = False) -> TrainConfig:
        check(self, cli)
        if self.mix_modules and self.arch is not None and self.arch.split(":", 1)[0] not in ("torchvision", "timm"):
            flag = "--mix-modules" if cli else "mix_modules"
            raise UserError(f"{flag} applies to torchvision:NAME and timm:NAME models, not {plain(self.arch, 64)}")
        flag = "--milestones" if cli else "milestones"
        if self.milestones is not None:
            if self.milestones != sorted(set(self.milestones)):
                raise UserError(f"{flag} must be increasing, got {self.milestones}")
            if self.epochs is not None and self.milestones[-1] >= self.epochs:
                raise UserError(f"{flag} must fall before the last epoch ({self.epochs}), got {self.milestones}")
        return self

    def resolved(self, default_arch: str, profile: str | None = None) -> TrainConfig:
        """Every per-dataset None filled in (from ``profile``'s defaults: the loaded data's), paths
        made absolute, values checked."""
        # a profile of no known dataset (data the caller built): the configured dataset's defaults
        defaults = CARDS.get(profile or "") or card_for(dataset_family(self.dataset))
        cfg = dataclasses.replace(self, method_options=dict(self.method_options))
        # paths are stored absolute, so a run directory evaluates from any working directory
        if cfg.dataset.startswith("imagefolder:") and cfg.dataset.split(":", 1)[1]:
            cfg.dataset = "imagefolder:" + str(Path(cfg.dataset.split(":", 1)[1]).expanduser().resolve())
        if cfg.data_root:
            cfg.data_root = str(Path(cfg.data_root).expanduser().resolve())
        cfg.arch = cfg.arch or default_arch
        for name in ("epochs", "batch_size", "lr", "weight_decay", "schedule"):
            if getattr(cfg, name) is None:
                setattr(cfg, name, getattr(defaults, name))
        return cfg.validate()

    @property
    def recipe(self) -> Recipe:
        """The per-dataset settings of a resolved config, typed as never None."""
        values = {name: getattr(self, name) for name in ("epochs", "batch_size", "lr", "weight_decay", "schedule")}
        missing = [name for name, value in values.items() if value is None]
        if missing:  # a caller's bug: resolved() fills every one of them
            raise ValueError(f"{', '.join(missing)} read before the config was resolved")
        return Recipe(**values)

    @property
    def run_name(self) -> str:
        dataset = self.dataset
        if dataset.startswith("imagefolder:"):
            dataset = "imagefolder-" + (Path(dataset.split(":", 1)[1]).name or "data")
        name = f"{dataset}-{self.arch}-{self.method}-s{self.seed}"
        return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:200]


@dataclass(frozen=True)
class Recipe:
    """What the training loop reads of a resolved :class:`TrainConfig` (no None left)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    schedule: str


def differences(a: TrainConfig, b: TrainConfig, ignore: tuple[str, ...] = ("device",)) -> list[str]:
    """Names of the settings in which two resolved configs differ (method settings included)."""
    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    out = [k for k in da if k not in ignore and k != "method_options" and da[k] != db[k]]
    options_a, options_b = a.method_options, b.method_options
    out += [k for k in sorted(set(options_a) | set(options_b)) if options_a.get(k) != options_b.get(k)]
    return out

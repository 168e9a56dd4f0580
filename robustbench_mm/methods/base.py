"""What a training method is: a small dataclass of its own settings that turns a batch into a loss.

A method declares its settings as fields (``alpha: float = setting(1.0, "...")``): they become
flags, config.toml entries and ``--plan`` arguments without any other file knowing them. Class
attributes say how reports and plots show it (``label``, ``color``, ``order``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.registry import Registry
from robustbench_mm.settings.fields import check, settings_of, to_table


@dataclass
class Step:
    """What a method may use besides the batch: seeded randomness (saved in every checkpoint) and
    the loss form."""

    rng: np.random.Generator  # host-side draws: λ, mixing layers, boxes
    generator: torch.Generator  # device-side draws (e.g. PGD-AT's random start)
    loss_kind: str = "ce"  # ce | bce (methods.losses)
    lam_as_tensor: bool = False  # under torch.compile λ is a 0-dim tensor: one graph for every λ


@dataclass
class Method:
    """A training method. Subclasses are dataclasses whose fields are their settings."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # how tables and legends name it
    color: ClassVar[str] = "tab:gray"  # the same colour in every figure
    order: ClassVar[int] = 100  # position in tables and legends (ERM first)
    description: ClassVar[str] = ""

    def resolved(self, data: Any = None) -> Method:
        """Settings that depend on the dataset (a ``DatasetSplits``) filled in (default: none)."""
        return self

    def check_model(self, model: nn.Module) -> None:
        """Refuse settings the architecture cannot serve (default: nothing to check)."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits) of one training batch."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The method's settings, as config.toml's [method] table holds them."""
        return to_table(self)


METHODS: Registry[type[Method]] = Registry("method")


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: ``@register_method`` on a dataclass whose ``name`` is set."""
    if not cls.name or not cls.label:
        raise ValueError(f"{cls.__name__} needs a name and a label")
    METHODS.register(cls.name)(cls)
    return cls


def create_method(name: str, options: dict[str, Any] | None = None, cli: bool = False) -> Method:
    """The method ``name`` with ``options`` (its own settings) applied and checked."""
    cls = METHODS.get(name)
    options = dict(options or {})
    known = {s.name for s in settings_of(cls)}
    unknown = [k for k in options if k not in known]
    if unknown:
        setting = "--" + unknown[0].replace("_", "-") if cli else unknown[0]
        valid = ", ".join(sorted(known)) or "none"
        raise UserError(f"{setting} does not apply to method {name} (its settings: {valid})")
    method = cls(**options)
    check(method, cli)
    return method


def method_sort_key(name: str) -> tuple[int, str]:
    """Display order: registered methods by their ``order``, unknown names after them."""
    return (METHODS.get(name).order if name in METHODS else 10_000, name)


def method_label(name: str) -> str:
    return METHODS.get(name).label if name in METHODS else name


def method_color(name: str) -> str | None:
    return METHODS.get(name).color if name in METHODS else None

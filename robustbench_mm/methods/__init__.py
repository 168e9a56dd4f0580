"""Training methods: one class in one file each, registered by name.

Adding a method is one file here (a :class:`Method` dataclass with ``@register_method``) and its
test: training, ``mmbench run --methods``, reports and plots find it through the registry.
"""

from __future__ import annotations

import importlib
import pkgutil

from robustbench_mm.methods.base import (
    METHODS,
    Method,
    Step,
    create_method,
    method_color,
    method_label,
    method_sort_key,
    register_method,
)
from robustbench_mm.methods.losses import LOSS_KINDS, hard_target_loss, mixed_loss, soft_target_loss
from robustbench_mm.settings.fields import Setting, settings_of

# every module of this package registers its method on import
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "losses", "blend"):
        importlib.import_module(f"{__name__}.{_module.name}")


def method_settings() -> list[Setting]:
    """Every method's own settings, once per name (methods that share a name share its meaning)."""
    seen: dict[str, Setting] = {}
    for name in METHODS.names():
        for s in settings_of(METHODS.get(name)):
            other = seen.setdefault(s.name, s)
            if (other.kind, other.is_list) != (s.kind, s.is_list):
                raise TypeError(f"method setting {s.name!r} is declared with two types")
    return list(seen.values())


def methods_with(option: str) -> list[str]:
    """Names of the methods that declare the setting ``option``."""
    return [n for n in METHODS.names() if any(s.name == option for s in settings_of(METHODS.get(n)))]


__all__ = [
    "LOSS_KINDS",
    "METHODS",
    "Method",
    "Step",
    "create_method",
    "hard_target_loss",
    "method_color",
    "method_label",
    "method_settings",
    "method_sort_key",
    "methods_with",
    "mixed_loss",
    "register_method",
    "soft_target_loss",
]

"""Architecture registry and the mixable base model."""

from robustbench_mm.models import fast, resnets, small  # noqa: F401  (registers the architectures)
from robustbench_mm.models.base import Mix, MixableNet
from robustbench_mm.models.hooks import HookedNet
from robustbench_mm.models.registry import ARCHS, ModelSpec, create_model, is_arch

__all__ = ["ARCHS", "HookedNet", "Mix", "MixableNet", "ModelSpec", "create_model", "is_arch"]

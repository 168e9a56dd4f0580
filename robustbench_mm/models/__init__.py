"""Architecture registry and the mixable base model."""

from robustbench_mm.models import fast, resnets, small  # noqa: F401  (registers the architectures)
from robustbench_mm.models.base import Mix, MixableNet
from robustbench_mm.models.registry import ARCHS, ModelSpec, create_model

__all__ = ["ARCHS", "Mix", "MixableNet", "ModelSpec", "create_model"]

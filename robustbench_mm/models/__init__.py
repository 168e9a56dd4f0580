"""Architecture registry and the mixable base model."""

from . import fast, resnets, small  # noqa: F401  (registers the architectures)
from .base import Mix, MixableNet
from .registry import ARCHS, ModelSpec, create_model

__all__ = ["ARCHS", "Mix", "MixableNet", "ModelSpec", "create_model"]

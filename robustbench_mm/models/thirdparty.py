"""``--arch torchvision:NAME`` and ``--arch timm:NAME``: a library's classifier with mix points.

The network is built for the dataset's classes (and, for timm, its channels), randomly
initialised (no weights are downloaded), and wrapped in a :class:`HookedNet`, which takes [0, 1]
images, normalizes with the dataset's mean/std and mixes through forward hooks. The eligible
mix points, unless ``--mix-modules`` names others:

* torchvision: the ResNet family's stages ``layer1`` .. ``layer4`` (ResNet, ResNeXt, Wide
  ResNet); any other torchvision model needs ``--mix-modules``.
* timm: the module names of the model's ``feature_info`` (its stages, the stem first), as
  timm's own ``features_only`` uses them.

Layer k is the output of the k-th of these, so Manifold Mixup's default layers (0, 1, 2) are
the input and the first two mix points.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip
from robustbench_mm.models.hooks import HookedNet

PREFIXES = ("torchvision", "timm")
RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")


def is_thirdparty(name: str) -> bool:
    return name.split(":", 1)[0] in PREFIXES and ":" in name


def last_linear(net: nn.Module) -> str | None:
    """The name of the classifier: the last ``nn.Linear`` (or 1x1-output head) of the network."""
    names = [name for name, module in net.named_modules() if isinstance(module, nn.Linear)]
    return names[-1] if names else None


def _torchvision(name: str, num_classes: int) -> tuple[nn.Module, list[str]]:
    from torchvision import models

    try:
        builder = models.get_model_builder(name)
    except ValueError:
        valid = ", ".join(models.list_models(module=models)[:40])
        raise UserError(f"unknown torchvision model {clip(name, 60)}; valid include: {valid}, ...") from None
    net = builder(weights=None, num_classes=num_classes)
    stages = [stage for stage in RESNET_STAGES if hasattr(net, stage)]
    return net, stages


def _timm(name: str, num_classes: int, in_channels: int) -> tuple[nn.Module, list[str]]:
    try:
        import timm
    except ImportError:
        raise UserError("timm models need timm: pip install 'robustbench-mm[timm]'") from None
    if not timm.is_model(name):
        raise UserError(f"unknown timm model {clip(name, 60)} (timm.list_models() lists them)")
    net = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
    stages = [info["module"] for info in getattr(net, "feature_info", []) if info.get("module")]
    return net, stages


def _head_name(net: nn.Module) -> str | None:
    get = getattr(net, "get_classifier", None)
    head = get() if callable(get) else None
    if isinstance(head, nn.Module) and not isinstance(head, nn.Identity):
        for name, module in net.named_modules():
            if module is head and name:
                return name
    return last_linear(net)


def create_thirdparty(
    name: str,
    num_classes: int,
    in_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    mix_modules: Sequence[str] | None = None,
) -> HookedNet:
    """Build ``torchvision:NAME`` / ``timm:NAME`` for ``num_classes`` classes, with mix points."""
    library, model_name = name.split(":", 1)
    repeat = 1
    if library == "torchvision":
        net, stages = _torchvision(model_name, num_classes)
        if in_channels == 1:
            repeat = 3  # torchvision's networks take RGB: a grey image is fed as three equal channels
        elif in_channels != 3:
            raise UserError(f"torchvision models take 1- or 3-channel images, the dataset has {in_channels}")
    else:
        net, stages = _timm(model_name, num_classes, in_channels)
    stages = list(mix_modules) if mix_modules else stages
    if not stages:
        raise UserError(f"{clip(name, 80)} has no known stages to mix after: name them with --mix-modules a,b,c")
    return HookedNet(net, stages, mean, std, head=_head_name(net), repeat_channels=repeat)

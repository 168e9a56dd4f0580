"""Mix points on any model: the one ``Mix`` mechanism through forward hooks.

:class:`HookedNet` wraps a classifier that was not written for mixing (a torchvision or timm
model, or any ``nn.Module``): it normalizes [0, 1] images with its own mean/std buffers, as
every model here does, and mixes after the named submodules ``mix_modules`` through forward
hooks. Layer 0 is the normalized input and layer k the output of ``mix_modules[k-1]``, so
``model(x, mix=Mix(layer, lam))`` means what it means for a :class:`MixableNet`, and every
method works on the wrapped model without knowing it.

A hook replaces the module's output with ``mix.apply(output)`` once per forward pass (a module
called twice, as a shared block is, is mixed at its first call only). The wrapped network's own
weights keep their names under ``net.``, and the hooks add none, so a state dict loads into a
freshly wrapped network whatever its mix points.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

import torch
from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip
from robustbench_mm.models.base import Mix


class HookedNet(nn.Module):
    """Normalization, then ``net``; mixing after any of ``mix_modules`` (dotted submodule names)."""

    def __init__(
        self,
        net: nn.Module,
        mix_modules: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        head: str | None = None,
        repeat_channels: int = 1,
    ) -> None:
        super().__init__()
        self.net = net
        self.mix_modules = tuple(mix_modules)
        # a grey dataset fed to a network built for RGB (torchvision's): the one channel repeated
        self.repeat_channels = repeat_channels
        channels = len(mean)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1))
        modules = dict(net.named_modules())
        unknown = [name for name in (*self.mix_modules, *([head] if head else [])) if name not in modules or not name]
        if unknown:
            top = [name for name, _ in net.named_children()]
            shown = ", ".join(top[:16]) + (", ..." if len(top) > 16 else "")
            raise UserError(
                f"no module named {clip(unknown[0], 60)} in {type(net).__name__} (dotted names; "
                f"its top-level modules: {shown})"
            )
        self._mix: Mix | None = None
        self._captured: list[torch.Tensor] | None = None
        for index, name in enumerate(self.mix_modules, start=1):
            modules[name].register_forward_hook(_MixHook(self, index))
        self.head_name = head
        if head:
            modules[head].register_forward_pre_hook(_HeadInput(self))

    @property
    def mix_layers(self) -> list[int]:
        """0 (input) .. number of mix modules."""
        return list(range(len(self.mix_modules) + 1))

    def state_names(self) -> list[str]:
        """Names of :meth:`hidden_states`' entries: ``layer0`` .. ``layerK``, then ``penultimate``."""
        return [f"layer{k}" for k in self.mix_layers] + (["penultimate"] if self.head_name else [])

    def _normalized(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = typing.cast(torch.Tensor, self.mean), typing.cast(torch.Tensor, self.std)  # buffers
        h = (x - mean) / std
        return h.repeat(1, self.repeat_channels, 1, 1) if self.repeat_channels > 1 else h

    def forward(self, x: torch.Tensor, mix: Mix | None = None) -> torch.Tensor:
        h = self._normalized(x)
        if mix is not None and mix.layer == 0:
            h = mix.apply(h)
            mix = None
        self._mix = mix
        try:
            return self.net(h)
        finally:
            self._mix = None

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[normalized input, output of each mix module, the head's input (when the head is known)]."""
        h = self._normalized(x)
        self._captured = [h]
        try:
            self.net(h)
            states = self._captured
        finally:
            self._captured = None
        return states

    def extra_repr(self) -> str:
        return f"mix_modules={list(self.mix_modules)}"


class _MixHook:
    """Forward hook of mix point ``index``: mixes the output when the pending ``Mix`` says so."""

    def __init__(self, owner: HookedNet, index: int) -> None:
        self.owner, self.index = owner, index

    def __call__(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        owner = self.owner
        if owner._captured is not None and len(owner._captured) == self.index:
            owner._captured.append(output)
        mix = owner._mix
        if mix is None or mix.layer != self.index:
            return None
        owner._mix = None  # once per forward pass
        return mix.apply(output)


class _HeadInput:
    """Forward pre-hook on the classifier: records its input (the penultimate representation)."""

    def __init__(self, owner: HookedNet) -> None:
        self.owner = owner

    def __call__(self, module: nn.Module, inputs: tuple) -> None:
        captured = self.owner._captured
        if captured is not None and len(captured) == len(self.owner.mix_modules) + 1:
            captured.append(inputs[0])

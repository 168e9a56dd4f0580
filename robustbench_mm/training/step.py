"""One training step and where its data and weights live: the model's memory layout, the
optimizer, the training images on the device when they fit."""

from __future__ import annotations

import torch

from robustbench_mm.data.datasets import DatasetSplits
from robustbench_mm.methods import Method, Step
from robustbench_mm.settings import TrainConfig


def place_training_data(data: DatasetSplits, train_idx: torch.Tensor, device: torch.device):
    """The training images on the device when they fit (pinned host memory otherwise)."""
    on_device = _fits_on_device(data, device)
    train_x, train_y = data.train_x[train_idx], data.train_y[train_idx]
    if on_device:
        train_x, train_y = train_x.to(device), train_y.to(device)
    elif device.type == "cuda":
        train_x, train_y = train_x.pin_memory(), train_y.pin_memory()
    return train_x, train_y, on_device


def _fits_on_device(data: DatasetSplits, device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    needed = data.train_x.numel() * data.train_x.element_size() + data.test_x.numel() * data.test_x.element_size()
    return needed < 0.25 * free


def to_training_layout(model: torch.nn.Module, device: torch.device, amp: bool) -> tuple[torch.nn.Module, bool]:
    """channels_last for convolutional models on the CPU and under CUDA autocast.

    On the CPU, oneDNN's pooling is many times faster in channels_last on small maps, and
    without a fixed layout an input-mixed batch (NCHW) and a plain one can take different
    kernels. On CUDA, bf16 tensor-core convolutions want channels_last. Weights are saved
    contiguous, so the layout never reaches model.pt.
    """
    convolutional = any(p.dim() == 4 for p in model.parameters())
    if convolutional and (device.type == "cpu" or amp):
        return model.to(memory_format=torch.channels_last), True
    return model, False


def make_optimizer(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (the official code); the fused kernel on CUDA."""
    return torch.optim.SGD(
        params,
        lr=cfg.recipe.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.recipe.weight_decay,
        fused=device.type == "cuda" or None,
    )


def train_step(model, method: Method, optimizer, x, y, step: Step, amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step (bf16 autocast when ``amp``); returns (loss, logits), unsynchronized."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        loss, logits = method.loss(model, x, y, step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits

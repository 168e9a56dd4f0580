"""What training checks about its data before any folder exists or any step runs."""

from __future__ import annotations

import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip
from robustbench_mm.data.datasets import DatasetSplits
from robustbench_mm.data.splits import holdout_split
from robustbench_mm.settings import TrainConfig


def check_trainable(cfg: TrainConfig, data: DatasetSplits) -> None:
    """Refuse, in one line, data the resolved ``cfg`` cannot train on: images smaller than the
    architecture takes, and a class the calibration holdout leaves without a training image (the
    model could never learn it, and nothing would say so)."""
    from robustbench_mm.models.inputsize import check_input_size

    if data.num_classes < 2:
        # a classifier of one class is right by construction: every score of it would mean nothing
        raise UserError(f"{data.name[:200]} has {data.num_classes} class; a classifier needs at least 2")
    assert cfg.arch is not None  # resolved before the checks run
    check_input_size(cfg.arch, data.in_channels, data.image_size, data.num_classes)
    labels = data.train_y
    held = 0
    if cfg.holdout_fraction > 0 and len(labels) >= 2:
        # the same split as training.loop.training_split (holdout_split refuses fewer than 2 images itself)
        train_idx, holdout_idx = holdout_split(len(labels), cfg.holdout_fraction, cfg.seed)
        labels, held = labels[torch.from_numpy(train_idx)], len(holdout_idx)
    empty = torch.nonzero(torch.bincount(labels, minlength=data.num_classes) == 0).flatten().tolist()
    if empty:
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        why = f" after the calibration holdout ({held} of {len(data.train_y)} images)" if held else ""
        raise UserError(
            f"class {clip(data.classes[empty[0]], 60)}{more} has no training image{why}; "
            "add images or lower --holdout-fraction"
        )

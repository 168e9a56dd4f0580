"""Every seeded source of one training run, and its state for checkpoints.

torch's global RNG (model initialisation), a ``torch.Generator`` for the data order, one on the
device for augmentation, a NumPy generator for the method's host-side draws (λ, the mixing layer,
CutMix's box) and one device generator for the method's device-side draws (PGD-AT's start).
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Randomness:
    """Every seeded source of one training run, with a checkpointable state."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.data = torch.Generator().manual_seed(seed)  # epoch order (CPU: same on every device)
        self.augment = torch.Generator(device=device).manual_seed(seed)  # crops and flips, on the device
        self.mix = np.random.default_rng(seed)  # the method's host-side draws
        self.method = torch.Generator(device=device).manual_seed(seed)  # the method's device-side draws

    def state(self) -> dict[str, Any]:
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "data": self.data.get_state(),
            "augment": self.augment.get_state(),
            "numpy_global": json.dumps(_jsonable(np.random.get_state())),
            "python": json.dumps(_jsonable(random.getstate())),
            "mix": json.dumps(self.mix.bit_generator.state),
            "method": self.method.get_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        self.data.set_state(state["data"])
        self.augment.set_state(state["augment"])
        name, keys, pos, has_gauss, cached = json.loads(state["numpy_global"])
        np.random.set_state((name, np.array(keys["__ndarray__"], dtype=keys["dtype"]), pos, has_gauss, cached))
        version, internal, gauss = json.loads(state["python"])
        random.setstate((version, tuple(internal), gauss))
        self.mix.bit_generator.state = json.loads(state["mix"])
        if "method" in state:
            self.method.set_state(state["method"])


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value

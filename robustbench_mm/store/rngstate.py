"""checkpoint.pt's random-number-generator states, checked before a resume restores them.

Each state is applied to a throwaway generator of its kind first: the library's own check of its
format (see :func:`~.checkpoint.validate_checkpoint`).
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import torch

from robustbench_mm.core.untrusted import Invalid, integer, listof, number, optional

_JSON_LIMIT = 8 << 20  # characters; a 1,200-epoch log is ~0.1 MB
_WORD = integer(0, 2**32 - 1)
_NUMPY_STATE = listof(_WORD, 624, 624, "32-bit words")  # MT19937's key
_PYTHON_STATE = listof(_WORD, 625, 625, "32-bit words")  # random.getstate()[1]: key + position


def json_value(value: Any, expected: str, where: str = "") -> Any:
    if not isinstance(value, str) or len(value) > _JSON_LIMIT:
        raise Invalid(f"{expected} as JSON text", value, where)
    try:
        return json.loads(value)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep to parse
        raise Invalid(f"{expected} as JSON text", value, where) from None


def _try(where: str, apply: Any, value: Any) -> None:
    """Apply an RNG state to a throwaway generator: the library's own check of its format."""
    try:
        apply()
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RuntimeError):
        raise Invalid("a state its generator accepts", value, where) from None


def _generator_state(value: Any, where: str, device: torch.device | str) -> None:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 or value.dim() != 1 or value.numel() > 1 << 16:
        raise Invalid("a torch generator state (a 1-D uint8 tensor)", value, where)
    device = torch.device(device)
    if device.type != "cpu" and not (device.type == "cuda" and torch.cuda.is_available()):
        return  # a device that is not here (or has no generator to try): the resume itself will say so
    generator = torch.Generator(device=device)
    _try(where, lambda: generator.set_state(value), value)


def check_rng(rng: Any, device: torch.device | str | None) -> None:
    if not isinstance(rng, dict):
        raise Invalid("a dict of RNG states", rng)
    missing = [k for k in ("torch", "cuda", "data", "augment", "numpy_global", "python", "mix") if k not in rng]
    if missing:
        raise Invalid("a dict with every RNG state", rng, shown=f"no {', '.join(missing)}")
    _generator_state(rng["torch"], "['torch']", "cpu")
    _generator_state(rng["data"], "['data']", "cpu")
    _generator_state(rng["augment"], "['augment']", device if device is not None else "cpu")
    if not isinstance(rng["cuda"], list) or len(rng["cuda"]) > 1024:
        raise Invalid("a list of CUDA generator states", rng["cuda"], "['cuda']")
    for index, state in enumerate(rng["cuda"]):
        _generator_state(state, f"['cuda'][{index}]", "cuda")  # tried only where CUDA is present
    _check_numpy_state(json_value(rng["numpy_global"], "numpy's global RNG state", "['numpy_global']"))
    _check_python_state(json_value(rng["python"], "Python's RNG state", "['python']"))
    mix = json_value(rng["mix"], "a numpy bit generator state", "['mix']")
    if not isinstance(mix, dict):
        raise Invalid("a numpy bit generator state", mix, "['mix']")
    _try("['mix']", lambda: setattr(np.random.PCG64(), "state", mix), mix)
    if "method" in rng:  # the method's device-side generator (PGD-AT's random start)
        _generator_state(rng["method"], "['method']", device if device is not None else "cpu")


def _check_numpy_state(state: Any) -> None:
    """``["MT19937", {"__ndarray__": 624 words, "dtype": "uint32"}, pos, has_gauss, cached]``."""
    where = "['numpy_global']"
    if (
        not isinstance(state, list)
        or len(state) != 5
        or not isinstance(state[1], dict)
        or state[1].get("dtype") != "uint32"
    ):
        raise Invalid("numpy's MT19937 state", state, where)
    try:
        key = _NUMPY_STATE(state[1].get("__ndarray__"))
        pos, has_gauss = integer(0, 624)(state[2]), integer(0, 1)(state[3])
        cached = number(-1e308, 1e308)(state[4])
    except Invalid as exc:
        raise Invalid(exc.expected, exc.got, where + exc.where, exc.shown) from None
    legacy = (state[0], np.array(key, dtype=np.uint32), pos, has_gauss, cached)
    _try(where, lambda: np.random.RandomState().set_state(legacy), state[0])


def _check_python_state(state: Any) -> None:
    """``[3, 625 words, gauss]`` (random.getstate() with tuples as lists)."""
    where = "['python']"
    if not isinstance(state, list) or len(state) != 3:
        raise Invalid("Python's RNG state", state, where)
    try:
        version = integer(0, 16)(state[0])
        words = _PYTHON_STATE(state[1])
        gauss = optional(number(-1e308, 1e308))(state[2])
    except Invalid as exc:
        raise Invalid(exc.expected, exc.got, where + exc.where, exc.shown) from None
    _try(where, lambda: random.Random().setstate((version, tuple(words), gauss)), state[1][-1])

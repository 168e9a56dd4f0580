"""model.pt and checkpoint.pt: what they hold, and checking every field before anything uses it.

model.pt is a state dict plus what rebuilds and checks the model: its architecture, the data it
takes (classes, channels, image size, normalization), the run it belongs to (dataset, method,
seed) and its test accuracy. checkpoint.pt is the state training resumes from (weights,
optimizer, RNGs, log), written after each epoch. Neither holds the training settings: the run's
config.toml is their one copy (:class:`~.rundir.RunDir`). Files of format 1 and checkpoints of
earlier versions also carried settings; those are still checked, and never used. Both are read with
``torch.load(weights_only=True)`` (no code runs), but their *contents* are still untrusted: a
hand-edited or crafted file can hold text where a number belongs, a negative epoch, or a
structure whose mere ``repr`` never ends. So each field is checked for type and range first
(:mod:`untrusted`), and messages show values only through :func:`untrusted.clip`.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_mm import __version__
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.files import atomic_torch_save, safe_torch_load
from robustbench_mm.core.untrusted import (
    Checker,
    Invalid,
    clip,
    clip_path,
    integer,
    listof,
    number,
    optional,
    plain,
    text,
)
from robustbench_mm.methods import METHODS
from robustbench_mm.models import ARCHS, create_model, is_arch
from robustbench_mm.store.rngstate import check_rng, json_value
from robustbench_mm.store.schemas import check_state_dict, first_non_finite

FORMAT_NAME = "robustbench_mm.model"
# 2: the training settings left model.pt (config.toml holds them). A version-1 reader would take
# the missing holdout settings for "no holdout" and fit another temperature, so it must refuse.
FORMAT_VERSION = 2
MODEL_FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
READ_FORMATS = tuple(f"{FORMAT_NAME}/{version}" for version in range(1, FORMAT_VERSION + 1))

SEED = integer(0, 2**32 - 1)  # numpy's and torch's seeds are 32-bit: larger ones wrap or fail
MAX_CLASSES = 100_000

# Every metadata field model.pt may hold, with its type and range. Paths and folder names
# (dataset, classes) may hold any character the file system allows; names we chose may not.
META_FIELDS: dict[str, Checker] = {
    "arch": text(64),
    "dataset": text(4200, printable=False),  # "imagefolder:" + a path (PATH_MAX 4096)
    "classes": listof(text(255, printable=False), MAX_CLASSES, 1, "class names"),  # folder names: NAME_MAX 255
    "in_channels": integer(1, 4),  # grey, grey+alpha, RGB, RGBA/CMYK
    "image_size": integer(1, 4096),
    "mean": listof(number(0, 1), 4, 1, "numbers"),  # of images in [0, 1]
    "std": listof(number(0, 1, lo_open=True), 4, 1, "numbers"),
    "method": text(64),
    "seed": SEED,
    "mix_modules": optional(listof(text(200), 64, 1, "module names")),  # builds the model
    "test_accuracy": number(0, 1),
    # format 1 also held settings (config.toml's copy is the one read): checked, never used
    "holdout_fraction": number(0, 0.5, hi_open=True),
    "holdout_seed": SEED,
    "epoch": integer(1, 10**7),
    "alpha": optional(number(0, 1e6, lo_open=True)),
    "mix_layers": optional(listof(integer(0, 64), 64, 1, "layer numbers")),
    "method_options": optional(text(20_000, printable=False)),  # JSON of the method's own settings
    "version": text(64),
    "torch": text(64),
}
REQUIRED_META = ("arch", "dataset", "classes", "in_channels", "image_size", "mean", "std", "method", "seed")


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies, so a channels_last CUDA model saves like a CPU one."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_model(path: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    payload = {"format": MODEL_FORMAT, "version": __version__, "torch": torch.__version__.split("+")[0], **meta}
    payload["state_dict"] = cpu_state_dict(model)
    atomic_torch_save(payload, path)


def _check_format(payload: Any, path: Path) -> None:
    marker = payload.get("format") if isinstance(payload, dict) else None
    if marker in READ_FORMATS:
        return
    found = re.fullmatch(re.escape(FORMAT_NAME) + r"/([0-9]{1,6})", marker) if isinstance(marker, str) else None
    if found and int(found.group(1)) > FORMAT_VERSION:
        writer = payload.get("version")
        writer = (
            f"robustbench_mm {writer}"
            if isinstance(writer, str) and writer.isprintable() and len(writer) <= 64
            else "a newer robustbench_mm"
        )
        raise UserError(
            f"{clip_path(path)} was written by {writer} (format {marker}); this robustbench_mm {__version__} "
            f"reads formats up to {MODEL_FORMAT}: upgrade robustbench_mm to use it"
        )
    raise UserError(f"{clip_path(path)} is not a robustbench_mm model file (no {MODEL_FORMAT!r} marker)")


def validate_model_meta(payload: dict, path: Path) -> dict[str, Any]:
    """The model.pt metadata, every field checked (type and range); unknown fields are dropped."""
    missing = [key for key in (*REQUIRED_META, "state_dict") if key not in payload]
    if missing:
        raise UserError(f"{clip_path(path)} lacks metadata: {', '.join(missing)}")
    meta = {}
    for key, check in META_FIELDS.items():
        if key in payload:
            try:
                meta[key] = check(payload[key])
            except Invalid as exc:
                raise UserError(f"{clip_path(path)}: bad metadata: {exc.describe(key)}") from None
    if meta["method"] not in METHODS:
        raise UserError(
            f"{clip_path(path)}: bad metadata: method {clip(meta['method'], 40)} is not a method of this bench "
            f"(valid: {', '.join(METHODS.names())})"
        )
    for key in ("mean", "std"):
        if len(meta[key]) != meta["in_channels"]:
            raise UserError(
                f"{clip_path(path)}: bad metadata: {key} has {len(meta[key])} values "
                f"for {meta['in_channels']} channel(s)"
            )
    return meta


def read_model_file(path: Path) -> dict[str, Any]:
    """Load and validate a model.pt (safely) without building the model: the checked metadata
    plus ``state_dict``."""
    path = Path(path)
    payload = safe_torch_load(path)
    _check_format(payload, path)
    meta = validate_model_meta(payload, path)
    meta["format"] = payload["format"]
    meta["state_dict"] = check_state_dict(payload["state_dict"], path, "state_dict")
    return meta


def _names(values: list[str]) -> str:
    return clip(list(values[:5]), 80) + ("…" if len(values) > 5 else "")


def load_model(
    path: Path,
    device: torch.device | str = "cpu",
    expect_arch: str | None = None,
    expect_dataset: str | None = None,
    expect_classes: list[str] | None = None,
    expect_input: tuple[int, int] | None = None,
    expect_method: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from a model.pt, checking its metadata before touching weights.

    ``expect_input`` is the data's (channels, image size)."""
    path = Path(path)
    payload = read_model_file(path)
    check_expected(payload, path, expect_arch, expect_dataset, expect_classes, expect_input, expect_method)
    where = clip_path(path)
    shape = (payload["in_channels"], payload["image_size"])
    spec = dict(num_classes=len(payload["classes"]), in_channels=shape[0], image_size=shape[1])
    spec.update(mean=payload["mean"], std=payload["std"], mix_modules=payload.get("mix_modules"))
    # shapes only, no memory: a crafted image_size cannot make us allocate (timm/torchvision models
    # ignore image_size, and some of timm's constructors read tensor values, which meta has not)
    with torch.device("meta") if payload["arch"] in ARCHS else contextlib.nullcontext():
        blueprint = create_model(payload["arch"], **spec)
    _check_fit(blueprint, payload["state_dict"], payload["arch"], where)
    _check_normalization(payload["state_dict"], payload, where)
    model = create_model(payload["arch"], **spec)
    restore_state(model, payload["state_dict"], path, f"weights do not fit a {payload['arch']} model")
    model.eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.to(device), meta


def check_expected(
    meta: dict[str, Any],
    path: Path,
    expect_arch: str | None = None,
    expect_dataset: str | None = None,
    expect_classes: list[str] | None = None,
    expect_input: tuple[int, int] | None = None,
    expect_method: str | None = None,
) -> None:
    """A model file's (checked) metadata against what its user expects (one line otherwise):
    ``load_model``'s checks, also for a model already loaded without them."""
    where = clip_path(path)
    if expect_arch is not None and meta["arch"] != expect_arch:
        raise UserError(f"{where} holds a {meta['arch']} model, expected {plain(expect_arch)}")
    if expect_dataset is not None and meta["dataset"] != expect_dataset:
        raise UserError(
            f"{where} was trained on {clip_path(meta['dataset'], 80)}, expected {clip_path(expect_dataset, 80)}"
        )
    if expect_method is not None and meta["method"] != expect_method:
        raise UserError(
            f"{where} holds a {plain(meta['method'])} model, the run's config.toml says {plain(expect_method)}"
        )
    if expect_classes is not None and meta["classes"] != list(expect_classes):
        raise UserError(
            f"{where} was trained on {len(meta['classes'])} classes {_names(meta['classes'])}, "
            f"the dataset has {len(expect_classes)} {_names(list(expect_classes))}"
        )
    if not is_arch(meta["arch"]):
        raise UserError(f"{where} holds an unknown architecture {meta['arch']!r}; valid: {', '.join(ARCHS.names())}")
    shape = (meta["in_channels"], meta["image_size"])
    if expect_input is not None and shape != tuple(expect_input):
        raise UserError(
            f"{where} takes {shape[0]}-channel {shape[1]}x{shape[1]} images, the dataset has "
            f"{expect_input[0]}-channel {expect_input[1]}x{expect_input[1]} ones"
        )


def _check_fit(blueprint: nn.Module, state: dict[str, torch.Tensor], arch: str, where: str) -> None:
    """Same names, shapes and dtypes as the architecture's own state dict, else one line."""
    expected = blueprint.state_dict()
    problem = None
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        problem = f"missing {clip(missing[:3], 60)}, unexpected {clip(unexpected[:3], 60)}"
    else:
        for key, tensor in expected.items():
            got = state[key]
            if got.shape != tensor.shape or got.dtype != tensor.dtype:
                problem = (
                    f"{clip(key, 60)}: {tuple(got.shape)[:8]} {got.dtype} in the file, "
                    f"{tuple(tensor.shape)} {tensor.dtype} expected"
                )
                break
    if problem:
        raise UserError(f"{where}: weights do not fit a {arch} model ({problem})")


def _check_normalization(state: dict[str, torch.Tensor], meta: dict[str, Any], where: str) -> None:
    """The model normalizes with its mean/std buffers: they must be the metadata's (checked) values."""
    for key in ("mean", "std"):
        if key in state and not torch.allclose(
            state[key].double().flatten(), torch.tensor(meta[key], dtype=torch.float64), atol=1e-6
        ):
            raise UserError(
                f"{where}: the weights' {key} buffer differs from the metadata's {key} {clip(meta[key], 60)}"
            )


def restore_state(target: Any, state: Any, path: Path, what: str) -> None:
    """``target.load_state_dict(state)`` (a module or an optimizer), any refusal as one line."""
    try:
        target.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, ValueError, KeyError, IndexError) as exc:
        detail = " ".join(line.strip() for line in str(exc)[:2000].splitlines() if line.strip()) or type(exc).__name__
        raise UserError(f"{clip_path(path)}: {what} ({plain(detail, 200)})") from None


# ------------------------------------------------------------------------------ checkpoint.pt


def validate_checkpoint(payload: Any, path: Path, epochs: int, device: torch.device | str | None = None) -> dict:
    """Check a checkpoint.pt (as train.py writes it) before resuming from it; returns it unchanged.

    Keys: ``epoch`` (1..``epochs``), ``model`` (named tensors; whether they fit the model is
    :func:`restore_state`'s check), ``optimizer``, ``rng`` (each RNG state is tried on a
    throwaway generator: ``device`` is where the augmentation generator lives) and ``log`` (JSON:
    one flat dict per epoch done). Checkpoints of earlier versions also hold ``config`` (the
    settings as a JSON object; config.toml's copy is the one read): checked when present. One
    line naming the file and the field otherwise.
    """
    where = clip_path(path)
    if not isinstance(payload, dict):
        raise UserError(f"{where} is not a training checkpoint (got {clip(payload, 40)})")
    missing = [k for k in ("epoch", "model", "optimizer", "rng", "log") if k not in payload]
    if missing:
        raise UserError(f"{where} is not a complete training checkpoint: no {', '.join(missing)}")
    try:
        epoch = integer(1, max(int(epochs), 1))(payload["epoch"])
    except Invalid as exc:
        raise UserError(f"{where}: {exc.describe('epoch')}; the run is configured for {epochs} epochs") from None
    check_state_dict(payload["model"], path, "model")
    for field, check in (
        ("optimizer", _check_optimizer),
        ("rng", lambda v: check_rng(v, device)),
        ("log", lambda v: _check_log(v, epoch)),
        ("config", _check_config),
    ):
        if field == "config" and field not in payload:
            continue  # written by earlier versions only
        try:
            check(payload[field])
        except Invalid as exc:
            raise UserError(f"{where}: {exc.describe(field)}") from None
    return payload


def _check_optimizer(state: Any) -> None:
    expected = "an optimizer state (a dict with 'state' and 'param_groups')"
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("state"), dict)
        or not isinstance(state.get("param_groups"), list)
    ):
        raise Invalid(expected, state)
    for index, group in enumerate(state["param_groups"]):
        if not isinstance(group, dict) or not isinstance(group.get("params"), list):
            raise Invalid("a dict with a 'params' list", group, f"['param_groups'][{index}]")
    damaged = first_non_finite(state["state"])
    if damaged is not None:
        raise Invalid(
            "finite numbers (the file is damaged)", state["state"][damaged], f"['state'][{clip(damaged, 20)}]"
        )


def _check_log(value: Any, epoch: int) -> None:
    rows = json_value(value, "a list of one dict per epoch")
    scalar = (int, float, str, bool, type(None))
    if not isinstance(rows, list):
        raise Invalid("a list of one dict per epoch", rows)
    if len(rows) != epoch:
        raise Invalid(f"one row per epoch done ({epoch})", rows, shown=f"{len(rows)} rows")
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not all(isinstance(v, scalar) for v in row.values()):
            raise Invalid("a dict of numbers and texts", row, f"[{index}]")


def _check_config(value: Any) -> None:
    if not isinstance(json_value(value, "a dict of settings"), dict):
        raise Invalid("a dict of settings as JSON text", value)

"""The training loop: one dataset + one method -> a run directory with a trained model.

A run directory holds ``config.toml`` (the resolved settings), ``checkpoint.pt`` (everything
needed to resume: model, optimizer, epoch, every RNG state; rewritten atomically after each
epoch), ``train_log.csv`` (one row per epoch) and, at the end, ``model.pt``.

The data lives in tensors. When it fits, it is moved to the training device once (uint8 for
8-bit datasets) and batches, crops and flips are made there: no DataLoader workers, no
per-image Python. Otherwise it stays in pinned host memory and each batch is copied over
asynchronously. Randomness comes from three seeded sources whose states the checkpoint
keeps: torch's global RNG (model init), a ``torch.Generator`` for data order and
augmentation, and a NumPy generator for λ and the mixing layer.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .calibration import holdout_split
from .checkpoint import save_model
from .config import TrainConfig, config_differences, load_train_config, save_train_config
from . import distributed, schedules
from .data import DatasetSplits, apply_crop_flip, draw_crop_flip, load_dataset, to_float
from .errors import UserError
from .inference import predict_logits, resolve_device
from .methods import create_method
from .models import create_model
from .storage import atomic_torch_save, atomic_write_text, ensure_writable_dir, safe_torch_load

RUN_FILES = ("config.toml", "checkpoint.pt", "model.pt", "train_log.csv", "metrics.csv", "per_example.npz", "reliability.csv")


@dataclass
class TrainResult:
    run_dir: Path
    test_accuracy: float
    epochs: int
    seconds: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, holdout) of the training split; the holdout calibrates temperature.

    Fixed by the run's seed (see :func:`calibration.holdout_split`) and recorded in the run's
    config.toml and model.pt, so evaluation finds exactly the examples training never saw.
    """
    if fraction == 0:
        return torch.arange(n), torch.empty(0, dtype=torch.int64)
    train_idx, holdout_idx = holdout_split(n, fraction, seed)
    return torch.from_numpy(train_idx), torch.from_numpy(holdout_idx)


def lr_factor(schedule: str, epoch: int, epochs: int, milestones: list[int] | None = None) -> float:
    """lr multiplier for ``epoch`` (0-based): ÷10 at each milestone (default 1/3 and 2/3 of
    training, the paper's shape: 1,200 epochs with drops at 400 and 800), or cosine."""
    if schedule == "step":
        marks = milestones if milestones else [round(epochs / 3), round(2 * epochs / 3)]
        return 0.1 ** sum(epoch >= m for m in marks)
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def _fits_on_device(data: DatasetSplits, device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    needed = data.train_x.numel() * data.train_x.element_size() + data.test_x.numel() * data.test_x.element_size()
    return needed < 0.25 * free


def _rng_state(data_gen: torch.Generator, aug_gen: torch.Generator, mix_rng: np.random.Generator) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data": data_gen.get_state(),
        "augment": aug_gen.get_state(),
        "numpy_global": json.dumps(_jsonable(np.random.get_state())),
        "python": json.dumps(_jsonable(random.getstate())),
        "mix": json.dumps(mix_rng.bit_generator.state),
    }


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _restore_numpy_state(encoded) -> tuple:
    name, keys, pos, has_gauss, cached = encoded
    return (name, np.array(keys["__ndarray__"], dtype=keys["dtype"]), pos, has_gauss, cached)


def _restore_python_state(encoded) -> tuple:
    version, internal, gauss = encoded
    return (version, tuple(internal), gauss)


def _set_rng_state(state: dict, data_gen: torch.Generator, aug_gen: torch.Generator, mix_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    data_gen.set_state(state["data"])
    aug_gen.set_state(state["augment"])
    np.random.set_state(_restore_numpy_state(json.loads(state["numpy_global"])))
    random.setstate(_restore_python_state(json.loads(state["python"])))
    mix_rng.bit_generator.state = json.loads(state["mix"])


REPLACED = ".replaced"  # --force keeps the old run here until the new one is complete


def prepare_run_dir(run_dir: Path, force: bool, resume: bool, say: Callable[[str], None] = lambda s: None) -> None:
    """Refuse to overwrite an existing run unless --force.

    --force touches only our own files, and loses nothing if the new run is interrupted: the old
    files move to ``<run>/.replaced/`` and are deleted once the new model.pt is written. (If
    ``.replaced`` already exists, an earlier --force run was interrupted: it holds the last
    complete run and stays, and the interrupted run's files are removed.)
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} exists and is not a directory")
    existing = [name for name in RUN_FILES if (run_dir / name).exists()]
    if existing and not (force or resume):
        raise UserError(f"run directory {run_dir} already exists; pass --force to replace it or --resume to continue it")
    ensure_writable_dir(run_dir)
    if force and not resume and existing:
        backup = run_dir / REPLACED
        keep = not backup.exists()
        backup.mkdir(exist_ok=True)
        for name in existing:
            path = run_dir / name
            if keep:
                path.replace(backup / name)
            else:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        say(f"the replaced run is kept in {backup} until this one finishes")


def _drop_replaced(run_dir: Path) -> None:
    shutil.rmtree(run_dir / REPLACED, ignore_errors=True)


def train(
    cfg: TrainConfig,
    *,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
    data: DatasetSplits | None = None,
    log: Callable[[str], None] | None = None,
    run_dir: Path | None = None,
    sync_bn: bool = False,
) -> TrainResult:
    """Train one (dataset, arch, method, seed) and write its run directory."""
    cfg.validate()
    device = resolve_device(cfg.device)
    dctx = distributed.setup(device)
    device = distributed.rank_device(device, dctx)
    say = log or (lambda message: print(message, file=sys.stderr))
    if not dctx.main:
        say, progress = (lambda message: None), False
    try:
        return _train(cfg, device, dctx, force, resume, progress, data, say, run_dir, sync_bn)
    finally:
        distributed.teardown(dctx)


def _train(cfg, device, dctx, force, resume, progress, data, say, run_dir, sync_bn) -> TrainResult:
    data = data if data is not None else load_dataset(cfg.dataset, cfg.data_root, cfg.download)
    cfg = cfg.resolved(data.default_arch)
    seed_everything(cfg.seed)
    model = create_model(cfg.arch, data.num_classes, data.in_channels, data.image_size, data.mean, data.std)
    method = create_method(
        cfg.method, cfg.alpha, cfg.mix_layers, model.mix_layers, mix_loss=cfg.mix_loss, pairing=cfg.pairing
    )
    cfg.alpha = method.alpha if method.mixes else None
    cfg.mix_layers = list(method.mix_layers) if method.mixes else None
    run_dir = Path(run_dir) if run_dir is not None else Path(cfg.out_dir) / cfg.run_name

    resume_state = None
    if resume and (run_dir / "checkpoint.pt").exists():
        previous = load_train_config(run_dir / "config.toml")
        changed = config_differences(previous, cfg)
        if changed:
            raise UserError(f"--resume with settings that differ from {run_dir / 'config.toml'}: {', '.join(changed)}")
        resume_state = safe_torch_load(run_dir / "checkpoint.pt")
        if not isinstance(resume_state, dict) or "epoch" not in resume_state:
            raise UserError(f"{run_dir / 'checkpoint.pt'} is not a training checkpoint")
    if dctx.main:
        prepare_run_dir(run_dir, force, resume, say)
    distributed.barrier(dctx)

    train_idx, holdout_idx = training_split(len(data.train_y), cfg.holdout_fraction, cfg.seed)
    amp = device.type == "cuda" if cfg.amp == "auto" else cfg.amp == "on"
    model, channels_last = to_training_layout(model, device, amp)
    model.to(device)
    core = model  # the plain module: what we save, evaluate and resume
    if dctx.active:
        from torch.nn.parallel import DistributedDataParallel

        if sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            core = model
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    on_device = _fits_on_device(data, device)
    train_x, train_y = data.train_x[train_idx], data.train_y[train_idx]
    if on_device:
        train_x, train_y = train_x.to(device), train_y.to(device)
    elif device.type == "cuda":
        train_x, train_y = train_x.pin_memory(), train_y.pin_memory()
    say(f"data: {len(train_y)} training images {'resident on ' + str(device) if on_device else 'in pinned host memory, copied per batch'}")

    optimizer = make_optimizer(model.parameters(), cfg, device)
    step_model = torch.compile(model) if cfg.compile else model
    data_gen = torch.Generator().manual_seed(cfg.seed)  # epoch order (CPU: same on every device)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed)  # crops and flips, on the device
    mix_rng = np.random.default_rng(cfg.seed)
    log_rows: list[dict] = []
    start_epoch = 0
    if resume_state is not None:
        core.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        _set_rng_state(resume_state["rng"], data_gen, aug_gen, mix_rng)
        log_rows = json.loads(resume_state["log"])
        start_epoch = int(resume_state["epoch"])
        say(f"resuming {run_dir} after epoch {start_epoch}")

    run_meta = {"train_images": len(train_idx), "holdout_images": len(holdout_idx), "holdout_seed": cfg.seed,
                "processes": dctx.world}
    if dctx.main:
        save_train_config(cfg, run_dir / "config.toml", run_meta)

    n = len(train_y)
    batch_size = min(cfg.batch_size, n)
    steps = n // batch_size
    # Under torchrun each rank trains on its slice of every global batch (same order on all ranks).
    per_rank = distributed.local_batch(batch_size, dctx)
    mine = slice(dctx.rank * per_rank, (dctx.rank + 1) * per_rank)
    started = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=data_gen)
        if on_device:
            order = order.to(device)  # one copy per epoch, not one per step
        total_loss = torch.zeros((), device=device)
        total_correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        bar = _progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", progress)
        for step in range(steps):
            # per step, so a schedule means the same at 1 epoch as at 1,000 (see schedules.py)
            lr = cfg.lr * schedules.lr_factor(cfg.schedule, epoch * steps + step, cfg.epochs * steps, steps, cfg.milestones)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = order[step * batch_size : (step + 1) * batch_size][mine]
            x = train_x[idx].to(device, non_blocking=True)
            y = train_y[idx].to(device, non_blocking=True)
            x = to_float(x)
            if data.crop_padding or data.flip:
                # Drawn for the whole global batch, so every rank's generator stays in step.
                offsets, flips = draw_crop_flip(batch_size, data.crop_padding, data.flip, aug_gen)
                x = apply_crop_flip(x, data.crop_padding, offsets[:, mine], flips[mine])
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            mix = method.draw_mix(len(y), mix_rng, device, as_tensor=cfg.compile)
            loss, logits = train_step(step_model, method, optimizer, x, y, mix, amp)
            total_loss += loss.detach() * len(y)
            total_correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            if bar is not None:
                bar.update(1)
                if step % 50 == 0 or step == steps - 1:  # .item() waits for the GPU: rarely
                    bar.set_postfix(loss=f"{total_loss.item() / seen:.4f}", acc=f"{total_correct.item() / seen:.3f}")
        if bar is not None:
            bar.close()
        totals = distributed.all_reduce_sum(torch.stack([total_loss.float(), total_correct.float()]), dctx)
        seen *= dctx.world
        total_loss, total_correct = totals[0], totals[1].long()
        train_loss = total_loss.item() / seen
        if not math.isfinite(train_loss):
            raise UserError(f"training diverged at epoch {epoch + 1} (loss {train_loss}); lower --lr")
        log_rows.append(
            {
                "epoch": epoch + 1,
                "loss": round(train_loss, 6),
                "train_accuracy": round(total_correct.item() / seen, 6),
                "lr": lr,
                "seconds": round(time.perf_counter() - epoch_start, 3),
            }
        )
        if not dctx.main:
            continue
        atomic_torch_save(
            {
                "epoch": epoch + 1,
                "model": {k: v.detach().clone() for k, v in core.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(data_gen, aug_gen, mix_rng),
                "log": json.dumps(log_rows),
                "config": json.dumps(asdict(cfg)),
            },
            run_dir / "checkpoint.pt",
        )
        # The log follows the checkpoint, so it never claims an epoch a resume would redo.
        atomic_write_text(run_dir / "train_log.csv", pd.DataFrame(log_rows).to_csv(index=False))

    test_accuracy = _test_accuracy(core, data, dctx)
    if not dctx.main:
        return TrainResult(run_dir=run_dir, test_accuracy=test_accuracy, epochs=cfg.epochs, seconds=time.perf_counter() - started)
    save_model(
        run_dir / "model.pt",
        core,
        {
            "arch": cfg.arch,
            "dataset": cfg.dataset,
            "classes": list(data.classes),
            "in_channels": data.in_channels,
            "image_size": data.image_size,
            "mean": list(data.mean),
            "std": list(data.std),
            "method": cfg.method,
            "alpha": cfg.alpha,
            "mix_layers": cfg.mix_layers,
            "seed": cfg.seed,
            "epoch": cfg.epochs,
            "holdout_fraction": cfg.holdout_fraction,
            "holdout_seed": cfg.seed,
            "test_accuracy": round(test_accuracy, 6),
        },
    )
    _drop_replaced(run_dir)  # the new run is complete: the one it replaces can go
    return TrainResult(run_dir=run_dir, test_accuracy=test_accuracy, epochs=cfg.epochs, seconds=time.perf_counter() - started)


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
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay, fused=device.type == "cuda" or None)


def train_step(model, method, optimizer, x, y, mix, amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step (bf16 autocast when ``amp``); returns (loss, logits), unsynchronized."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        loss, logits = method.loss(model, x, y, mix)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits


def _test_accuracy(model: torch.nn.Module, data: DatasetSplits, dctx: distributed.Dist) -> float:
    """Test accuracy; under torchrun each rank scores a shard and the counts are summed."""
    shard = slice(dctx.rank, None, dctx.world)
    logits = predict_logits(model, data.test_x[shard], batch_size=1000, to_float=to_float)
    correct = (logits.argmax(1) == data.test_y[shard]).sum().double()
    device = next(model.parameters()).device
    total = distributed.all_reduce_sum(correct.to(device), dctx)
    return float(total.item() / len(data.test_y))


def _progress(total: int, description: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=description, leave=False, file=sys.stderr, dynamic_ncols=True)

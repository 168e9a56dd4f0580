"""The training loop: one dataset + one method -> a run directory with a trained model.

The data lives in tensors. When it fits, it is moved to the training device once (uint8 for
8-bit datasets) and batches, crops and flips are made there: no DataLoader workers, no
per-image Python. Otherwise it stays in pinned host memory and each batch is copied over
asynchronously. Randomness comes from seeded sources whose states every checkpoint keeps
(:mod:`.randomness`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from robustbench_mm.core import distributed
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.inference import predict_logits, resolve_device, torch_threads
from robustbench_mm.core.randomness import Randomness, seed_everything
from robustbench_mm.data.datasets import DatasetSplits, apply_crop_flip, draw_crop_flip, load_dataset, to_float
from robustbench_mm.data.splits import training_split
from robustbench_mm.methods import Method, Step, create_method
from robustbench_mm.models import create_model
from robustbench_mm.settings import TrainConfig
from robustbench_mm.store.checkpoint import restore_state, validate_checkpoint
from robustbench_mm.store.rundir import RunDir
from robustbench_mm.training import schedules
from robustbench_mm.training.checks import check_trainable
from robustbench_mm.training.step import make_optimizer, place_training_data, to_training_layout, train_step


@dataclass
class TrainResult:
    run_dir: Path
    test_accuracy: float
    epochs: int
    seconds: float
    state: str = "new"  # what the run directory held: new, resume, finished (reused) or replace


# ------------------------------------------------------------------------------ the run


@dataclass
class Session:
    """One training run in progress: settings, model, data on the device, randomness."""

    cfg: TrainConfig
    method: Method
    run: RunDir
    data: DatasetSplits
    device: torch.device
    dctx: distributed.Dist
    model: torch.nn.Module  # what the steps call (DDP-wrapped under torchrun)
    core: torch.nn.Module  # the plain module: saved, evaluated and resumed
    optimizer: torch.optim.Optimizer
    rand: Randomness
    train_x: torch.Tensor
    train_y: torch.Tensor
    on_device: bool
    amp: bool
    channels_last: bool
    say: Callable[[str], None]
    progress: bool | str
    log_rows: list[dict]
    last_line: float = float("-inf")  # when the last epoch line was printed (lines mode)
    start_epoch: int = 0


def train(
    cfg: TrainConfig,
    *,
    out_dir: str | Path = "runs",
    force: bool = False,
    progress: bool | str = True,
    data: DatasetSplits | None = None,
    log: Callable[[str], None] | None = None,
    run_dir: str | Path | None = None,
    sync_bn: bool = False,
) -> TrainResult:
    """Train one (dataset, arch, method, seed) into ``run_dir`` (default ``out_dir/<run name>``).

    Make-like: a finished run of the same settings is reused as it is, an interrupted one is
    resumed from its last checkpoint, a run of other settings is refused unless ``force``.
    ``progress``: True or "bar" (a bar per epoch), "lines" (a line per epoch to ``log``), False or "off".
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    dctx = distributed.setup(device)
    device = distributed.rank_device(device, dctx)
    say = log or (lambda message: print(message, file=sys.stderr))
    if not dctx.main:
        say, progress = (lambda message: None), False
    try:
        data = data if data is not None else load_dataset(cfg.dataset, cfg.data_root, cfg.download)
        cfg, method = resolve_config(cfg, data)
        run = RunDir(run_dir) if run_dir is not None else RunDir.of(out_dir, cfg)
        run.training_state(cfg, force)  # refuse other settings before any folder is made
        lock = run.locked("mmbench train") if dctx.main else contextlib.nullcontext()
        with lock, torch_threads(cfg.cpu_threads if device.type == "cpu" else None):
            state = run.training_state(cfg, force)  # again, now that no one else can change it
            if state == "finished":
                return _reused(run, cfg, say)
            session = _start(cfg, method, data, device, dctx, run, state, sync_bn, say, progress)
            started = time.perf_counter()
            for epoch in range(session.start_epoch, session.cfg.recipe.epochs):
                _train_epoch(session, epoch)
            return dataclasses.replace(_finish(session, started), state=state)
    finally:
        distributed.teardown(dctx)


def resolve_config(cfg: TrainConfig, data: DatasetSplits) -> tuple[TrainConfig, Method]:
    """The config with every default filled in (the method's settings included), and its method."""
    cfg = cfg.resolved(data.default_arch, data.profile)
    method = create_method(cfg.method, cfg.method_options).resolved(data)
    cfg.method_options = method.options()
    if isinstance(data, DatasetSplits):  # not a stand-in that only names the runs (mmbench run --plan)
        check_trainable(cfg, data)
    return cfg, method


def _reused(run: RunDir, cfg: TrainConfig, say: Callable[[str], None]) -> TrainResult:
    """A finished run of ``cfg`` (config.toml holds the same settings): its model, checked."""
    meta = run.load_model()[1]
    say(f"{run} is up to date (the same settings, trained): reused")
    return TrainResult(
        run_dir=run.path,
        test_accuracy=float(meta.get("test_accuracy", float("nan"))),
        epochs=cfg.recipe.epochs,
        seconds=0.0,
        state="finished",
    )


def _start(
    cfg: TrainConfig,
    method: Method,
    data: DatasetSplits,
    device: torch.device,
    dctx: distributed.Dist,
    run: RunDir,
    state: str,
    sync_bn: bool,
    say: Callable[[str], None],
    progress: bool | str,
) -> Session:
    seed_everything(cfg.seed)
    assert cfg.arch is not None  # resolve_config filled it in
    net = create_model(
        cfg.arch, data.num_classes, data.in_channels, data.image_size, data.mean, data.std, cfg.mix_modules
    )
    method.check_model(net)
    resume_state = _resume_state(run, cfg, device) if state == "resume" else None
    if dctx.main and resume_state is None:
        run.prepare(replace=state == "replace", say=say)
    distributed.barrier(dctx)

    train_idx, holdout_idx = training_split(len(data.train_y), cfg.holdout_fraction, cfg.seed)
    amp = device.type == "cuda" if cfg.amp == "auto" else cfg.amp == "on"
    laid_out, channels_last = to_training_layout(net, device, amp)
    model, core = _distributed(laid_out.to(device), device, dctx, sync_bn)
    train_x, train_y, on_device = place_training_data(data, train_idx, device)
    say(
        f"data: {len(train_y)} training images "
        + (f"resident on {device}" if on_device else "in pinned host memory, copied per batch")
    )
    session = Session(
        cfg=cfg,
        method=method,
        run=run,
        data=data,
        device=device,
        dctx=dctx,
        model=model,
        core=core,
        optimizer=make_optimizer(model.parameters(), cfg, device),
        rand=Randomness(cfg.seed, device),
        train_x=train_x,
        train_y=train_y,
        on_device=on_device,
        amp=amp,
        channels_last=channels_last,
        say=say,
        progress=progress,
        log_rows=[],
    )
    if cfg.compile:
        session.model = typing.cast(torch.nn.Module, torch.compile(model))  # a compiled module calls like one
    if resume_state is not None:
        path = run.checkpoint_path
        restore_state(core, resume_state["model"], path, f"the checkpoint's weights do not fit a {cfg.arch} model")
        restore_state(
            session.optimizer, resume_state["optimizer"], path, "the checkpoint's optimizer state does not fit"
        )
        session.rand.restore(resume_state["rng"])
        session.log_rows = json.loads(resume_state["log"])
        session.start_epoch = int(resume_state["epoch"])
        say(f"resuming {run} after epoch {session.start_epoch}")
    if dctx.main:
        run.write_config(
            cfg,
            {
                "train_images": len(train_idx),
                "holdout_images": len(holdout_idx),
                "holdout_seed": cfg.seed,
                "processes": dctx.world,
            },
        )
    return session


def _distributed(
    model: torch.nn.Module, device: torch.device, dctx: distributed.Dist, sync_bn: bool
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the module to train, the module whose weights are saved): DDP-wrapped under torchrun."""
    if not dctx.active:
        return model, model
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None), model


def _resume_state(run: RunDir, cfg: TrainConfig, device: torch.device) -> dict:
    """The checkpoint to continue from, checked field by field before any of it is used."""
    path = run.checkpoint_path
    return validate_checkpoint(run.read_checkpoint(), path, cfg.recipe.epochs, device=device)


def _set_lr(s: Session, step: int, steps_per_epoch: int) -> float:
    """Set the lr of optimizer step ``step``: per step, so a schedule means the same at 1 epoch as at 1,000."""
    recipe = s.cfg.recipe
    factor = schedules.lr_factor(
        recipe.schedule, step, recipe.epochs * steps_per_epoch, steps_per_epoch, s.cfg.milestones
    )
    lr = recipe.lr * factor
    for group in s.optimizer.param_groups:
        group["lr"] = lr
    return lr


def _train_epoch(s: Session, epoch: int) -> None:
    cfg, device = s.cfg, s.device
    epoch_start = time.perf_counter()
    s.model.train()
    n = len(s.train_y)
    batch_size = min(cfg.recipe.batch_size, n)
    steps = n // batch_size
    first_lr = _set_lr(s, epoch * steps, steps)
    # Under torchrun each rank trains on its slice of every global batch (same order on all ranks).
    per_rank = distributed.local_batch(batch_size, s.dctx)
    mine = slice(s.dctx.rank * per_rank, (s.dctx.rank + 1) * per_rank)
    order = torch.randperm(n, generator=s.rand.data)
    if s.on_device:
        order = order.to(device)  # one copy per epoch, not one per step
    total_loss = torch.zeros((), device=device)
    total_correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    step_rand = Step(rng=s.rand.mix, generator=s.rand.method, loss_kind=cfg.mix_loss, lam_as_tensor=cfg.compile)
    bar = _progress(steps, f"epoch {epoch + 1}/{cfg.recipe.epochs}", s.progress)
    for step in range(steps):
        if step:
            _set_lr(s, epoch * steps + step, steps)
        x, y = _batch(s, order[step * batch_size : (step + 1) * batch_size][mine], batch_size, mine)
        loss, logits = train_step(s.model, s.method, s.optimizer, x, y, step_rand, s.amp)
        total_loss += loss.detach() * len(y)
        total_correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if bar is not None:
            bar.update(1)
            if step % 50 == 0 or step == steps - 1:  # .item() waits for the GPU: rarely
                bar.set_postfix(loss=f"{total_loss.item() / seen:.4f}", acc=f"{total_correct.item() / seen:.3f}")
    if bar is not None:
        bar.close()
    totals = distributed.all_reduce_sum(torch.stack([total_loss.float(), total_correct.float()]), s.dctx)
    seen *= s.dctx.world
    train_loss = totals[0].item() / seen
    if not math.isfinite(train_loss):
        raise UserError(f"training diverged at epoch {epoch + 1} (loss {train_loss}); lower --lr")
    s.log_rows.append(
        {
            "epoch": epoch + 1,
            "loss": round(train_loss, 6),
            "train_accuracy": round(totals[1].long().item() / seen, 6),
            "lr": first_lr,
            "seconds": round(time.perf_counter() - epoch_start, 3),
        }
    )
    if s.progress == "lines":
        _epoch_line(s, epoch)
    if s.dctx.main:
        _save_checkpoint(s, epoch)


LINE_EVERY_S = 10.0  # a log gets an epoch line at most this often (and always the last epoch's)


def _epoch_line(s: Session, epoch: int) -> None:
    """A log file or CI: a line per finished epoch instead of a bar, thinned out when epochs are short."""
    now = time.perf_counter()
    if epoch + 1 < s.cfg.recipe.epochs and now - s.last_line < LINE_EVERY_S:
        return
    s.last_line = now
    row = s.log_rows[-1]
    s.say(
        f"epoch {epoch + 1}/{s.cfg.recipe.epochs}: loss {row['loss']:.4f}, "
        f"train accuracy {row['train_accuracy'] * 100:.1f}%, {row['seconds']:.0f} s"
    )


def _batch(s: Session, idx: torch.Tensor, batch_size: int, mine: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """One training batch on the device: float in [0, 1], augmented, in the model's layout."""
    x = to_float(s.train_x[idx].to(s.device, non_blocking=True))
    y = s.train_y[idx].to(s.device, non_blocking=True)
    data = s.data
    if data.crop_padding or data.flip:
        # Drawn for the whole global batch, so every rank's generator stays in step.
        offsets, flips = draw_crop_flip(batch_size, data.crop_padding, data.flip, s.rand.augment)
        x = apply_crop_flip(x, data.crop_padding, offsets[:, mine], flips[mine])
    if s.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def _save_checkpoint(s: Session, epoch: int) -> None:
    s.run.write_checkpoint(
        {
            "epoch": epoch + 1,
            "model": {k: v.detach().clone() for k, v in s.core.state_dict().items()},
            "optimizer": s.optimizer.state_dict(),
            "rng": s.rand.state(),
            "log": json.dumps(s.log_rows),  # the settings are config.toml's, written before the first epoch
        }
    )
    # The log follows the checkpoint, so it never claims an epoch a resume would redo.
    s.run.write_train_log(s.log_rows)


def _finish(s: Session, started: float) -> TrainResult:
    cfg, data = s.cfg, s.data
    test_accuracy = _test_accuracy(s.core, data, s.dctx)
    result = TrainResult(
        run_dir=s.run.path, test_accuracy=test_accuracy, epochs=cfg.recipe.epochs, seconds=time.perf_counter() - started
    )
    if not s.dctx.main:
        return result
    # what builds and checks the model (and which run it is); its settings stay in config.toml
    s.run.save_model(
        s.core,
        {
            "arch": cfg.arch,
            "dataset": cfg.dataset,
            "classes": list(data.classes),
            "in_channels": data.in_channels,
            "image_size": data.image_size,
            "mean": list(data.mean),
            "std": list(data.std),
            "method": cfg.method,
            "mix_modules": cfg.mix_modules,
            "seed": cfg.seed,
            "test_accuracy": round(test_accuracy, 6),
        },
    )
    s.run.drop_replaced()  # the new run is complete: the one it replaces can go
    return result


def _test_accuracy(model: torch.nn.Module, data: DatasetSplits, dctx: distributed.Dist) -> float:
    """Test accuracy; under torchrun each rank scores a shard and the counts are summed."""
    shard = slice(dctx.rank, None, dctx.world)
    logits = predict_logits(model, data.test_x[shard], batch_size=1000, to_float=to_float)
    correct = (logits.argmax(1) == data.test_y[shard]).sum().double()
    device = next(model.parameters()).device
    total = distributed.all_reduce_sum(correct.to(device), dctx)
    return float(total.item() / len(data.test_y))


def _progress(total: int, description: str, mode: bool | str):
    if mode not in (True, "bar"):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=description, leave=False, file=sys.stderr, dynamic_ncols=True)

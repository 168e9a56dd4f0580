"""The attack registry and the one driver every attack runs through.

An attack is registered as an :class:`AttackSpec`: its threat model (norm, whether it is
bounded by ε), how many classes it needs, and a *batch function* that turns one batch of
clean images into adversarial images. :func:`attack` owns everything around it, so no attack
can skip it:

* validation of the user's numbers (one-line :class:`UserError`);
* eval mode restored afterwards (:func:`evaluating`) and parameters frozen (no parameter
  gradients are ever computed or accumulated, and the caller's ``requires_grad`` flags return);
* batching on the model's device (batch size 0: from free CUDA memory), opt-in bf16 autocast
  + channels_last on CUDA (fp32 by default: see :func:`precision_mode`);
* only examples classified correctly on clean inputs are attacked (AutoAttack's habit: an
  example misclassified clean is not robust whatever the attack does);
* every adversarial batch is checked: finite, inside [0, 1] and inside the ε-ball. A violation
  raises :class:`AttackCheckError` -- a broken attack must never produce a number;
* under :func:`sharded` (``torchrun ... evaluate``) each process attacks every N-th batch and
  all processes receive the whole result. A batch's randomness depends only on the caller's
  generator and the batch's index (:func:`batch_generator`), so the numbers are the same for any
  number of processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .. import distributed
from ..errors import UserError
from ..inference import evaluating, model_device
from ..registry import Registry

NORMS = ("linf", "l2", "none")
PRECISIONS = ("auto", "fp32", "bf16")
LINF_TOL = 1e-6  # float32 rounding of x + ε stays far below this
L2_TOL = 1e-5


class AttackCheckError(RuntimeError):
    """An attack produced an example outside the threat model (ε-ball or [0, 1]) or non-finite."""


@dataclass
class BatchJob:
    """What a batch function gets: one batch on the model's device, plus the attack settings.

    ``x``/``y`` hold the whole batch; ``clean_ok`` says which examples the model classifies
    correctly. With ``only_correct`` only those are attacked (the rest are not robust anyway);
    random draws are made for the whole batch either way, so both settings give the same result.
    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    eps: float
    grad_model: nn.Module  # attack_copy(model): the same function, faster, for the attack's steps
    clean_ok: torch.Tensor  # bool per example: correctly classified on the clean input
    num_classes: int
    steps: int
    restarts: int
    step_size: float | None
    random_start: bool
    generator: torch.Generator
    only_correct: bool
    autocast: Callable[[], contextlib.AbstractContextManager]
    options: dict[str, Any] = field(default_factory=dict)

    def seed(self) -> int:
        """An integer seed drawn from the generator (for libraries that seed the global RNG)."""
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))


# A batch function returns the adversarial images of the whole batch (clean images where it did
# not attack) and, when it knows it, a bool "still correct" per example (None: the driver
# decides by a forward pass).
BatchFn = Callable[[BatchJob], tuple[torch.Tensor, "torch.Tensor | None"]]


@dataclass(frozen=True)
class AttackSpec:
    name: str
    norm: str  # linf | l2 | none (unbounded, minimal-perturbation attacks: cw-l2, deepfool)
    bounded: bool  # ε-bounded: the result is robust accuracy at ε
    run: BatchFn
    min_classes: int = 2
    min_classes_why: str = ""
    options: tuple[str, ...] = ()  # attack-specific keyword options run_attack accepts
    gradient_free: bool = False  # black-box (square): used by the gradient-masking checks
    use_attack_copy: bool = False  # takes its steps on attack_copy(model): the same function, faster
    description: str = ""


ATTACKS: Registry[AttackSpec] = Registry("attack")


def register(spec: AttackSpec) -> AttackSpec:
    if spec.norm not in NORMS:
        raise ValueError(f"attack {spec.name}: norm must be one of {NORMS}")
    ATTACKS.register(spec.name)(spec)
    return spec


@dataclass
class AttackResult:
    """Per-example outcome of one attack, on the CPU."""

    correct: torch.Tensor  # bool: correct on clean input AND under the attack
    logits: torch.Tensor | None  # float32 logits of the adversarial examples (when asked for)
    l2: torch.Tensor  # ‖x_adv - x‖₂ per example (0 where nothing was changed)
    linf: torch.Tensor  # ‖x_adv - x‖∞ per example
    x_adv: torch.Tensor | None = None  # when asked for


# --------------------------------------------------------------------------------------------
# validation


def validate(name: str, eps: float, num_classes: int, *, steps: int = 10, restarts: int = 1,
             step_size: float | None = None, precision: str = "fp32", batch_size: int = 500,
             options: dict[str, Any] | None = None) -> AttackSpec:
    """Check the user's settings for attack ``name``; return its spec or raise one-line UserError."""
    spec = ATTACKS.get(name)
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise UserError(f"ε must be a number, got {eps!r}") from None
    if not (eps >= 0 and math.isfinite(eps)):
        raise UserError(f"ε must be >= 0 and finite, got {eps} (attack {name})")
    if spec.norm == "linf" and eps > 1.0:
        raise UserError(
            f"ε={eps} is larger than the [0,1] pixel range: an L2 radius given to the L∞ attack {name}? use --eps-l2"
        )
    if num_classes < spec.min_classes:
        raise UserError(
            f"attack {name} needs at least {spec.min_classes} classes{spec.min_classes_why}; "
            f"the dataset has {num_classes}"
        )
    if int(steps) <= 0:
        raise UserError(f"attack steps must be > 0, got {steps}")
    if int(restarts) <= 0:
        raise UserError(f"attack restarts must be > 0, got {restarts}")
    if step_size is not None and not (step_size > 0 and math.isfinite(step_size)):
        raise UserError(f"attack step size must be > 0, got {step_size}")
    if precision not in PRECISIONS:
        raise UserError(f"unknown attack precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if batch_size < 0:
        raise UserError(f"attack batch size must be >= 0 (0: from free memory), got {batch_size}")
    unknown = sorted(set(options or {}) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise UserError(f"attack {name} has no option {', '.join(unknown)}; valid: {valid}")
    return spec


def _check_inputs(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> None:
    if x.dim() != 4:
        raise UserError(f"attacks take NCHW image batches, got shape {tuple(x.shape)}")
    if len(x) != len(y):
        raise UserError(f"{len(x)} images but {len(y)} labels")
    if not x.is_floating_point():
        raise UserError(f"attacks take float images in [0, 1], got dtype {x.dtype}")
    if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise UserError("attacks take images in [0, 1]; these are outside it (normalized twice?)")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise UserError(f"labels must be in 0..{num_classes - 1}")


def check_adversarial(x: torch.Tensor, x_adv: torch.Tensor, eps: float | None, norm: str, name: str = "attack") -> None:
    """Raise :class:`AttackCheckError` unless ``x_adv`` is finite, in [0, 1] and within ε of ``x``.

    ``eps=None`` (unbounded attacks) checks the pixel range only.
    """
    if x_adv.shape != x.shape:
        raise AttackCheckError(f"{name}: adversarial batch has shape {tuple(x_adv.shape)}, expected {tuple(x.shape)}")
    if not torch.isfinite(x_adv).all():
        raise AttackCheckError(f"{name}: adversarial examples contain NaN or inf")
    lo, hi = float(x_adv.min()) if x_adv.numel() else 0.0, float(x_adv.max()) if x_adv.numel() else 0.0
    if lo < 0.0 or hi > 1.0:
        raise AttackCheckError(f"{name}: adversarial examples leave [0, 1] (min {lo:.6g}, max {hi:.6g})")
    if eps is None or norm == "none" or not x.numel():
        return
    delta = (x_adv.float() - x.float()).flatten(1)
    if norm == "linf":
        worst = float(delta.abs().amax())
        if worst > eps + LINF_TOL:
            raise AttackCheckError(f"{name}: ‖δ‖∞ = {worst:.8g} exceeds ε = {eps:.8g}")
    elif norm == "l2":
        worst = float(delta.norm(dim=1).amax())
        if worst > eps + L2_TOL:
            raise AttackCheckError(f"{name}: ‖δ‖₂ = {worst:.8g} exceeds ε = {eps:.8g}")


# --------------------------------------------------------------------------------------------
# model handling


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Parameters' ``requires_grad`` off for the duration (gradients w.r.t. the input only)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class _NCHWGrad(torch.autograd.Function):
    """Identity whose backward hands the gradient on NCHW-contiguous (ReLU's backward is slow on
    a channels_last gradient against an NCHW activation)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return h.view_as(h)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad.contiguous()


class _ChannelsLastMaxPool(nn.Module):
    """``pool`` computed in channels_last: PyTorch's CPU max-pool kernel for NCHW walks one tiny
    plane at a time (~20x slower than its channels_last kernel on 8x8 maps). Same maxima, same
    argmax routing of the gradient; output and input gradient are handed back NCHW-contiguous.
    """

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() != 4 or h.device.type != "cpu" or h.is_contiguous(memory_format=torch.channels_last):
            return self.pool(h)
        if h.requires_grad:
            h = _NCHWGrad.apply(h)
        return self.pool(h.contiguous(memory_format=torch.channels_last)).contiguous()


class _GlobalAvgPoolFn(torch.autograd.Function):
    """Mean over H and W whose backward hands the gradient back in the input's memory layout.

    Autograd's own backward of a global mean is an NCHW expand; the ReLU before the pool then
    compares that gradient against its channels_last output, and PyTorch's CPU
    ``threshold_backward`` on mixed layouts is ~35x slower than on matching ones (2.9 ms against
    0.08 ms for 360x128x4x4 on one thread): about a sixth of a PGD step on the digits CNN.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.shape = h.shape
        ctx.channels_last = h.is_contiguous(memory_format=torch.channels_last) and not h.is_contiguous()
        return h.mean((2, 3), keepdim=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n, c, height, width = ctx.shape
        expanded = (grad / (height * width)).expand(n, c, height, width)
        layout = torch.channels_last if ctx.channels_last else torch.contiguous_format
        return expanded.contiguous(memory_format=layout)


class _GlobalAvgPool(nn.Module):
    """``nn.AdaptiveAvgPool2d(1)`` with a layout-preserving backward (see :class:`_GlobalAvgPoolFn`)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() != 4 or not h.requires_grad:
            return h.mean((2, 3), keepdim=True)
        return _GlobalAvgPoolFn.apply(h)


def _is_global_avg_pool(module: nn.Module) -> bool:
    return type(module) is nn.AdaptiveAvgPool2d and module.output_size in (1, (1, 1))


def _sequential_leaves(seq: nn.Sequential) -> list[tuple[nn.Sequential, int]]:
    """(parent, index) of the modules ``seq`` pipes one into the next, nested Sequentials opened."""
    leaves: list[tuple[nn.Sequential, int]] = []
    for i, child in enumerate(seq):
        if type(child) is nn.Sequential:
            leaves.extend(_sequential_leaves(child))
        elif type(child) is not nn.Identity:  # passes its input on: the neighbours still meet
            leaves.append((seq, i))
    return leaves


def _pool_before_relu(model: nn.Module) -> None:
    """Swap every ReLU that feeds a max-pool with that pool, in place.

    ReLU is monotone, so ``maxpool(relu(a)) == relu(maxpool(a))`` exactly, and the input gradient
    is exactly the same too: where a window's maximum is positive both orders route the gradient
    to the same argmax, and where it is not both give zero. After the swap the ReLU and its
    backward touch a quarter of the elements (a 2x2 pool), which saves ~10% of a PGD step on the
    digits CNN (the ReLU backward is memory-bound).
    """
    roots = [m for m in model.modules() if type(m) is nn.Sequential]
    inner = {id(c) for m in roots for c in m.children() if type(c) is nn.Sequential}
    for root in (m for m in roots if id(m) not in inner):
        leaves = _sequential_leaves(root)
        for (relu_seq, i), (pool_seq, j) in zip(leaves, leaves[1:]):
            relu, pool = relu_seq[i], pool_seq[j]
            if type(relu) is nn.ReLU and type(pool) is nn.MaxPool2d and not pool.return_indices:
                relu_seq[i], pool_seq[j] = pool, relu


def attack_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` that computes the same function faster, for attack steps;
    ``model`` itself when there is nothing to speed up.

    * Every Conv2d -> BatchNorm2d pair inside an ``nn.Sequential``, or named by a block's
      ``foldable_conv_bn`` attribute (``PreActBlock``: conv1 -> bn2), is folded into one
      convolution. In eval mode BatchNorm is a fixed per-channel affine map, so this is the
      standard inference fusion: the same function up to float rounding (~1e-6 in the logits of
      the digits CNN), two fewer passes over each activation, forward and backward.
    * A ReLU that feeds a max-pool runs after it instead (:func:`_pool_before_relu`): the same
      function and the same input gradient, on a quarter of the elements.
    * On the CPU, the copy's weights are channels_last, so convolutions and ``nn.MaxPool2d`` run
      in that layout (see :class:`_ChannelsLastMaxPool` for pools fed NCHW activations), and a
      global average pool hands its gradient back in that layout (:class:`_GlobalAvgPool`).

    Attacks take their gradient (or query) steps on the copy; the clean and final verdicts of
    :func:`attack` use ``model`` itself, so every reported number is the model's own.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def foldable(conv: nn.Module | None, bn: nn.Module | None) -> bool:
        return (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
                and bn.running_mean is not None and conv.out_channels == bn.num_features)

    def pairs(m: nn.Module):
        for seq in m.modules():
            if isinstance(seq, nn.Sequential):
                for i in range(len(seq) - 1):
                    if foldable(seq[i], seq[i + 1]):
                        yield seq, i

    def attribute_pairs(m: nn.Module):
        # blocks that name a conv whose output feeds only a BatchNorm (e.g. PreActBlock)
        for block in m.modules():
            for conv_name, bn_name in getattr(block, "foldable_conv_bn", ()):
                conv, bn = getattr(block, conv_name, None), getattr(block, bn_name, None)
                if foldable(conv, bn):
                    yield block, conv_name, bn_name

    def pools(m: nn.Module):
        if model_device(m).type != "cpu":
            return
        for parent in m.modules():
            for name, child in parent.named_children():
                if type(child) is nn.MaxPool2d or _is_global_avg_pool(child):
                    yield parent, name

    if model.training or all(next(found(model), None) is None for found in (pairs, attribute_pairs, pools)):
        return model
    import copy

    try:
        fast = copy.deepcopy(model).eval()
    except Exception:  # a module that cannot be copied is attacked as it is
        return model
    for seq, i in list(pairs(fast)):
        seq[i] = fuse_conv_bn_eval(seq[i], seq[i + 1])
        seq[i + 1] = nn.Identity()
    for block, conv_name, bn_name in list(attribute_pairs(fast)):
        setattr(block, conv_name, fuse_conv_bn_eval(getattr(block, conv_name), getattr(block, bn_name)))
        setattr(block, bn_name, nn.Identity())
    _pool_before_relu(fast)
    for parent, name in list(pools(fast)):
        child = getattr(parent, name)
        setattr(parent, name, _GlobalAvgPool() if _is_global_avg_pool(child) else _ChannelsLastMaxPool(child))
    if model_device(fast).type == "cpu" and any(p.dim() == 4 for p in fast.parameters()):
        # oneDNN's CPU convolutions and pools run ~15% faster end to end in channels_last
        # (measured on the digits CNN, one thread); inputs and input gradients stay NCHW.
        fast = fast.to(memory_format=torch.channels_last)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast


def layout_copy(model: nn.Module) -> nn.Module:
    """The model itself, or on the CPU a channels_last copy of it for the verdict passes.

    Same modules, same weights, no fusion: only the memory layout differs (oneDNN's CPU
    pooling is ~20x faster in channels_last on small maps), so it computes the model's own
    function up to float summation order, as a different cuDNN algorithm would.
    """
    if model.training or model_device(model).type != "cpu" or not any(p.dim() == 4 for p in model.parameters()):
        return model
    import copy

    try:
        return copy.deepcopy(model).to(memory_format=torch.channels_last)
    except Exception:  # a module that cannot be copied is used as it is
        return model


def _is_channels_last(model: nn.Module) -> bool:
    for p in model.parameters():
        if p.dim() == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


@contextlib.contextmanager
def precision_mode(model: nn.Module, device: torch.device, precision: str) -> Iterator[tuple[str, Callable]]:
    """Resolve ``auto`` and yield (precision, autocast factory).

    ``auto`` is fp32, everywhere. bf16 (autocast to bfloat16, model in channels_last; CUDA only;
    the model's memory format is given back afterwards) is ~1.4x faster on an H200 but a weaker
    attack at small radii: bf16 keeps 8 significant bits, so an input perturbation of ~1/255 is
    at the rounding level of the normalized activations. Measured on an H200, PreActResNet18 with
    random weights, 1,024 images, PGD-10 at ε = 1/255: 64.6% robust accuracy in bf16 against
    55.2% in fp32 (and 2.4% against 0.0% at 8/255). A benchmark must not report a weaker attack
    as robustness, so bf16 has to be asked for. The verdict (robust or not) is always fp32.
    """
    if precision == "auto":
        precision = "fp32"
    if precision == "bf16" and device.type != "cuda":
        raise UserError("attack precision bf16 needs a CUDA device; use fp32 (or auto) on the CPU")
    if precision == "fp32":
        yield "fp32", contextlib.nullcontext
        return
    was_cl = _is_channels_last(model)
    model.to(memory_format=torch.channels_last)
    try:
        yield "bf16", lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    finally:
        if not was_cl:
            model.to(memory_format=torch.contiguous_format)


def auto_batch_size(model: nn.Module, x: torch.Tensor, device: torch.device, autocast: Callable) -> int:
    """Batch size from free CUDA memory: measure one forward+backward of a probe batch.

    On the CPU there is no memory pressure worth modelling: 1024.
    """
    if device.type != "cuda" or len(x) == 0:
        return 1024
    probe = min(32, len(x))
    xb = x[:probe].to(device).requires_grad_(True)
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with autocast():
        out = model(xb)
    torch.autograd.grad(out.float().logsumexp(1).sum(), xb)
    per_example = max((torch.cuda.max_memory_allocated(device) - base) / probe, 1.0)
    del xb, out
    free, _ = torch.cuda.mem_get_info(device)
    # half the free memory: the attack keeps a few image-sized buffers besides the activations
    return int(max(16, min(8192, 0.5 * free / per_example)))


# --------------------------------------------------------------------------------------------
# reuse across the attacks of one evaluation


@dataclass
class _Reuse:
    model: nn.Module
    copies: dict[str, tuple[nn.Module, nn.Module]] = field(default_factory=dict)  # by precision
    clean: dict[tuple, torch.Tensor] = field(default_factory=dict)


_REUSE: list[_Reuse] = []  # innermost last


@contextlib.contextmanager
def reuse_for(model: nn.Module) -> Iterator[None]:
    """Within the block, attacks on ``model`` build its attack/verdict copies once and compute
    the clean verdict of a batch once, instead of once per :func:`attack` call (an evaluation
    makes ~16 calls on the same images). The caller promises not to change ``model``'s weights
    or the images inside the block.
    """
    _REUSE.append(_Reuse(model))
    try:
        yield
    finally:
        _REUSE.pop()


def _reuse(model: nn.Module) -> _Reuse | None:
    return next((r for r in reversed(_REUSE) if r.model is model), None)


def _model_copies(model: nn.Module, use_attack_copy: bool, precision: str) -> tuple[nn.Module, nn.Module]:
    """(model for the attack's steps, model for the verdicts)."""
    if not use_attack_copy:
        return model, model
    reuse = _reuse(model)
    if reuse is not None and precision in reuse.copies:
        return reuse.copies[precision]
    copies = attack_copy(model), layout_copy(model)
    if reuse is not None:
        reuse.copies[precision] = copies
    return copies


def _clean_verdict(model: nn.Module, verdict_model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   sl: slice, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Bool per example of the batch: classified correctly on the clean input (fp32)."""
    reuse = _reuse(model)
    key = (x.data_ptr(), tuple(x.shape), y.data_ptr(), sl.start, sl.stop, id(verdict_model))
    if reuse is not None and key in reuse.clean:
        return reuse.clean[key]
    with torch.no_grad():
        ok = verdict_model(xb).argmax(1) == yb
    if reuse is not None:
        reuse.clean[key] = ok
    return ok


# --------------------------------------------------------------------------------------------
# batches: their randomness, and sharding them over processes


def batch_generator(generator: torch.Generator, start_state: torch.Tensor, index: int) -> torch.Generator:
    """The generator batch ``index`` of an attack call draws from.

    Batch 0 draws from ``generator`` itself (a one-batch call uses the caller's stream as it is);
    batch b > 0 from a generator seeded by the caller's starting state and b. So what happens
    to a batch does not depend on whether the batches before it ran in this process: sharding
    batches over processes gives the numbers of one process. (It does depend on the batch size,
    which is part of the evaluation settings.)
    """
    if index == 0:
        return generator
    digest = hashlib.sha256(start_state.numpy().tobytes() + index.to_bytes(8, "little")).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


_SHARDS: list[distributed.Dist] = []


@contextlib.contextmanager
def sharded(ctx: distributed.Dist) -> Iterator[None]:
    """Within the block, :func:`attack` runs batch b only on rank ``b % world`` and gathers the
    per-example results on every rank. Every process of ``ctx`` must make the same attack calls
    (as the suites do: they are deterministic given the evaluation settings)."""
    _SHARDS.append(ctx)
    try:
        yield
    finally:
        _SHARDS.pop()


def _shard() -> distributed.Dist:
    return _SHARDS[-1] if _SHARDS else distributed.Dist()


def _agree_on_batch_size(bs: int, shard: distributed.Dist) -> int:
    """The smallest of the processes' batch sizes (free memory differs between GPUs)."""
    return int(distributed.all_reduce_min(torch.tensor([bs]), shard))


def _gather_rows(tensors: list[torch.Tensor | None], shard: distributed.Dist) -> list:
    """Sum the processes' results: each process filled its own batches' rows and left zeros
    (bools: one process owns each row, so the sum is an OR)."""
    return [None if t is None else distributed.all_reduce_sum(t, shard) for t in tensors]


# --------------------------------------------------------------------------------------------
# the driver


def attack(
    name: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    num_classes: int,
    steps: int = 10,
    restarts: int = 1,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    batch_size: int = 500,
    only_correct: bool = True,
    precision: str = "fp32",
    keep_logits: bool = False,
    keep_adv: bool = False,
    **options: Any,
) -> AttackResult:
    """Run attack ``name`` on every example of ``x`` and report the per-example outcome.

    ``x`` (float, [0, 1], NCHW) and ``y`` may live anywhere; batches go to the model's device.
    Randomness comes only from ``generator`` (a CPU generator; default: seeded with 0). Libraries
    that seed torch's global RNG (torchattacks) run inside ``fork_rng``: the caller's global RNG
    state is left as it was.
    """
    spec = validate(name, eps, num_classes, steps=steps, restarts=restarts, step_size=step_size,
                    precision=precision, batch_size=batch_size, options=options)
    _check_inputs(x, y, num_classes)
    eps = float(eps)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = model_device(model)
    n = len(x)
    correct = torch.zeros(n, dtype=torch.bool)
    l2 = torch.zeros(n)
    linf = torch.zeros(n)
    logits_out = torch.zeros(n, num_classes) if keep_logits else None
    adv_out = torch.zeros_like(x, device="cpu", dtype=torch.float32) if keep_adv else None

    shard = _shard()
    start_state = generator.get_state()
    with evaluating(model), frozen(model), precision_mode(model, device, precision) as (prec, autocast):
        bs = _agree_on_batch_size(batch_size or auto_batch_size(model, x, device, autocast), shard)
        grad_model, verdict_model = _model_copies(model, spec.use_attack_copy, prec)
        for index, start in enumerate(range(0, n, bs)):
            if index % shard.world != shard.rank:
                continue
            sl = slice(start, min(start + bs, n))
            xb = x[sl].to(device, torch.float32, non_blocking=True)
            yb = y[sl].to(device, non_blocking=True)
            if prec == "bf16":
                xb = xb.contiguous(memory_format=torch.channels_last)
            clean_ok = _clean_verdict(model, verdict_model, x, y, sl, xb, yb)  # fp32: the verdict every suite shares
            job = BatchJob(model=verdict_model, x=xb, y=yb, eps=eps, grad_model=grad_model, clean_ok=clean_ok,
                           num_classes=num_classes, steps=int(steps), restarts=int(restarts), step_size=step_size,
                           random_start=random_start, generator=batch_generator(generator, start_state, index),
                           only_correct=only_correct,
                           autocast=autocast, options=dict(options))
            adv, ok_attack = spec.run(job)
            adv = adv.detach().to(torch.float32)
            check_adversarial(xb, adv, eps if spec.bounded else None, spec.norm, name)
            ok_known = ok_attack is not None and prec == "fp32"
            ok = clean_ok & ok_attack.to(device) if ok_known else clean_ok
            if keep_logits or not ok_known:
                with torch.no_grad():
                    adv_logits = verdict_model(adv).float()
                if not ok_known:
                    ok = clean_ok & (adv_logits.argmax(1) == yb)
                if keep_logits:
                    logits_out[sl] = adv_logits.cpu()
            delta = (adv - xb).flatten(1).float()
            correct[sl] = ok.cpu()
            l2[sl] = delta.norm(dim=1).cpu()
            linf[sl] = delta.abs().amax(dim=1).cpu() if delta.shape[1] else 0.0
            if keep_adv:
                adv_out[sl] = adv.cpu()
    correct, l2, linf, logits_out, adv_out = _gather_rows([correct, l2, linf, logits_out, adv_out], shard)
    return AttackResult(correct=correct, logits=logits_out, l2=l2, linf=linf, x_adv=adv_out)


def run_attack(
    name: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    num_classes: int,
    steps: int = 10,
    restarts: int = 1,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    batch_size: int = 500,
    only_correct: bool = True,
    precision: str = "fp32",
    **options: Any,
) -> torch.Tensor:
    """Bool per example: still correctly classified under attack ``name`` at radius ``eps``.

    Examples misclassified on clean inputs count as not correct. ``steps``/``restarts`` are the
    iterations and random restarts of iterative attacks (FGSM ignores them); ``step_size``
    defaults to 2.5·ε/steps for PGD (Madry et al.). ``options`` are attack-specific
    (e.g. ``n_queries`` for square, ``c`` for cw-l2); see ``ATTACKS.get(name).options``.
    """
    return attack(name, model, x, y, eps, num_classes=num_classes, steps=steps, restarts=restarts,
                  step_size=step_size, random_start=random_start, generator=generator,
                  batch_size=batch_size, only_correct=only_correct, precision=precision, **options).correct

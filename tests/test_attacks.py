"""Attacks: exactness at ε = 0, agreement with torchattacks, the ε-ball/[0, 1] checks, model mode,
only-correct equivalence, bad input, and every torchattacks-backed attack on a small batch."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torchattacks

from robustbench_mm.attacks import (
    ATTACKS,
    AttackCheckError,
    AttackSettings,
    AttackSpec,
    attack,
    check_adversarial,
    run_attack,
)
from robustbench_mm.attacks.pgd import start_noise
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.inference import predict_logits

METHODS = ("erm", "mixup", "manifold-mixup")
ZOO = ("apgd-ce", "apgd-t", "apgd-ce-l2", "apgd-t-l2", "fab", "square", "cw-l2", "deepfool", "autoattack")


@pytest.fixture(scope="module")
def data(digits):
    return digits.test_x, digits.test_y


@pytest.fixture(scope="module")
def clean(trained_models, data):
    x, y = data
    return {m: predict_logits(model, x).argmax(1) == y for m, model in trained_models.items()}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------ exactness


@pytest.mark.parametrize("name", ["fgsm", "pgd-linf", "pgd-l2"])
def test_eps_zero_is_clean_accuracy(trained_models, data, clean, name):
    x, y = data
    for method, model in trained_models.items():
        ok = run_attack(name, model, x, y, 0.0, num_classes=10, generator=_gen())
        assert torch.equal(ok, clean[method]), (name, method)


class _RecordingPGD(torchattacks.PGD):
    """torchattacks' own PGD, recording whether each iterate it evaluates is misclassified."""

    def get_logits(self, inputs, labels=None, *args, **kwargs):
        logits = super().get_logits(inputs)
        self.fooled.append(logits.argmax(1) != self.labels)
        return logits


@pytest.mark.parametrize("method", METHODS)
def test_fgsm_and_pgd_agree_with_torchattacks(trained_models, data, clean, method):
    """Same ε, steps, step size, no random start: within 0.5 points of torchattacks.

    Our PGD counts an example as fooled when *any* iterate fools it (AutoAttack's rule, which
    lets fooled examples leave the batch); torchattacks returns the last iterate. The exact
    reference is therefore torchattacks' own trajectory read at every iterate; against its last
    iterate alone we may only be *stronger*.
    """
    x, y = data
    model = trained_models[method]
    n = len(y)
    for eps in (0.05, 0.1, 0.15):
        ours = run_attack("fgsm", model, x, y, eps, num_classes=10).float().mean()
        adv = torchattacks.FGSM(model, eps=eps)(x, y)
        with torch.no_grad():
            theirs = ((model(adv).argmax(1) == y) & clean[method]).float().mean()
        assert abs(ours - theirs) <= 0.005, ("fgsm", eps, ours, theirs)

        alpha = 2.5 * eps / 10
        ours = run_attack(
            "pgd-linf",
            model,
            x,
            y,
            eps,
            num_classes=10,
            settings=AttackSettings(steps=10, step_size=alpha, random_start=False),
        )
        atk = _RecordingPGD(model, eps=eps, alpha=alpha, steps=10, random_start=False)
        atk.fooled, atk.labels = [], y
        adv = atk(x, y)
        with torch.no_grad():
            last = (model(adv).argmax(1) == y) & clean[method]
        any_iterate = last & ~torch.stack(atk.fooled).any(0)
        assert abs(ours.float().mean() - any_iterate.float().mean()) <= 0.005, ("pgd", eps)
        assert (ours & ~any_iterate).sum() <= 0.005 * n  # per example, not only on average
        assert ours.float().mean() <= last.float().mean() + 0.005, ("pgd weaker than torchattacks", eps)


@pytest.mark.parametrize("name", ["fgsm", "pgd-linf", "pgd-l2"])
@pytest.mark.parametrize("random_start", [False, True])
def test_only_correct_changes_nothing(trained_models, data, name, random_start):
    """Dropping fooled examples is pure speed: identical per-example results.

    (Random starts are drawn for the whole batch, so even they match.)
    """
    x, y = data
    model = trained_models["erm"]
    eps = 0.1 if name != "pgd-l2" else 0.5
    settings = AttackSettings(random_start=random_start, restarts=2)
    a = run_attack(name, model, x, y, eps, num_classes=10, settings=settings, generator=_gen(3))
    off = dataclasses.replace(settings, only_correct=False)
    b = run_attack(name, model, x, y, eps, num_classes=10, settings=off, generator=_gen(3))
    assert torch.equal(a, b)


def test_restarts_and_more_steps_only_help_and_seeding_is_deterministic(trained_models, data):
    x, y = data
    model = trained_models["mixup"]
    one = run_attack("pgd-linf", model, x, y, 0.1, num_classes=10, generator=_gen(1))
    again = run_attack("pgd-linf", model, x, y, 0.1, num_classes=10, generator=_gen(1))
    assert torch.equal(one, again)
    three = run_attack(
        "pgd-linf", model, x, y, 0.1, num_classes=10, settings=AttackSettings(restarts=3), generator=_gen(1)
    )
    assert not (three & ~one).any()  # the first restart is the same run; later ones only remove


def test_random_start_lies_in_the_ball():
    g = _gen()
    d = start_noise(g, torch.Size([500, 3, 4, 4]), "linf", 0.1)
    assert d.abs().max() <= 0.1 and d.abs().max() > 0.09
    d = start_noise(g, torch.Size([500, 3, 4, 4]), "l2", 0.5)
    norms = d.flatten(1).norm(dim=1)
    assert norms.max() <= 0.5 + 1e-6 and norms.median() > 0.4  # uniform in a 48-d ball: near the sphere


# ------------------------------------------------------------------------------------------ checks


@pytest.fixture
def fake_attack():
    """Register a throw-away attack for one test and remove it afterwards."""
    added = []

    def add(name, norm, run, bounded=True):
        spec = AttackSpec(name, norm, bounded, run)
        ATTACKS.register(name)(spec)
        added.append(name)
        return spec

    yield add
    for name in added:
        ATTACKS._entries.pop(name, None)


@pytest.mark.parametrize(
    "norm, make, message",
    [
        ("linf", lambda job: (job.x + 2 * job.eps).clamp(0, 1), "‖δ‖∞"),
        ("linf", lambda job: job.x + 0.5 * job.eps, "leave \\[0, 1\\]|‖δ‖∞"),
        ("l2", lambda job: (job.x + job.eps).clamp(0, 1), "‖δ‖₂"),
        ("linf", lambda job: job.x * float("nan"), "NaN"),
    ],
)
def test_out_of_bounds_attack_raises(trained_models, data, fake_attack, norm, make, message):
    x, y = data
    fake_attack("test-broken", norm, lambda job: (make(job), None))
    with pytest.raises(AttackCheckError, match=message):
        run_attack("test-broken", trained_models["erm"], x, y, 0.1, num_classes=10)


def test_check_adversarial_directly():
    x = torch.rand(4, 1, 8, 8) * 0.5 + 0.25
    check_adversarial(x, (x + 0.1).clamp(0, 1), 0.1, "linf")  # exactly at ε is fine
    with pytest.raises(AttackCheckError):
        check_adversarial(x, x + 0.1 + 1e-4, 0.1, "linf")
    with pytest.raises(AttackCheckError):
        check_adversarial(x, x - 0.3, None, "none")  # unbounded: still inside [0, 1]
    delta = torch.zeros_like(x)
    delta[:, 0, 0, 0] = 0.2
    check_adversarial(x, x + delta, 0.2, "l2")
    with pytest.raises(AttackCheckError):
        check_adversarial(x, x + delta * 1.01, 0.2, "l2")


@pytest.mark.parametrize("name", ["fgsm", "pgd-linf", "pgd-l2", "square", "apgd-ce"])
def test_model_mode_and_state_restored(trained_models, data, name):
    x, y = data
    model = copy.deepcopy(trained_models["manifold-mixup"]).train()
    model.stages[0][0].weight.requires_grad_(True)
    model.head.weight.requires_grad_(False)  # a caller's mixed flags come back as they were
    before = {k: v.clone() for k, v in model.state_dict().items()}
    eps = 0.5 if name == "pgd-l2" else 0.1
    extra = {"n_queries": 20} if name == "square" else {}
    run_attack(name, model, x[:40], y[:40], eps, num_classes=10, settings=AttackSettings(steps=3), **extra)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm running stats too
    assert model.stages[0][0].weight.requires_grad and not model.head.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients


def test_global_rng_untouched(trained_models, data):
    x, y = data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_attack("square", trained_models["erm"], x[:20], y[:20], 0.1, num_classes=10, n_queries=10)
    run_attack("pgd-linf", trained_models["erm"], x[:20], y[:20], 0.1, num_classes=10)
    assert torch.equal(torch.rand(3), expected)


def test_attack_details_and_logits(trained_models, data, clean):
    x, y = data
    res = attack("pgd-linf", trained_models["erm"], x, y, 0.1, num_classes=10, keep_logits=True, keep_adv=True)
    assert res.logits.shape == (len(y), 10) and res.x_adv.shape == x.shape
    assert torch.equal(res.correct, (res.logits.argmax(1) == y) & clean["erm"])
    assert res.linf.max() <= 0.1 + 1e-6 and (res.linf[~res.correct & clean["erm"]] > 0).all()


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "name, eps, kwargs, message",
    [
        (
            "pgd",
            0.1,
            {},
            "unknown attack 'pgd'; valid: apgd-ce, apgd-ce-l2, apgd-t, apgd-t-l2, autoattack, autoattack-l2, cw-l2, "
            "deepfool, fab, fgsm, fmn-l2, fmn-linf, pgd-l2, pgd-linf, square",
        ),
        ("pgd-linf", -0.1, {}, "ε must be >= 0"),
        ("pgd-linf", float("nan"), {}, "ε must be >= 0"),
        (
            "pgd-linf",
            2.0,
            {},
            "ε=2.0 is larger than the [0,1] pixel range: an L2 radius given to the L∞ attack pgd-linf? use --eps-l2",
        ),
        ("apgd-t", 0.1, {"num_classes": 3}, "apgd-t needs at least 4 classes"),
        ("autoattack", 0.1, {"num_classes": 3}, "autoattack needs at least 4 classes"),
        ("pgd-linf", 0.1, {"settings": AttackSettings(steps=0)}, "steps must be > 0"),
        ("pgd-linf", 0.1, {"settings": AttackSettings(restarts=0)}, "restarts must be > 0"),
        ("pgd-linf", 0.1, {"settings": AttackSettings(step_size=-1.0)}, "step size must be > 0"),
        ("pgd-linf", 0.1, {"settings": AttackSettings(batch_size=-1)}, "batch size must be >= 0"),
        ("pgd-linf", 0.1, {"settings": AttackSettings(precision="fp8")}, "unknown attack precision 'fp8'"),
        ("pgd-linf", 0.1, {"settings": AttackSettings(precision="bf16")}, "bf16 needs a CUDA device"),
        ("square", 0.1, {"queries": 5}, "square has no option queries; valid: n_queries"),
        (
            "pgd-linf",
            0.1,
            {"steps": 5},
            "no option steps; valid: target_rank (steps: pass settings=AttackSettings(...))",
        ),
    ],
)
def test_bad_input_is_a_user_error(trained_models, data, name, eps, kwargs, message):
    x, y = data
    kwargs = {"num_classes": 10, **kwargs}
    with pytest.raises(UserError) as info:
        run_attack(name, trained_models["erm"], x[:10], y[:10] % kwargs["num_classes"], eps, **kwargs)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_bad_images_are_a_user_error(trained_models, data):
    x, y = data
    with pytest.raises(UserError, match="\\[0, 1\\]"):
        run_attack("fgsm", trained_models["erm"], x[:10] * 255, y[:10], 0.1, num_classes=10)
    with pytest.raises(UserError, match="labels"):
        run_attack("fgsm", trained_models["erm"], x[:10], y[:9], 0.1, num_classes=10)


# ------------------------------------------------------------------------------------------ the zoo


@pytest.mark.parametrize("name", ZOO)
def test_torchattacks_zoo_runs(trained_models, data, clean, name):
    x, y = data
    x, y = x[:20], y[:20]
    model = trained_models["erm"]
    spec = ATTACKS.get(name)
    if spec.requires:
        pytest.importorskip(spec.requires)
    options = {"n_queries": 30} if "n_queries" in spec.options else {}
    steps = {"cw-l2": 20, "deepfool": 5}.get(name, 3)
    res = attack(name, model, x, y, 0.15, num_classes=10, settings=AttackSettings(steps=steps), **options)
    acc, clean_acc = res.correct.float().mean(), clean["erm"][:20].float().mean()
    assert 0.0 <= acc <= clean_acc
    assert not (res.correct & ~clean["erm"][:20]).any()
    if spec.bounded:
        assert res.linf.max() <= 0.15 + 1e-6
    if name in ("apgd-ce", "autoattack"):
        assert acc < clean_acc  # ε = 0.15 breaks most of an undefended digits model


def test_autoattack_is_the_original_standard_version_with_fixed_settings(trained_models, data, monkeypatch):
    """``autoattack`` runs Croce & Hein's own code (pyautoattack) in its standard version; its
    settings are fixed (not from --pgd-steps) and said where the report names it; without the
    package it is a one-line UserError before any attack runs."""
    import importlib.util

    spec = ATTACKS.get("autoattack")
    assert spec.requires == "pyautoattack"
    for part in ("APGD-CE", "APGD-T (9 targets)", "FAB-T (9 targets)", "Square (5,000 queries)", "100 iterations"):
        assert part in spec.description
    x, y = data
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "pyautoattack" else real(n, *a))
    with pytest.raises(UserError, match="needs the package pyautoattack"):
        run_attack("autoattack", trained_models["erm"], x[:4], y[:4], 0.1, num_classes=10)
    monkeypatch.undo()
    pytest.importorskip("pyautoattack")
    from pyautoattack import AutoAttack

    calls = []
    original = AutoAttack.run_standard_evaluation

    def spy(self, *args, **kwargs):
        calls.append(
            (
                self.version,
                list(self.attacks_to_run),
                self.apgd.n_iter,
                self.apgd_targeted.n_iter,
                self.apgd_targeted.n_target_classes,
                self.fab.n_target_classes,
                self.square.n_queries,
            )
        )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AutoAttack, "run_standard_evaluation", spy)
    res = attack(
        "autoattack", trained_models["erm"], x[:8], y[:8], 0.2, num_classes=10, settings=AttackSettings(steps=3)
    )
    assert calls == [("standard", ["apgd-ce", "apgd-t", "fab-t", "square"], 100, 100, 9, 9, 5000)]
    assert res.linf.max() <= 0.2 + 1e-6


# ------------------------------------------------------------------------------------------ fast path


def _input_grad(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y, reduction="sum"), x)
    return logits.detach(), grad


def test_pool_before_relu_is_exact():
    """Swapping ReLU -> max-pool into max-pool -> ReLU keeps the function and the input gradient
    bit for bit, including windows whose maximum is negative (relu then zeroes the gradient)."""
    from robustbench_mm.attacks.fastcopy import _pool_before_relu

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Identity(), torch.nn.ReLU()),
        torch.nn.MaxPool2d(2),
        torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2, padding=1)),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 3 * 3, 10),
    ).eval()
    with torch.no_grad():
        model[0][0].bias.fill_(-0.5)  # many all-negative windows
    swapped = copy.deepcopy(model)
    _pool_before_relu(swapped)
    assert [type(m).__name__ for m in swapped.modules() if type(m) in (torch.nn.ReLU, torch.nn.MaxPool2d)] == [
        "MaxPool2d",
        "ReLU",
        "MaxPool2d",
        "ReLU",
    ]
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    (logits_a, grad_a), (logits_b, grad_b) = _input_grad(model, x, y), _input_grad(swapped, x, y)
    assert torch.equal(logits_a, logits_b)
    assert torch.equal(grad_a, grad_b)
    assert (grad_a == 0).any() and (grad_a != 0).any()


def test_global_avg_pool_keeps_the_gradient_layout():
    from robustbench_mm.attacks.fastcopy import _GlobalAvgPool

    h = torch.randn(5, 6, 4, 4).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    ours = _GlobalAvgPool()(h)
    (g_ours,) = torch.autograd.grad((ours.flatten(1) * torch.arange(6.0)).sum(), h)
    ref = torch.nn.AdaptiveAvgPool2d(1)(h)
    (g_ref,) = torch.autograd.grad((ref.flatten(1) * torch.arange(6.0)).sum(), h)
    assert torch.allclose(ours, ref, atol=1e-6) and torch.allclose(g_ours, g_ref, atol=1e-7)
    assert g_ours.is_contiguous(memory_format=torch.channels_last)


def test_attack_copy_matches_the_model(trained_models, data):
    """The copy the attack steps on (BN folded, pools reordered, channels_last) computes the
    model's function and input gradient up to float rounding."""
    from robustbench_mm.attacks.fastcopy import attack_copy

    x, y = data
    for method, model in trained_models.items():
        fast = attack_copy(model.eval())
        assert fast is not model
        (logits_a, grad_a), (logits_b, grad_b) = _input_grad(model, x, y), _input_grad(fast, x, y)
        assert torch.allclose(logits_a, logits_b, atol=1e-4), method
        # atol relative to the gradient's scale: on a saturated example the cross-entropy gradient
        # is a small difference of near-equal terms, and another CPU's kernels round it another way
        # (seen on an AMD EPYC: one digits example off by 3% of its own size, 4e-4 of the largest)
        assert torch.allclose(grad_a, grad_b, atol=1e-3 * float(grad_a.abs().max()), rtol=1e-3), method
        assert (grad_a.sign() != grad_b.sign()).float().mean() < 1e-3, method


def test_session_builds_copies_once_and_changes_nothing(trained_models, data, monkeypatch):
    from robustbench_mm.attacks import AttackSession
    from robustbench_mm.attacks import session as session_module

    x, y = data
    model = trained_models["erm"]
    settings = [("fgsm", 0.1), ("pgd-linf", 0.05), ("pgd-linf", 0.1), ("pgd-l2", 0.5)]
    alone = [run_attack(n, model, x, y, e, num_classes=10, generator=_gen(1)) for n, e in settings]
    built, clean_passes = [], []
    real_attack_copy, real_layout_copy = session_module.attack_copy, session_module.layout_copy

    def counting_layout_copy(m):
        verdict = real_layout_copy(m)
        # a clean verdict is the one pass over the whole batch (attacked batches shrink)
        verdict.register_forward_hook(lambda mod, args, out: clean_passes.append(1) if len(args[0]) == len(x) else None)
        return verdict

    monkeypatch.setattr(session_module, "attack_copy", lambda m: built.append(m) or real_attack_copy(m))
    monkeypatch.setattr(session_module, "layout_copy", counting_layout_copy)
    session = AttackSession(model)
    shared = [run_attack(n, model, x, y, e, num_classes=10, generator=_gen(1), session=session) for n, e in settings]
    assert len(built) == 1
    assert len(clean_passes) == 1
    for a, b in zip(alone, shared, strict=True):
        assert torch.equal(a, b)


def test_a_session_serves_its_own_model_only(trained_models, data):
    from robustbench_mm.attacks import AttackSession

    x, y = data
    session = AttackSession(trained_models["erm"])
    with pytest.raises(ValueError, match="another model"):
        attack("fgsm", trained_models["mixup"], x, y, 0.1, num_classes=10, session=session)


@pytest.mark.parametrize("arch", ["preactresnet18", "wrn28_10"])
def test_attack_copy_folds_preact_blocks(arch):
    """PreActBlock's conv1 -> bn2 is folded (half the BatchNorms of a PreActResNet); the copy
    keeps the function and input gradient up to float rounding."""
    from robustbench_mm.attacks.fastcopy import attack_copy
    from robustbench_mm.models import create_model
    from robustbench_mm.models.resnets import PreActBlock

    torch.manual_seed(0)
    model = create_model(arch, 10, 3, 16)
    with torch.no_grad():  # non-trivial running statistics, as after training
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    model.eval()
    fast = attack_copy(model)
    blocks = [m for m in fast.modules() if isinstance(m, PreActBlock)]
    assert blocks and all(isinstance(b.bn2, torch.nn.Identity) and b.conv1.bias is not None for b in blocks)
    assert all(isinstance(b.bn2, torch.nn.BatchNorm2d) for b in model.modules() if isinstance(b, PreActBlock))
    x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 10, (8,))
    (logits_a, grad_a), (logits_b, grad_b) = _input_grad(model, x, y), _input_grad(fast, x, y)
    assert torch.allclose(logits_a, logits_b, atol=1e-4, rtol=1e-4)
    assert torch.allclose(grad_a, grad_b, atol=1e-6, rtol=1e-3)


@pytest.mark.parametrize("name", ["pgd-linf", "square"])
def test_sharded_ranks_split_the_batches_and_together_give_one_process(trained_models, data, monkeypatch, name):
    """Each rank attacks only batches b % world == rank; the ranks' rows together are the
    single-process result (here the gather is replaced by an OR of the two ranks' rows)."""
    from robustbench_mm.attacks import AttackSession
    from robustbench_mm.core import distributed

    x, y = data
    model = trained_models["mixup"]
    kwargs = dict(
        num_classes=10, settings=AttackSettings(batch_size=100), **({"n_queries": 30} if name == "square" else {})
    )
    whole = attack(name, model, x, y, 0.1, generator=_gen(3), **kwargs)
    # no process group here: each rank keeps its own batch size and rows
    monkeypatch.setattr(distributed, "all_reduce_min", lambda tensor, ctx: tensor)
    monkeypatch.setattr(distributed, "all_reduce_sum", lambda tensor, ctx: tensor)
    parts = []
    for rank in (0, 1):
        session = AttackSession(model, distributed.Dist(rank=rank, world=2))
        parts.append(attack(name, model, x, y, 0.1, generator=_gen(3), session=session, **kwargs))
    batch = torch.arange(len(y)) // 100
    for rank, part in enumerate(parts):
        mine = batch % 2 == rank
        assert torch.equal(part.correct[mine], whole.correct[mine])
        assert not part.correct[~mine].any() and not part.linf[~mine].any()  # never touched
    assert torch.equal(parts[0].correct | parts[1].correct, whole.correct)
    assert torch.equal(parts[0].linf + parts[1].linf, whole.linf)


def test_load_model_gives_the_model_ready_to_evaluate(trained_runs, trained_models, data, tmp_path):
    """``rb.load_model`` takes a run directory or its model.pt, and gives the model the CLI
    evaluates: same outputs, eval mode, on the CPU; anything else is a one-line UserError."""
    import robustbench_mm as rb

    x, _ = data
    reference = trained_models["erm"]
    for where in (trained_runs["erm"], trained_runs["erm"] / "model.pt", str(trained_runs["erm"])):
        model = rb.load_model(where)
        assert not model.training and next(model.parameters()).device.type == "cpu"
        with torch.no_grad():
            assert torch.equal(model(x[:16]), reference(x[:16]))
    with pytest.raises(UserError, match="no run directory or model file") as info:
        rb.load_model(tmp_path / "nothing-here")
    assert "\n" not in str(info.value)
    (tmp_path / "model.pt").write_bytes(b"not a model")
    with pytest.raises(UserError):
        rb.load_model(tmp_path / "model.pt")

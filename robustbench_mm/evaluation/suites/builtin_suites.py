"""The non-adversarial lenses: clean accuracy, novel deformations, common corruptions, calibration.

(The adversarial suite lives in :mod:`.adversarial`.) Each suite turns shifted
test images into per-example correctness and logits; calibration runs last (order 90) and
measures the clean logits and every shifted set the earlier suites left in
``ctx.shifted_logits``.
"""

from __future__ import annotations

import numpy as np
import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.inference import predict_logits
from robustbench_mm.core.results import row
from robustbench_mm.evaluation.calibration import calibration_rows, fit_temperature, reliability_bins
from robustbench_mm.evaluation.interface import (
    ALL_TESTS,
    Column,
    Question,
    Section,
    SuiteContext,
    SuiteOutput,
    register_suite,
)


def _score(ctx: SuiteContext, images: torch.Tensor) -> torch.Tensor:
    return predict_logits(ctx.model, images, batch_size=ctx.config.batch_size or 1000)


def _transformed(ctx: SuiteContext, transform, generator: torch.Generator) -> torch.Tensor:
    """Apply ``transform(batch, generator)`` batch by batch on the model's device (one generator)."""
    chunks = []
    step = ctx.config.batch_size or 1000
    for start in range(0, len(ctx.x), step):
        batch = ctx.x[start : start + step].to(ctx.device)
        chunks.append(transform(batch, generator).cpu())
    return torch.cat(chunks)


def _accuracy_output(
    ctx: SuiteContext, suite: str, test: str, severity: float, logits: torch.Tensor, out: SuiteOutput
) -> None:
    correct = (logits.argmax(1) == ctx.y).numpy()
    out.rows.append(row(suite, test, severity, "accuracy", correct.mean(), len(correct)))
    out.per_example[(suite, test, float(severity))] = correct
    out.logits[(suite, test, float(severity))] = logits


@register_suite(
    "clean",
    order=10,
    description="test accuracy",
    headline=(Column("Clean acc. (%)", "clean"),),
    verdict=(Question("clean accuracy", "clean", rank=40),),
)
def clean_suite(ctx: SuiteContext) -> SuiteOutput:
    out = SuiteOutput()
    _accuracy_output(ctx, "clean", "clean", 0.0, ctx.clean_logits, out)
    return out


@register_suite(
    "deformation",
    order=30,
    description="the paper's novel deformations (rotate, shear, zoom)",
    headline=(Column("Deformations, mean acc. (%)", ALL_TESTS, spread=False),),
    sections=(Section("Novel deformations: accuracy (%) by family and severity (degrees / percent)", "grid"),),
)
def deformation_suite(ctx: SuiteContext) -> SuiteOutput:
    """The paper's novel deformations (Table 4, or Table 9 with ``paper-full``)."""
    from robustbench_mm.corruptions import deform, deformation_grid

    out = SuiteOutput()
    grid = deformation_grid(ctx.config.deformations)
    with ctx.progress(len(grid), "deformation", unit="test") as bar:
        for name, severity in grid:
            generator = ctx.generator("deformation", name, severity)
            images = _transformed(
                ctx, lambda b, g, name=name, severity=severity: deform(b, name, severity, g), generator
            )
            _accuracy_output(ctx, "deformation", name, severity, _score(ctx, images), out)
            bar.update(1, f"{name} {severity:g}")
    accuracies = [r["value"] for r in out.rows]
    out.rows.append(row("deformation", "mean", 0.0, "accuracy", float(np.mean(accuracies)), len(ctx.y)))
    return out


@register_suite(
    "corruption",
    order=40,
    description="common corruptions of CIFAR-C x 5 severities",
    headline=(
        Column("Corruptions, mean acc. (%)", "mean", spread=False),
        Column("mCE vs ERM", "mean", "mce-vs-erm", spread=False),
        Column("Relative mCE vs ERM", "mean", "relative-mce-vs-erm", spread=False),
    ),
    verdict=(Question("corruptions (mean accuracy)", "mean", rank=20),),
    sections=(
        Section(
            "Common corruptions: accuracy (%) per corruption, mean over severities (every severity is in report.csv)",
            "per-test",
        ),
    ),
)
def corruption_suite(ctx: SuiteContext) -> SuiteOutput:
    """Common corruptions (generated on the device, or the published CIFAR-C files)."""
    from robustbench_mm.corruptions import CORRUPTIONS, corruption_names

    out = SuiteOutput()
    names = ctx.config.corruptions or corruption_names()
    for name in names:
        CORRUPTIONS.get(name)  # unknown names fail before any work
    severities = ctx.config.severities or [1, 2, 3, 4, 5]
    accuracies = []
    with ctx.progress(len(names) * len(severities), "corruption", unit="test") as bar:
        for name in names:
            for severity in severities:
                images = _corrupted(ctx, name, severity)
                _accuracy_output(ctx, "corruption", name, severity, _score(ctx, images), out)
                accuracies.append(out.rows[-1]["value"])
                bar.update(1, f"{name} {severity}")
    out.rows.append(row("corruption", "mean", 0.0, "accuracy", float(np.mean(accuracies)), len(ctx.y)))
    return out


def _corrupted(ctx: SuiteContext, name: str, severity: int) -> torch.Tensor:
    """The test images under one corruption: made on the device, or the published CIFAR-C files."""
    from robustbench_mm.corruptions import corrupt, load_cifar_c

    if not ctx.config.cifar_c_root:
        generator = ctx.generator("corruption", name, severity)
        return _transformed(ctx, lambda b, g: corrupt(b, name, severity, g), generator)
    if ctx.dataset not in ("cifar10", "cifar100"):
        raise UserError(f"--cifar-c-root only applies to cifar10/cifar100, not {ctx.dataset}")
    images, labels = load_cifar_c(ctx.config.cifar_c_root, ctx.dataset, name, severity)
    chosen = ctx.indices if ctx.indices is not None else slice(0, len(ctx.y))
    images, labels = images[chosen], labels[chosen]
    if not torch.equal(labels, ctx.y):
        raise UserError(f"labels.npy under {ctx.config.cifar_c_root} do not match the {ctx.dataset} test labels")
    return images


CONFIDENCE = ("calibration", "confidence", 0.0)  # per-example key of the clean confidences


@register_suite(
    "calibration",
    order=90,
    description="ECE, NLL, Brier ... on clean data and under every earlier suite's shifts",
    headline=(
        Column("ECE (%)", "clean", "ece"),
        Column("NLL", "clean", "nll"),
        Column("ECE after TS (%)", "clean", "ece-ts"),
    ),
    headline_order=25,  # beside the adversarial columns: the two numbers a reader compares first
    verdict=(Question("calibration (clean ECE)", "clean", "ece", rank=30),),
    sections=(
        Section(
            "Calibration on clean test data (ECE/MCE in %, -ts = after temperature scaling)",
            "metrics",
            metrics=(
                "accuracy",
                "ece",
                "ece-adaptive",
                "ece-classwise",
                "mce",
                "nll",
                "brier",
                "confidence",
                "ece-ts",
                "nll-ts",
                "brier-ts",
                "temperature",
            ),
        ),
    ),
)
def calibration_suite(ctx: SuiteContext) -> SuiteOutput:
    """Calibration of the clean logits and of every shifted set the earlier suites left in
    ``ctx.shifted_logits``, before and after temperature scaling.

    The temperature is fitted on the held-out part of the training split (never the test set).
    Also returns the reliability bins of the clean logits (the run's ``reliability.csv``).
    """
    temperature = None
    if ctx.holdout is not None and len(ctx.holdout[1]) > 0:
        holdout_logits = predict_logits(ctx.model, ctx.holdout[0], batch_size=ctx.config.batch_size or 1000)
        temperature = fit_temperature(holdout_logits, ctx.holdout[1])
    out = SuiteOutput()
    out.rows += calibration_rows(
        ctx.clean_logits, ctx.y, test="clean", severity=0.0, temperature=temperature, n_bins=ctx.config.n_bins
    )
    for (suite, test, severity), logits in ctx.shifted_logits.items():
        if suite == "clean":
            continue
        out.rows += calibration_rows(
            logits, ctx.y, test=test, severity=severity, temperature=temperature, n_bins=ctx.config.n_bins
        )
    out.reliability = reliability_bins(ctx.clean_logits, ctx.y, n_bins=ctx.config.n_bins)
    # each example's clean confidence: with the clean correctness, the report bootstraps ECE
    # differences over test examples, as it does accuracy differences
    out.per_example[CONFIDENCE] = ctx.clean_logits.softmax(1).amax(1).numpy()
    return out

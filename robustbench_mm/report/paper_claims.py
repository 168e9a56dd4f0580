"""The report's section on the paper's own claims, each answered plainly with a CI over seeds.

1. *Flattening* (Sec. 3): Manifold Mixup's class representations concentrate in fewer directions
   — a lower effective rank than ERM's at the mixing layers.
2. *Uncertain off the data* (abstract): lower confidence on outliers and between classes, and
   outliers easier to tell apart (higher AUROC of the maximum softmax probability).

Differences are method − ERM over seeds, with a Welch 95% CI (seed-to-seed spread); with one seed
there is no CI and the answer is "one seed: no CI".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from robustbench_mm.methods import method_label, method_sort_key
from robustbench_mm.report.markup import Block

FLATTENING_METRIC = "effective-rank"
HEADLINE_LAMBDA = 0.5  # the middle of an interpolation: the paper's "between classes"


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float] | None:
    """mean(a) − mean(b) and its Welch 95% CI over seeds (None: fewer than two seeds a side)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, df)) * se
    return diff, diff - half, diff + half


def _answer(ci: tuple[float, float, float] | None, want_lower: bool) -> str:
    if ci is None:
        return "one seed: no CI"
    _, low, high = ci
    if (high < 0) if want_lower else (low > 0):
        return "yes"
    if (low > 0) if want_lower else (high < 0):
        return "no, the opposite"
    return "no significant difference"


def _per_seed(
    metrics: pd.DataFrame, suite: str, test: str, metric: str, severity: float = 0.0
) -> dict[str, np.ndarray]:
    rows = metrics[
        (metrics.suite == suite)
        & (metrics.test == test)
        & (metrics.metric == metric)
        & np.isclose(metrics.severity, severity)
    ]
    return {m: g.sort_values("seed")["value"].to_numpy() for m, g in rows.groupby("method")}


def _cell(values: np.ndarray, scale: float, digits: int) -> str:
    text = f"{values.mean() * scale:.{digits}f}"
    return text + (f" ± {values.std(ddof=1) * scale:.{digits}f}" if len(values) > 1 else "")


def _diff_cell(ci: tuple[float, float, float] | None, diff: float, scale: float, digits: int, answer: str) -> str:
    spread = f" [{ci[1] * scale:+.{digits}f}, {ci[2] * scale:+.{digits}f}]" if ci is not None else ""
    return f"{diff * scale:+.{digits}f}{spread}: {answer}"


def flattening_table(metrics: pd.DataFrame) -> tuple[pd.DataFrame, list[str]] | None:
    """Layer × method effective rank, and each method's difference to ERM with the answer."""
    part = metrics[(metrics.suite == "representation") & (metrics.metric == FLATTENING_METRIC)]
    if part.empty or "erm" not in set(part.method):
        return None
    methods = sorted(part.method.unique(), key=method_sort_key)
    rows: list[Any] = []
    flatter: dict[str, list[Any]] = {m: [] for m in methods if m != "erm"}
    for layer in _layers(set(part.test.unique()) - {"layer0"}):  # layer 0 is the data, the same for every method
        values = _per_seed(metrics, "representation", layer, FLATTENING_METRIC)
        row = {"layer": layer, **{method_label(m): _cell(values[m], 1, 2) for m in methods if m in values}}
        for method in flatter:
            if method in values:
                ci = welch(values[method], values["erm"])
                answer = _answer(ci, want_lower=True)
                row[f"{method_label(method)} − ERM"] = _diff_cell(
                    ci, float(values[method].mean() - values["erm"].mean()), 1, 2, answer
                )
                if answer == "yes":
                    flatter[method].append(layer)
        rows.append(row)
    lines = [
        f"- **{method_label(m)}**: "
        + (f"flatter than ERM at {', '.join(layers)}" if layers else "not flatter than ERM at any layer")
        for m, layers in flatter.items()
    ]
    return pd.DataFrame(rows).fillna("–"), lines


def _layers(names) -> list[str]:
    def key(name: str) -> tuple[int, str]:
        return (
            (10_000, name) if not name.startswith("layer") else (int(name[5:]) if name[5:].isdigit() else 9_999, name)
        )

    return sorted(names, key=key)


def confidence_table(metrics: pd.DataFrame) -> tuple[pd.DataFrame, list[str]] | None:
    """Per outlier set: AUROC (MSP) and the mean confidence on the outliers; and between classes."""
    part = metrics[metrics.suite == "ood"]
    if part.empty or "erm" not in set(part.method):
        return None
    methods = sorted(part.method.unique(), key=method_sort_key)
    questions = [(f"AUROC (MSP), {t}", t, "auroc-msp", 0.0, False) for t in sorted(set(part.test) - {"interpolation"})]
    questions += [
        (f"confidence on {t} (%)", t, "confidence", 0.0, True) for t in sorted(set(part.test) - {"interpolation"})
    ]
    questions.append(
        (f"confidence between classes, λ = {HEADLINE_LAMBDA} (%)", "interpolation", "confidence", HEADLINE_LAMBDA, True)
    )
    rows: list[Any] = []
    lines: dict[str, list[Any]] = {m: [] for m in methods if m != "erm"}
    for label, test, metric, severity, want_lower in questions:
        values = _per_seed(metrics, "ood", test, metric, severity)
        if "erm" not in values:
            continue
        row = {"measure": label, **{method_label(m): _cell(values[m], 100, 1) for m in methods if m in values}}
        for method in lines:
            if method in values:
                ci = welch(values[method], values["erm"])
                answer = _answer(ci, want_lower)
                row[f"{method_label(method)} − ERM"] = _diff_cell(
                    ci, float(values[method].mean() - values["erm"].mean()), 100, 1, answer
                )
                lines[method].append((label, answer))
        rows.append(row)
    summary = []
    for method, answers in lines.items():
        held = [label for label, answer in answers if answer == "yes"]
        summary.append(
            f"- **{method_label(method)}**: better than ERM (less confident, or outliers easier to detect) on "
            f"{len(held)} of {len(answers)} measures" + (f": {'; '.join(held)}" if held else "")
        )
    return pd.DataFrame(rows).fillna("–"), summary


def lens_blocks(metrics: pd.DataFrame) -> list[Block]:
    """The section, or nothing when neither lens was evaluated."""
    flat, confident = flattening_table(metrics), confidence_table(metrics)
    if flat is None and confident is None:
        return []
    blocks = [
        Block("h2", "The paper's own claims"),
        Block(
            "p",
            "Method − ERM over seeds with a Welch 95% CI; *yes* means the claim holds here with the CI excluding 0.",
        ),
    ]
    if flat is not None:
        blocks += [
            Block(
                "h3",
                "1. Flatter class representations (effective rank of each class's hidden states, "
                "lower = flatter; Roy and Vetterli 2007; layer 0, the input itself, is left out)",
            ),
            Block("table", table=flat[0]),
            Block("p", "\n".join(flat[1])),
        ]
    if confident is not None:
        blocks += [
            Block("h3", "2. Less confident off the data (AUROC: higher = outliers easier to detect)"),
            Block("table", table=confident[0]),
            Block("p", "\n".join(confident[1])),
        ]
    return blocks

"""The answer in one line per method, and when not to trust it.

**Guard.** A run is *undertrained* when its clean accuracy is below the dataset's floor
(its card in ``data/cards.py``; an image folder has none unless ``--accuracy-floor`` gives one) or
when its training loss was still falling steeply at the end (the mean loss of the last tenth of
the epochs more than :data:`STEEP` below the tenth before, and by more than :data:`MIN_FALL` nats:
a loss near zero halves when the schedule anneals -- a 99.5% MNIST model went from 0.045 to
0.023 in its last epoch -- without the model being undertrained). A comparison is *confounded* when two
methods' clean accuracies differ by more than :data:`CONFOUNDED` (2 points): robust accuracy then
moves with clean accuracy, whatever the method does.

**Verdict.** Each method against ERM on four questions, each answered from a paired-bootstrap
95% CI over test examples (seeds pooled): the headline worst-case robust accuracy, the mean
accuracy over common corruptions, calibration (clean ECE) and clean accuracy — "better",
"worse" or "no significant difference" (the CI holds 0), or "not comparable" when the guard
fired on the method's or ERM's runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from robustbench_mm.core.metrics import LOWER
from robustbench_mm.core.metrics import metric as metric_info
from robustbench_mm.data.cards import CARDS, dataset_family
from robustbench_mm.evaluation.catalog import all_suites
from robustbench_mm.evaluation.interface import HEADLINE_EPS
from robustbench_mm.methods import method_label, method_sort_key
from robustbench_mm.report.collect import RunSet

STEEP = 0.2  # relative fall of the training loss over the last tenth of training
MIN_FALL = 0.05  # ... that is also this large in nats
SATURATED = 0.02  # headline worst case below which, for every method, the verdict judges on the curve
CONFOUNDED = 0.02  # clean-accuracy gap (fraction) beyond which robust accuracies are not comparable
BOOTSTRAP_SAMPLES = 1000


@dataclass
class Guard:
    """What the guard found, per run and per method."""

    floor: float | None
    runs: dict[str, list[str]] = field(default_factory=dict)  # run -> reasons it is undertrained
    methods: dict[str, list[str]] = field(default_factory=dict)  # method -> reasons (any seed)

    @property
    def fired(self) -> bool:
        return bool(self.methods)


def floor_for(dataset: str, given: float | None = None) -> float | None:
    if given is not None:
        return given
    defaults = CARDS.get(dataset_family(dataset))
    return None if defaults is None or dataset.startswith("imagefolder:") else defaults.floor


def guard(runs: RunSet, floor: float | None = None) -> Guard:
    """Which runs are undertrained, and why (see the module docstring)."""
    metrics = runs.metrics
    result = Guard(floor_for(str(metrics["dataset"].iloc[0]), floor))
    clean = metrics[(metrics.suite == "clean") & (metrics.metric == "accuracy")].set_index("run")
    for run, row in clean.iterrows():
        reasons = []
        if result.floor is not None and row["value"] < result.floor:
            reasons.append(
                f"clean accuracy {row['value'] * 100:.1f}% (seed {row['seed']}) is below the floor "
                f"{result.floor * 100:.0f}%"
            )
        fall = loss_fall(runs.logs.get(run))
        if fall is not None and fall > STEEP:
            reasons.append(
                f"its training loss was still falling (seed {row['seed']}: {fall * 100:.0f}% over the last "
                "tenth of training)"
            )
        if reasons:
            result.runs[run] = reasons
            result.methods.setdefault(str(row["method"]), []).extend(reasons)
    return result


def loss_fall(log: pd.DataFrame | None) -> float | None:
    """Relative fall of the mean training loss from the second-to-last tenth of the epochs to the
    last; 0 when the fall is below :data:`MIN_FALL` nats (None: too few epochs to compare).

    An annealed schedule's loss falls while its learning rate decays, however well trained the
    model (the trapezoid schedule's last epochs). When the log's learning rate changed over the
    two tenths compared, they are the last two tenths of the epochs trained at half the peak rate
    or more: was the loss still falling at the rate the model learned at?"""
    if log is None or "loss" not in log.columns:
        return None
    losses = log["loss"].to_numpy(dtype=float)
    k = max(1, round(len(losses) / 10))
    if "lr" in log.columns and len(losses) >= 2 * k:
        rates = log["lr"].to_numpy(dtype=float)
        window = rates[-2 * k :]
        if np.all(np.isfinite(rates)) and window.max() - window.min() > 0.01 * window.max():
            last_at_speed = np.flatnonzero(rates >= 0.5 * rates.max())[-1]  # the peak itself is one
            losses = losses[: last_at_speed + 1]
    if len(losses) < 2 * k or len(losses) < 4:
        return None
    before, last = losses[-2 * k : -k].mean(), losses[-k:].mean()
    if before <= 0:
        return None
    return float((before - last) / before) if before - last > MIN_FALL else 0.0


def clean_gaps(summary: pd.DataFrame) -> dict[str, float]:
    """method -> its clean accuracy minus ERM's (seed means)."""
    clean = summary[(summary.suite == "clean") & (summary.metric == "accuracy")].set_index("method")["mean"]
    return {m: float(clean[m] - clean["erm"]) for m in clean.index if m != "erm"} if "erm" in clean.index else {}


def _ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE of each row (a bootstrap sample) of ``conf``/``correct``, binned as
    :func:`calibration.ece` bins: equal-width bins closed on the left, plus one slot for
    confidences of exactly 1.0."""
    slots = n_bins + 1
    bins = np.minimum((conf.astype(np.float64) * n_bins).astype(np.int64), n_bins)
    flat = bins + slots * np.arange(conf.shape[0])[:, None]
    gap = np.bincount(flat.ravel(), weights=(correct - conf).ravel(), minlength=slots * conf.shape[0])
    return np.abs(gap.reshape(conf.shape[0], slots)).sum(axis=1) / conf.shape[1]


def ece_difference(
    runs: RunSet, mine: list[str], erm: list[str], n_bins: int = 15, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float, float] | None:
    """ECE(method) − ECE(ERM), seeds averaged, with a 95% CI resampling test examples."""
    key, clean = ("calibration", "confidence", 0.0), ("clean", "clean", 0.0)
    sides = []
    for names in (mine, erm):
        found = [(runs.per_example[r].get(key), runs.per_example[r].get(clean)) for r in names]
        pairs = [(c, ok) for c, ok in found if c is not None and ok is not None]
        if not pairs or len(pairs) < len(found):
            return None
        sides.append(pairs)
    n = len(sides[0][0][0])
    if any(len(c) != n for side in sides for c, _ in side):
        return None
    rng = np.random.default_rng(seed)
    draws = np.vstack([np.arange(n), rng.integers(0, n, size=(samples, n))])  # row 0: the sample itself
    values = []
    for side in sides:
        values.append(np.mean([_ece(c[draws], ok[draws].astype(float), n_bins) for c, ok in side], axis=0))
    diff = values[0] - values[1]
    low, high = np.percentile(diff[1:], [2.5, 97.5])
    return float(diff[0]), float(low), float(high)


def _word(low: float, high: float, higher_is_better: bool) -> str:
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "no significant difference"


def saturated(table: pd.DataFrame, headline: float | None) -> bool:
    """Every method's headline worst-case robust accuracy (seed mean) is below :data:`SATURATED`:
    the attacks are strong there and nothing can differ, so the headline cannot rank methods."""
    if headline is None:
        return False
    q = table[
        (table.suite == "adversarial")
        & (table.test == "worst-case")
        & (table.metric == "accuracy")
        & np.isclose(table.severity, headline)
    ]
    return len(q) > 0 and bool((q["mean"] < SATURATED).all())


def curve_parts(diffs: pd.DataFrame, method: str, show, gap=None) -> list[str]:
    """The verdict on the robustness curve: median ε*, the area under the curve, and the radius
    where the method differs most from ERM (``gap``: :class:`robustbench_mm.report.curve_stats.Gap`)."""
    parts = []
    mine = diffs[(diffs.method == method) & (diffs.test == "curve")]
    for metric, scale, unit, digits in (("median-eps", 1.0, "", 4), ("auc", 100.0, " points", 1)):
        q = mine[mine.metric == metric]
        if q.empty:
            continue
        r = q.iloc[0]
        label = "median ε*" if metric == "median-eps" else f"area under the curve to ε = {show(r.severity)}"
        parts.append(
            f"{label}: **{_word(r.ci_low, r.ci_high, True)}** ({r['diff'] * scale:+.{digits}f} "
            f"[{r.ci_low * scale:+.{digits}f}, {r.ci_high * scale:+.{digits}f}]{unit})"
        )
    if gap is not None and np.isfinite(gap.diff):
        parts.append(
            f"largest difference at ε = {show(gap.eps)}: {gap.diff * 100:+.1f} "
            f"[{gap.low * 100:+.1f}, {gap.high * 100:+.1f}] points"
        )
    return parts


def verdict_lines(
    table: pd.DataFrame, checks: Guard, headline: float | None, show, gaps: dict | None = None
) -> list[str]:
    """One line per method: how it compares with ERM on the four questions. On a saturated
    headline (:func:`saturated`) the robust-accuracy question is judged on the robustness curve."""
    diffs = table.dropna(subset=["diff"])
    flat = saturated(table, headline)
    # what every suite asks (Suite.verdict), by rank; a question at the headline radius needs one
    questions = sorted(((q.rank, s.name, q) for s in all_suites() for q in s.verdict), key=lambda t: (t[0], t[1]))
    lines = []
    for method in sorted(set(diffs.method), key=method_sort_key):
        if method in checks.methods or "erm" in checks.methods:
            who = method_label(method) if method in checks.methods else "ERM"
            lines.append(
                f"- **{method_label(method)}** vs ERM: not comparable ({who} undertrained: "
                f"{checks.methods.get(method, checks.methods.get('erm', ['']))[0]})"
            )
            continue
        parts = []
        for _, suite, question in questions:
            severity = headline if question.severity is HEADLINE_EPS else question.severity
            if severity is None:
                continue
            test, metric, info = question.test, question.metric, metric_info(question.metric)
            label = question.label.replace("{eps}", show(severity))
            q = diffs[
                (diffs.method == method)
                & (diffs.suite == suite)
                & (diffs.test == test)
                & (diffs.metric == metric)
                & np.isclose(diffs.severity, severity)
            ]
            if flat and test == "worst-case":
                parts.append(_saturated_part(label, diffs, method, show, (gaps or {}).get(method)))
                continue
            if q.empty:
                continue
            r = q.iloc[0]
            parts.append(
                f"{label}: **{_word(r.ci_low, r.ci_high, info.direction != LOWER)}** ({r['diff'] * info.scale:+.1f} "
                f"[{r.ci_low * info.scale:+.1f}, {r.ci_high * info.scale:+.1f}] points)"
            )
        if parts:
            lines.append(f"- **{method_label(method)}** vs ERM: " + "; ".join(parts))
    return lines


def _saturated_part(label: str, diffs: pd.DataFrame, method: str, show, gap) -> str:
    curve = curve_parts(diffs, method, show, gap)
    said = f"{label}: saturated (every method below {SATURATED * 100:.0f}%)"
    if not curve:
        return said + ", and no robustness curve to judge on (evaluate with the minimum-norm attack fmn-linf)"
    return said + ", judged on the robustness curve: " + "; ".join(curve)

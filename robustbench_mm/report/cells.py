"""The report's tables: the headline, the differences to ERM, diagnostics and the details.

Every function is a pandas operation over the report table; how a number looks comes from the
metric registry, how a radius is written (8/255 or 0.3) from the dataset's threat model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from robustbench_mm.core.metrics import LOWER
from robustbench_mm.core.metrics import metric as metric_info
from robustbench_mm.data.threat import ThreatModel, headline_radius
from robustbench_mm.evaluation.catalog import headline_suites
from robustbench_mm.evaluation.interface import ALL_TESTS, HEADLINE_EPS, Column
from robustbench_mm.methods import method_sort_key


def _show(eps: float, threat: ThreatModel | None) -> str:
    return threat.show(eps) if threat is not None else f"{eps:.3g}"


def _fmt(mean: float, std: float, metric: str, seeds: int) -> str:
    info = metric_info(metric)
    return info.display(mean) + (f" ± {info.display(std)}" if seeds > 1 else "")


def headline_eps(summary: pd.DataFrame, threat: ThreatModel | None = None) -> float | None:
    """The radius the headline quotes: the threat model's (else the middle of the PGD radii)."""
    eps = sorted(float(e) for e in summary.query("suite == 'adversarial' and test == 'pgd-linf'")["severity"].unique())
    eps = [e for e in eps if e > 0]
    if threat is not None:
        return headline_radius(eps, threat)
    return float(eps[len(eps) // 2]) if eps else None


def _value(summary: pd.DataFrame, method: str, suite: str, test: str, metric: str, severity: float | None = None):
    q = summary[
        (summary.method == method) & (summary.suite == suite) & (summary.test == test) & (summary.metric == metric)
    ]
    if severity is not None:
        q = q[np.isclose(q.severity, severity)]
    return None if q.empty else q.iloc[0]


def diagnostics_flags(summary: pd.DataFrame) -> dict[str, list[str]]:
    """method -> names of the gradient-masking checks that fired on any seed."""
    flags = summary[(summary.suite == "diagnostics") & (summary.metric == "flag") & (summary["mean"] > 0)]
    out: dict[str, list[str]] = {}
    for _, r in flags.iterrows():
        out.setdefault(r.method, [])
        if r.test not in out[r.method]:
            out[r.method].append(r.test)
    return out


def headline(summary: pd.DataFrame, threat: ThreatModel | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Methods as rows, the columns every suite declares (``Suite.headline``) in the suites'
    headline order; best value in bold (which way is better: the metric registry)."""
    methods = sorted(summary.method.unique(), key=method_sort_key)
    eps = headline_eps(summary, threat)
    table: dict[str, list] = {"method": methods}
    masked, notes = [], []
    erm_drop = _erm_corruption_drop(summary)
    for suite in headline_suites():
        for column in suite.headline:
            found = _column(summary, methods, suite.name, column, eps, threat)
            if found is None:
                continue
            label, cells, values = found
            table[label] = cells
            if column.masking:
                masked.append(label)
            if column.metric == "relative-mce-vs-erm" and erm_drop is not None and erm_drop < UNSTABLE_DROP:
                notes.append(
                    f"Relative mCE is not ranked: ERM loses only {erm_drop * 100:.1f} accuracy points to "
                    f"corruption on average (below {UNSTABLE_DROP * 100:.0f}), so the ratio divides tiny "
                    "differences and is unstable."
                )
                continue
            _bold_best(cells, values, metric_info(column.metric).direction != LOWER)
    flags = diagnostics_flags(summary)
    for i, method in enumerate(methods):
        if method in flags:
            for label in masked:
                table[label][i] += " ⚠"
            notes.append(
                f"⚠ {method}: gradient-masking check(s) fired — {', '.join(flags[method])}; "
                "its adversarial numbers may overstate robustness."
            )
    return pd.DataFrame(table), notes


def _column(
    summary: pd.DataFrame,
    methods: list[str],
    suite: str,
    column: Column,
    eps: float | None,
    threat: ThreatModel | None,
) -> tuple[str, list[str], list[float]] | None:
    """(label, cells, seed-means) of one declared headline column; None when nothing was measured."""
    if column.severity is HEADLINE_EPS and eps is None:
        return None
    severity = eps if column.severity is HEADLINE_EPS else column.severity
    label = column.label.replace("{eps}", _show(eps, threat)) if eps is not None else column.label
    info = metric_info(column.metric)
    if column.test == ALL_TESTS:
        part = summary[(summary.suite == suite) & (summary.metric == column.metric) & (summary.test != "mean")]
        if part.empty:
            return None
        means = part.groupby("method")["mean"].mean()
        values = [float(means.get(m, np.nan)) for m in methods]
        return label, ["–" if np.isnan(v) else info.display(v) for v in values], values
    rows = [_value(summary, m, suite, column.test, column.metric, severity) for m in methods]
    if all(r is None for r in rows):
        return None
    cells = [
        "–"
        if r is None
        else (_fmt(r["mean"], r["std"], column.metric, int(r["seeds"])) if column.spread else info.display(r["mean"]))
        for r in rows
    ]
    return label, cells, [np.nan if r is None else r["mean"] for r in rows]


UNSTABLE_DROP = 0.02  # ERM's mean accuracy lost to corruption below which relative mCE is not ranked


def _erm_corruption_drop(summary: pd.DataFrame) -> float | None:
    """ERM's clean accuracy minus its mean accuracy under corruption (the relative mCE's denominator)."""
    clean = _value(summary, "erm", "clean", "clean", "accuracy")
    corrupted = _value(summary, "erm", "corruption", "mean", "accuracy")
    return None if clean is None or corrupted is None else float(clean["mean"] - corrupted["mean"])


def _bold_best(cells: list[str], values: list[float], higher: bool) -> None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    if len(finite) < 2:
        return
    best = max(finite) if higher else min(finite)
    for i, v in enumerate(values):
        if v is not None and np.isfinite(v) and np.isclose(v, best):
            cells[i] = f"**{cells[i]}**"


def detail_table(
    summary: pd.DataFrame, suite: str, metric: str = "accuracy", threat: ThreatModel | None = None
) -> pd.DataFrame | None:
    part = summary[(summary.suite == suite) & (summary.metric == metric)]
    if part.empty:
        return None
    methods = sorted(part.method.unique(), key=method_sort_key)
    cols = part[["test", "severity"]].drop_duplicates().sort_values(["test", "severity"]).itertuples(index=False)
    table: dict[str, list] = {"method": methods}
    for test, severity in cols:
        shown = _show(severity, threat) if suite == "adversarial" and not test.endswith("l2") else f"{severity:g}"
        label = test if severity == 0 else f"{test} {shown}"
        cells, values = [], []
        for method in methods:
            r = _value(summary, method, suite, test, metric, severity)
            values.append(np.nan if r is None else r["mean"])
            cells.append("–" if r is None else _fmt(r["mean"], r["std"], metric, int(r["seeds"])))
        _bold_best(cells, values, metric_info(metric).direction != LOWER)
        table[label] = cells
    return pd.DataFrame(table)


def per_test_table(summary: pd.DataFrame, suite: str, metric: str = "accuracy") -> pd.DataFrame | None:
    """Tests as rows (the suite's "mean" last), methods as columns: ``metric`` averaged over
    severities (seed-means)."""
    part = summary[(summary.suite == suite) & (summary.metric == metric)]
    if part.empty:
        return None
    methods = sorted(part.method.unique(), key=method_sort_key)
    means = part.groupby(["test", "method"])["mean"].mean().unstack("method")[methods]
    order = [t for t in sorted(means.index) if t != "mean"] + (["mean"] if "mean" in means.index else [])
    rows = []
    for test in order:
        values = [means.loc[test, m] for m in methods]
        cells = [metric_info(metric).display(v) for v in values]
        _bold_best(cells, values, metric_info(metric).direction != LOWER)
        rows.append([test, *cells])
    return pd.DataFrame(rows, columns=[suite, *methods])


def diff_table(table: pd.DataFrame, summary: pd.DataFrame, threat: ThreatModel | None = None) -> pd.DataFrame | None:
    eps = headline_eps(summary, threat)
    wanted = [("clean", "clean", 0.0)]
    if eps is not None:  # the accuracies the headline quotes at its radius
        wanted += [(s.name, c.test, eps) for s in headline_suites() for c in s.headline if c.severity is HEADLINE_EPS]
    diffs = table.dropna(subset=["diff"])
    if diffs.empty:
        return None
    rows = []
    for method in sorted(diffs.method.unique(), key=method_sort_key):
        row = {"method": method}
        for suite, test, sev in wanted:
            q = diffs[
                (diffs.method == method)
                & (diffs.suite == suite)
                & (diffs.test == test)
                & np.isclose(diffs.severity, sev)
            ]
            if not q.empty:
                r = q.iloc[0]
                label = test if suite == "clean" else f"{test} ε={_show(sev, threat)}"
                row[label] = f"{r['diff'] * 100:+.1f} [{r.ci_low * 100:+.1f}, {r.ci_high * 100:+.1f}]"
        for metric, label, scale in (("median-eps", "median ε*", 1.0), ("auc", "curve area", 100.0)):
            q = diffs[(diffs.method == method) & (diffs.test == "curve") & (diffs.metric == metric)]
            if not q.empty:
                r, digits = q.iloc[0], 4 if scale == 1.0 else 1
                row[label] = (
                    f"{r['diff'] * scale:+.{digits}f} [{r.ci_low * scale:+.{digits}f}, {r.ci_high * scale:+.{digits}f}]"
                )
        for suite in pooled_suites():
            q = diffs[(diffs.method == method) & (diffs.suite == suite) & (diffs.test == "mean")]
            if not q.empty:
                r = q.iloc[0]
                row[f"{suite} (mean over tests)"] = (
                    f"{r['diff'] * 100:+.1f} [{r.ci_low * 100:+.1f}, {r.ci_high * 100:+.1f}]"
                )
        ece = diffs[(diffs.method == method) & (diffs.suite == "calibration") & (diffs.metric == "ece")]
        if not ece.empty:
            r = ece.iloc[0]
            row["ECE (clean)"] = f"{r['diff'] * 100:+.1f} [{r.ci_low * 100:+.1f}, {r.ci_high * 100:+.1f}]"
        rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def pooled_suites() -> list[str]:
    """The suites whose headline quotes an accuracy averaged over their tests: their difference to
    ERM is pooled over tests too (each example's accuracy averaged over the suite's tests)."""
    return [
        s.name
        for s in headline_suites()
        if any(c.metric == "accuracy" and c.test in (ALL_TESTS, "mean") for c in s.headline)
    ]


def diagnostics_table(summary: pd.DataFrame, threat: ThreatModel | None = None) -> pd.DataFrame | None:
    """method x check: "ok" or "⚠ k/n seeds", with the measured quantity's mean."""
    flags = summary[(summary.suite == "diagnostics") & (summary.metric == "flag")]
    if flags.empty:
        return None
    values = summary[(summary.suite == "diagnostics") & (summary.metric == "value")]
    methods = sorted(flags.method.unique(), key=method_sort_key)
    checks = flags[["test", "severity"]].drop_duplicates().sort_values(["test", "severity"]).itertuples(index=False)
    table: dict[str, list] = {"method": methods}
    for test, severity in checks:
        label = test if severity == 0 else f"{test} (ε={_show(severity, threat)})"
        cells = []
        for method in methods:
            r = _value(summary, method, "diagnostics", test, "flag", severity)
            v = _value(values, method, "diagnostics", test, "value", severity)
            fired = int(round(r["mean"] * r["seeds"])) if r is not None else 0
            detail = f" ({v['mean']:+.3f})" if v is not None else ""
            cells.append(("ok" if fired == 0 else f"⚠ {fired}/{int(r['seeds'])} seeds") + detail)
        table[label] = cells
    return pd.DataFrame(table)

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
    """Methods as rows, the quotable number of each lens as columns; best value in bold."""
    methods = sorted(summary.method.unique(), key=method_sort_key)
    eps = headline_eps(summary, threat)
    columns: list[tuple[str, str, str, str, float | None, bool]] = [
        ("Clean acc. (%)", "clean", "clean", "accuracy", 0.0, True)
    ]
    if eps is not None:
        for test, label in (("fgsm", "FGSM"), ("pgd-linf", "PGD"), ("worst-case", "Worst case")):
            if _value(summary, methods[0], "adversarial", test, "accuracy", eps) is not None:
                columns.append((f"{label} ε={_show(eps, threat)} (%)", "adversarial", test, "accuracy", eps, True))
    deformation = summary[(summary.suite == "deformation") & (summary.metric == "accuracy") & (summary.test != "mean")]
    corruption = summary[(summary.suite == "corruption") & (summary.test == "mean")]
    for name in ("ece", "nll", "ece-ts"):
        if _value(summary, methods[0], "calibration", "clean", name) is not None:
            columns.append(
                (
                    {"ece": "ECE (%)", "nll": "NLL", "ece-ts": "ECE after TS (%)"}[name],
                    "calibration",
                    "clean",
                    name,
                    0.0,
                    False,
                )
            )
    flags = diagnostics_flags(summary)
    table: dict[str, list] = {"method": methods}
    raw: dict[str, list] = {}
    for label, suite, test, metric, severity, higher in columns:
        cells, values = [], []
        for method in methods:
            r = _value(summary, method, suite, test, metric, severity)
            values.append(np.nan if r is None else r["mean"])
            cells.append("–" if r is None else _fmt(r["mean"], r["std"], metric, int(r["seeds"])))
        table[label], raw[label] = cells, values
        _bold_best(table[label], values, higher)
    if not deformation.empty:
        means = deformation.groupby("method")["mean"].mean()
        values = [means.get(m, np.nan) for m in methods]
        table["Deformations, mean acc. (%)"] = [f"{v * 100:.1f}" for v in values]
        _bold_best(table["Deformations, mean acc. (%)"], values, True)
    if not corruption.empty:
        rows = [_value(summary, m, "corruption", "mean", "accuracy") for m in methods]
        values = [np.nan if r is None else r["mean"] for r in rows]
        table["Corruptions, mean acc. (%)"] = [f"{v * 100:.1f}" for v in values]
        _bold_best(table["Corruptions, mean acc. (%)"], values, True)
    notes = []
    erm_drop = _erm_corruption_drop(summary)
    for metric, label in (("mce-vs-erm", "mCE vs ERM"), ("relative-mce-vs-erm", "Relative mCE vs ERM")):
        rows = [_value(summary, m, "corruption", "mean", metric) for m in methods]
        if any(r is not None for r in rows):
            values = [np.nan if r is None else r["mean"] for r in rows]
            table[label] = ["–" if r is None else f"{r['mean']:.3f}" for r in rows]
            if metric == "relative-mce-vs-erm" and erm_drop is not None and erm_drop < UNSTABLE_DROP:
                notes.append(
                    f"Relative mCE is not ranked: ERM loses only {erm_drop * 100:.1f} accuracy points to "
                    f"corruption on average (below {UNSTABLE_DROP * 100:.0f}), so the ratio divides tiny "
                    "differences and is unstable."
                )
                continue
            _bold_best(table[label], values, False)
    for i, method in enumerate(methods):
        if method in flags:
            for label in table:
                if label.startswith(("FGSM", "PGD", "Worst")):
                    table[label][i] += " ⚠"
            notes.append(
                f"⚠ {method}: gradient-masking check(s) fired — {', '.join(flags[method])}; "
                "its adversarial numbers may overstate robustness."
            )
    return pd.DataFrame(table), notes


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


def corruption_table(summary: pd.DataFrame) -> pd.DataFrame | None:
    """Corruptions as rows, methods as columns: accuracy averaged over severities (seed-means)."""
    part = summary[(summary.suite == "corruption") & (summary.metric == "accuracy")]
    if part.empty:
        return None
    methods = sorted(part.method.unique(), key=method_sort_key)
    means = part.groupby(["test", "method"])["mean"].mean().unstack("method")[methods]
    order = [t for t in sorted(means.index) if t != "mean"] + (["mean"] if "mean" in means.index else [])
    rows = []
    for test in order:
        values = [means.loc[test, m] for m in methods]
        cells = [f"{v * 100:.1f}" for v in values]
        _bold_best(cells, values, True)
        rows.append([test, *cells])
    return pd.DataFrame(rows, columns=["corruption", *methods])


def diff_table(table: pd.DataFrame, summary: pd.DataFrame, threat: ThreatModel | None = None) -> pd.DataFrame | None:
    eps = headline_eps(summary, threat)
    wanted = [("clean", "clean", 0.0)]
    if eps is not None:
        wanted += [("adversarial", t, eps) for t in ("fgsm", "pgd-linf", "worst-case")]
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
        for suite in ("deformation", "corruption"):
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

"""The report as a document: headline, differences to ERM, diagnostics, details, setup.

Built once as a list of :class:`~robustbench_mm.document.Block` and written as Markdown or HTML.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..document import Block
from ..methods import method_sort_key
from ..metrics import LOWER, NEITHER, metric as metric_info
from .collect import RunSet


def _fmt(mean: float, std: float, metric: str, seeds: int) -> str:
    info = metric_info(metric)
    return info.display(mean) + (f" ± {info.display(std)}" if seeds > 1 else "")


def headline_eps(summary: pd.DataFrame) -> float | None:
    eps = sorted(summary.query("suite == 'adversarial' and test == 'pgd-linf'")["severity"].unique())
    eps = [e for e in eps if e > 0]
    return float(eps[len(eps) // 2]) if eps else None


def _value(summary: pd.DataFrame, method: str, suite: str, test: str, metric: str, severity: float | None = None):
    q = summary[(summary.method == method) & (summary.suite == suite) & (summary.test == test) & (summary.metric == metric)]
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


def headline(summary: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Methods as rows, the quotable number of each lens as columns; best value in bold."""
    methods = sorted(summary.method.unique(), key=method_sort_key)
    eps = headline_eps(summary)
    columns: list[tuple[str, str, str, str, float | None, bool]] = [("Clean acc. (%)", "clean", "clean", "accuracy", 0.0, True)]
    if eps is not None:
        for test, label in (("fgsm", "FGSM"), ("pgd-linf", "PGD"), ("worst-case", "Worst case")):
            if _value(summary, methods[0], "adversarial", test, "accuracy", eps) is not None:
                columns.append((f"{label} ε={eps:.3g} (%)", "adversarial", test, "accuracy", eps, True))
    deformation = summary[(summary.suite == "deformation") & (summary.metric == "accuracy")]
    corruption = summary[(summary.suite == "corruption") & (summary.test == "mean")]
    for name, lower in (("ece", True), ("nll", True), ("ece-ts", True)):
        if _value(summary, methods[0], "calibration", "clean", name) is not None:
            columns.append(({"ece": "ECE (%)", "nll": "NLL", "ece-ts": "ECE after TS (%)"}[name], "calibration", "clean", name, 0.0, False))
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
    for metric, label in (("mce-vs-erm", "mCE vs ERM"), ("relative-mce-vs-erm", "Relative mCE vs ERM")):
        rows = [_value(summary, m, "corruption", "mean", metric) for m in methods]
        if any(r is not None for r in rows):
            values = [np.nan if r is None else r["mean"] for r in rows]
            table[label] = ["–" if r is None else f"{r['mean']:.3f}" for r in rows]
            _bold_best(table[label], values, False)
    notes = []
    for i, method in enumerate(methods):
        if method in flags:
            for label in table:
                if label.startswith(("FGSM", "PGD", "Worst")):
                    table[label][i] += " ⚠"
            notes.append(f"⚠ {method}: gradient-masking check(s) fired — {', '.join(flags[method])}; its adversarial numbers may overstate robustness.")
    return pd.DataFrame(table), notes


def _bold_best(cells: list[str], values: list[float], higher: bool) -> None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    if len(finite) < 2:
        return
    best = max(finite) if higher else min(finite)
    for i, v in enumerate(values):
        if v is not None and np.isfinite(v) and np.isclose(v, best):
            cells[i] = f"**{cells[i]}**"


def detail_table(summary: pd.DataFrame, suite: str, metric: str = "accuracy") -> pd.DataFrame | None:
    part = summary[(summary.suite == suite) & (summary.metric == metric)]
    if part.empty:
        return None
    methods = sorted(part.method.unique(), key=method_sort_key)
    cols = part[["test", "severity"]].drop_duplicates().sort_values(["test", "severity"]).itertuples(index=False)
    table: dict[str, list] = {"method": methods}
    for test, severity in cols:
        label = test if severity == 0 else f"{test} {severity:g}"
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


def diff_table(table: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame | None:
    eps = headline_eps(summary)
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
            q = diffs[(diffs.method == method) & (diffs.suite == suite) & (diffs.test == test) & np.isclose(diffs.severity, sev)]
            if not q.empty:
                r = q.iloc[0]
                label = test if suite == "clean" else f"{test} ε={sev:.3g}"
                row[label] = f"{r['diff'] * 100:+.1f} [{r.ci_low * 100:+.1f}, {r.ci_high * 100:+.1f}]"
        for suite in ("deformation", "corruption"):
            q = diffs[(diffs.method == method) & (diffs.suite == suite)]
            if not q.empty:
                row[f"{suite} (mean over tests)"] = f"{q['diff'].mean() * 100:+.1f}"
        rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def diagnostics_table(summary: pd.DataFrame) -> pd.DataFrame | None:
    """method x check: "ok" or "⚠ k/n seeds", with the measured quantity's mean."""
    flags = summary[(summary.suite == "diagnostics") & (summary.metric == "flag")]
    if flags.empty:
        return None
    values = summary[(summary.suite == "diagnostics") & (summary.metric == "value")]
    methods = sorted(flags.method.unique(), key=method_sort_key)
    checks = flags[["test", "severity"]].drop_duplicates().sort_values(["test", "severity"]).itertuples(index=False)
    table: dict[str, list] = {"method": methods}
    for test, severity in checks:
        label = test if severity == 0 else f"{test} (ε={severity:g})"
        cells = []
        for method in methods:
            r = _value(summary, method, "diagnostics", test, "flag", severity)
            v = _value(values, method, "diagnostics", test, "value", severity)
            fired = int(round(r["mean"] * r["seeds"])) if r is not None else 0
            detail = f" ({v['mean']:+.3f})" if v is not None else ""
            cells.append(("ok" if fired == 0 else f"⚠ {fired}/{int(r['seeds'])} seeds") + detail)
        table[label] = cells
    return pd.DataFrame(table)


def setup_lines(runs: RunSet, summary: pd.DataFrame, seconds: float | None) -> list[str]:
    metrics = runs.metrics
    configs = [c.get("train", {}) for c in runs.configs.values()]
    first = configs[0] if configs else {}
    seeds = sorted(metrics["seed"].unique())
    adv = summary[summary.suite == "adversarial"]
    attacks = sorted(t for t in adv.test.unique() if not t.startswith("worst-case"))
    # each attack with its radii, grouped: attacks run at the same radii share one entry
    radii_of: dict[str, list[str]] = {}
    for name in attacks:
        radii = ", ".join(f"{e:.4g}" for e in sorted(adv[adv.test == name].severity.unique()))
        radii_of.setdefault(radii, []).append(name)
    lines = [
        f"- **Data**: `{metrics['dataset'].iloc[0]}` (test examples per run: {int(summary['n'].max())})",
        f"- **Model**: `{metrics['arch'].iloc[0]}`; methods: {', '.join(sorted(metrics['method'].unique(), key=method_sort_key))}; seeds: {', '.join(map(str, seeds))}",
    ]
    if first:
        def value(key: str) -> str:  # every value the runs used, so mixed settings show
            return " / ".join(sorted({str(c.get(key)) for c in configs}))

        lines.append(
            f"- **Training**: {value('epochs')} epochs, batch {value('batch_size')}, SGD lr {value('lr')} "
            f"(schedule {value('schedule')}), weight decay {value('weight_decay')}, mix loss {value('mix_loss')}"
        )
        settings = _method_settings(runs)
        if settings:
            lines.append("- **Method settings**: " + "; ".join(f"{m}: {s}" for m, s in settings.items()))
    if attacks:
        groups = "; ".join(f"{', '.join(names)} at ε {radii}" for radii, names in radii_of.items())
        lines.append(f"- **Attacks**: {groups} (ε 0: unbounded attacks); the worst case at ε counts every attack at "
                     "every radius up to ε")
    lines.append(f"- **Software**: robustbench_mm {__version__}, {_versions()}, Python {platform.python_version()}")
    lines.append(f"- **Hardware**: {_hardware()}")
    if seconds is not None:
        lines.append(f"- **Time**: {seconds:.1f} s of training and evaluation in total")
    return lines


def _method_settings(runs: RunSet) -> dict[str, str]:
    """method -> its settings as the runs recorded them (every value used, when seeds differ)."""
    values: dict[str, dict[str, set[str]]] = {}
    for config in runs.configs.values():
        method = str(config.get("train", {}).get("method", ""))
        for key, value in (config.get("method") or {}).items():
            values.setdefault(method, {}).setdefault(key, set()).add(str(value))
    return {m: ", ".join(f"{k} {' / '.join(sorted(v))}" for k, v in values[m].items())
            for m in sorted(values, key=method_sort_key)}


def _versions() -> str:
    import torch
    import torchvision

    parts = [f"torch {torch.__version__}", f"torchvision {torchvision.__version__}"]
    try:
        from importlib.metadata import version

        parts.append(f"torchattacks {version('torchattacks')}")
    except Exception:  # pragma: no cover - torchattacks is a dependency
        pass
    return ", ".join(parts)


def _hardware() -> str:
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    text = f"{os.cpu_count()} CPU cores ({cpu})"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def build_document(runs: RunSet, table: pd.DataFrame, figures: list[Path], out_dir: Path, seconds: float | None) -> list[Block]:
    summary = table
    dataset = runs.metrics["dataset"].iloc[0]
    arch = runs.metrics["arch"].iloc[0]
    blocks = [Block("h1", f"Manifold Mixup robustness report — {dataset}, {arch}")]
    blocks.append(Block("h2", "Setup"))
    blocks.append(Block("p", "\n".join(setup_lines(runs, summary, seconds))))
    head, notes = headline(summary)
    blocks.append(Block("h2", "Headline"))
    blocks.append(Block("p", "Mean ± std over seeds; accuracy and ECE in percent; best value per column in bold. "
                             "The worst case is, per example, the worst over every L∞ attack run at that ε: the robust accuracy to quote."))
    blocks.append(Block("table", table=head))
    for note in notes:
        blocks.append(Block("p", note))
    diffs = diff_table(table, summary)
    if diffs is not None:
        blocks.append(Block("h3", "Difference to ERM (accuracy points, 95% paired-bootstrap CI over test examples, seeds pooled)"))
        blocks.append(Block("table", table=diffs))
    if figures:
        blocks.append(Block("h2", "Figures"))
        for path in figures:
            blocks.append(Block("img", path.stem.replace("_", " "), path=str(path.relative_to(out_dir))))
    blocks.append(Block("h2", "Gradient-masking diagnostics"))
    diag = diagnostics_table(summary)
    if diag is None:
        blocks.append(Block("p", "No adversarial evaluation was run, so no diagnostics."))
    else:
        blocks.append(Block("p", "Seeds on which each check fired, following AutoAttack's checks and Carlini et al. (2019), "
                                 "*On Evaluating Adversarial Robustness*. A fired check (⚠) means the adversarial numbers "
                                 "of that method may overstate its robustness."))
        blocks.append(Block("table", table=diag))
    blocks.append(Block("h2", "Detailed results"))
    for suite, metric, title in (
        ("adversarial", "accuracy", "Adversarial accuracy (%) by attack and ε"),
        ("deformation", "accuracy", "Novel deformations: accuracy (%) by family and severity (degrees / percent)"),
    ):
        detail = detail_table(summary, suite, metric)
        if detail is not None:
            blocks.append(Block("h3", title))
            blocks.append(Block("table", table=detail))
    corruption = corruption_table(summary)
    if corruption is not None:
        blocks.append(Block("h3", "Common corruptions: accuracy (%) per corruption, mean over severities "
                                  "(every severity is in report.csv)"))
        blocks.append(Block("table", table=corruption))
    cal = summary[(summary.suite == "calibration") & (summary.test == "clean")]
    if not cal.empty:
        methods = sorted(cal.method.unique(), key=method_sort_key)
        metrics = [m for m in ("accuracy", "ece", "ece-adaptive", "ece-classwise", "mce", "nll", "brier", "confidence",
                               "ece-ts", "nll-ts", "brier-ts", "temperature") if m in set(cal.metric)]
        rows = {"method": methods}
        for metric in metrics:
            cells, values = [], []
            for method in methods:
                r = _value(summary, method, "calibration", "clean", metric)
                values.append(np.nan if r is None else r["mean"])
                cells.append("–" if r is None else _fmt(r["mean"], r["std"], metric, int(r["seeds"])))
            direction = metric_info(metric).direction
            if direction != NEITHER and metric != "accuracy":
                _bold_best(cells, values, direction != LOWER)
            rows[metric] = cells
        blocks.append(Block("h3", "Calibration on clean test data (ECE/MCE in %, -ts = after temperature scaling)"))
        blocks.append(Block("table", table=pd.DataFrame(rows)))
    return blocks

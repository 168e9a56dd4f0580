"""Reports over many runs: pandas pivots of the results table, mean ± std over seeds, and the
difference to ERM with a paired-bootstrap 95% confidence interval over test examples.

``report.csv`` is tidy (one row per method/suite/test/severity/metric) and byte-identical
for identical inputs; ``report.md`` (and ``report.html``) read top-down as a document.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import __version__
from .config import read_toml
from .document import Block, to_html, to_markdown
from .errors import UserError
from .evaluation import read_metrics, read_per_example
from .storage import atomic_write_text, ensure_writable_dir, read_csv_table, require_numeric

METHOD_ORDER = ("erm", "mixup", "manifold-mixup")
KEYS = ["method", "suite", "test", "severity", "metric"]
LOWER_IS_BETTER = {"ece", "ece-adaptive", "ece-classwise", "mce", "nll", "brier", "flag", "mce-vs-erm", "relative-mce-vs-erm"}
BOOTSTRAP_SAMPLES = 1000


@dataclass
class RunSet:
    """Everything read back from a set of evaluated run directories."""

    metrics: pd.DataFrame
    per_example: dict[str, dict] = field(default_factory=dict)  # run name -> {(suite, test, sev): bool array}
    reliability: pd.DataFrame | None = None
    configs: dict[str, dict] = field(default_factory=dict)  # run name -> config.toml contents
    train_seconds: float = 0.0


def method_sort_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def collect(run_dirs: Sequence[str | Path]) -> RunSet:
    if not run_dirs:
        raise UserError("no run directories given to report")
    frames, per_example, bins, configs, seconds = [], {}, [], {}, 0.0
    for run_dir in map(Path, run_dirs):
        if not run_dir.is_dir():
            raise UserError(f"run directory not found: {run_dir}")
        df = read_metrics(run_dir)
        frames.append(df)
        per_example[run_dir.name] = read_per_example(run_dir)
        if (run_dir / "reliability.csv").exists():
            bins.append(_read_table(run_dir / "reliability.csv", ["bin", "count", "accuracy", "confidence"]))
        if (run_dir / "config.toml").exists():
            configs[run_dir.name] = read_toml(run_dir / "config.toml")
        if (run_dir / "train_log.csv").exists():
            seconds += float(_read_table(run_dir / "train_log.csv", ["seconds"])["seconds"].sum())
        if (run_dir / "eval.toml").exists():
            seconds += float(read_toml(run_dir / "eval.toml").get("run", {}).get("seconds", 0.0))
    metrics = pd.concat(frames, ignore_index=True)
    if metrics.empty:
        raise UserError("the given runs hold no metrics")
    datasets = sorted(metrics["dataset"].astype(str).unique())
    if len(datasets) > 1:
        raise UserError(f"cannot report over runs of different datasets: {', '.join(datasets)}")
    if metrics.duplicated(subset=["run", "suite", "test", "severity", "metric"]).any():
        raise UserError("two of the given run directories share a name (or a metrics.csv repeats a row); report each run once")
    pairs = metrics.drop_duplicates("run").groupby(["method", "seed"])["run"].apply(list)
    twice = pairs[pairs.map(len) > 1]
    if len(twice):  # two copies of one run would be averaged as two seeds
        (method, seed), runs = next(iter(twice.items()))
        raise UserError(f"runs {', '.join(runs)} are all {method} seed {seed}; report each (method, seed) once")
    adversarial = metrics[metrics["suite"] == "adversarial"]
    attacked = {run: frozenset() for run in metrics["run"].unique()}
    attacked.update({run: frozenset(zip(rows["test"], rows["severity"])) for run, rows in adversarial.groupby("run")})
    if len(set(attacked.values())) > 1:  # a worst case over different attack sets is not one quantity
        runs = sorted(attacked.items())
        (run_a, set_a), (run_b, set_b) = runs[0], next(item for item in runs if item[1] != runs[0][1])
        only = sorted(set_a ^ set_b)[0]
        raise UserError(f"runs {run_a} and {run_b} were attacked differently (e.g. {only[0]} at ε {only[1]:g} in only one); "
                        "evaluate them with the same settings")
    clean = metrics[(metrics["suite"] == "clean") & (metrics["metric"] == "accuracy")]
    if clean["n"].nunique() > 1:  # a mean over 360 and 50 test examples is not a result
        sizes = ", ".join(f"{r} ({int(n)})" for r, n in clean.set_index("run")["n"].items())
        raise UserError(f"the runs were evaluated on different numbers of test examples: {sizes}")
    reliability = pd.concat(bins, ignore_index=True) if bins else None
    return RunSet(metrics, per_example, reliability, configs, seconds)


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV the project wrote, checked for the columns we use (one clear error otherwise)."""
    table = read_csv_table(path, "a readable table")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)}")
    require_numeric(table, path, columns)
    return table


def summarize(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds for every (method, suite, test, severity, metric)."""
    grouped = metrics.groupby(KEYS, sort=False)["value"]
    summary = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    summary["std"] = summary["std"].fillna(0.0)
    summary["n"] = metrics.groupby(KEYS, sort=False)["n"].max().values
    summary.insert(0, "arch", metrics["arch"].iloc[0])
    summary.insert(0, "dataset", metrics["dataset"].iloc[0])
    return summary


def paired_bootstrap(
    correct_a: np.ndarray, correct_b: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """Accuracy difference a - b and its 95% CI, resampling test examples (seeds pooled).

    ``correct_*`` are (seeds, examples) boolean arrays over the same test examples; each
    example's score is its mean correctness over seeds, and the bootstrap resamples examples.
    """
    diff = correct_a.mean(axis=0) - correct_b.mean(axis=0)
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for start in range(0, samples, 100):  # chunks keep memory flat for 10k-example test sets
        idx = rng.integers(0, len(diff), size=(min(100, samples - start), len(diff)))
        means[start : start + len(idx)] = diff[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def differences_to_erm(runs: RunSet) -> pd.DataFrame:
    """Δ accuracy vs ERM with bootstrap CIs for every per-example test (needs an erm run)."""
    methods = runs.metrics.drop_duplicates("run").set_index("run")["method"]
    by_method: dict[str, list[str]] = {}
    for run, method in methods.items():
        by_method.setdefault(method, []).append(run)
    if "erm" not in by_method:
        return pd.DataFrame(columns=[*KEYS, "diff", "ci_low", "ci_high"])
    rows = []
    keys = sorted({k for run in by_method["erm"] for k in runs.per_example.get(run, {})})
    for method in sorted(by_method, key=method_sort_key):
        if method == "erm":
            continue
        for key in keys:
            a = [runs.per_example[r][key] for r in sorted(by_method[method]) if key in runs.per_example.get(r, {})]
            b = [runs.per_example[r][key] for r in sorted(by_method["erm"]) if key in runs.per_example.get(r, {})]
            if not a or not b or len({x.shape for x in a + b}) != 1:
                continue
            diff, low, high = paired_bootstrap(np.stack(a), np.stack(b))
            rows.append({"method": method, "suite": key[0], "test": key[1], "severity": key[2], "metric": "accuracy",
                         "diff": diff, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=[*KEYS, "diff", "ci_low", "ci_high"])


def corruption_errors(summary: pd.DataFrame) -> pd.DataFrame:
    """mCE and relative mCE of each method with our ERM model as the baseline.

    Hendrycks & Dietterich (2019), with ERM in AlexNet's place: for corruption c,
    CE_m(c) = Σ_s E_m(c, s) / Σ_s E_erm(c, s) and the relative CE_m(c) =
    Σ_s (E_m(c, s) - E_m(clean)) / Σ_s (E_erm(c, s) - E_erm(clean)), E = 1 - accuracy of the
    seed-mean; each is averaged over corruptions. Corruptions that cost ERM less than one
    accuracy point summed over severities are left out of the relative mean (its ratio would
    divide by ~0); ``n`` holds how many corruptions each mean covers.
    """
    acc = summary[(summary.suite == "corruption") & (summary.metric == "accuracy") & (summary.test != "mean")]
    clean = summary[(summary.suite == "clean") & (summary.metric == "accuracy")].set_index("method")["mean"]
    if acc.empty or "erm" not in set(acc.method) or "erm" not in clean.index:
        return pd.DataFrame(columns=summary.columns)
    errors = acc.assign(error=1 - acc["mean"]).groupby(["method", "test"])["error"].sum()
    counts = acc.groupby(["method", "test"])["severity"].count()
    rows = []
    for method in sorted(acc.method.unique(), key=method_sort_key):
        ce, rel = [], []
        for corruption in errors.loc["erm"].index:
            if (method, corruption) not in errors.index:
                continue
            base = errors.loc[("erm", corruption)]
            ce.append(errors.loc[(method, corruption)] / max(base, 1e-12))
            base_rel = base - counts.loc[("erm", corruption)] * (1 - clean["erm"])
            if base_rel >= 0.01 and method in clean.index:
                rel.append((errors.loc[(method, corruption)] - counts.loc[(method, corruption)] * (1 - clean[method])) / base_rel)
        for metric, values in (("mce-vs-erm", ce), ("relative-mce-vs-erm", rel)):
            if values:
                rows.append({"dataset": summary["dataset"].iloc[0], "arch": summary["arch"].iloc[0], "method": method,
                             "suite": "corruption", "test": "mean", "severity": 0.0, "metric": metric,
                             "mean": float(np.mean(values)), "std": 0.0, "seeds": int(summary[summary.method == method]["seeds"].max()),
                             "n": len(values)})
    return pd.DataFrame(rows, columns=summary.columns)


def report_table(runs: RunSet) -> pd.DataFrame:
    """The tidy report: summary statistics plus the difference to ERM where it exists."""
    summary = summarize(runs.metrics)
    extra = corruption_errors(summary)
    if not extra.empty:
        summary = pd.concat([summary, extra], ignore_index=True)
    diffs = differences_to_erm(runs)
    table = summary.merge(diffs, on=KEYS, how="left")
    table["_m"] = table["method"].map(lambda m: method_sort_key(m))
    table = table.sort_values(["_m", "suite", "test", "severity", "metric"], kind="stable").drop(columns="_m")
    return table.reset_index(drop=True)


def write_report_csv(table: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, table.to_csv(index=False, float_format="%.6g"))


# ---------------------------------------------------------------- the Markdown/HTML document


def _fmt(mean: float, std: float, metric: str, seeds: int) -> str:
    scale, digits = (100.0, 1) if metric in {"accuracy", "ece", "ece-adaptive", "ece-classwise", "mce", "ece-ts"} else (1.0, 3)
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if seeds > 1 else "")


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
        _bold_best(cells, values, metric not in LOWER_IS_BETTER)
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
        alphas = {c.get("method"): (c.get("alpha"), c.get("mix_layers")) for c in configs if c.get("alpha")}
        if alphas:
            lines.append("- **Mixing**: " + "; ".join(f"{m}: α={a}, layers {l}" for m, (a, l) in sorted(alphas.items())))
    if attacks:
        groups = "; ".join(f"{', '.join(names)} at ε {radii}" for radii, names in radii_of.items())
        lines.append(f"- **Attacks**: {groups} (ε 0: unbounded attacks); the worst case at ε counts every attack at "
                     "every radius up to ε")
    lines.append(f"- **Software**: robustbench_mm {__version__}, {_versions()}, Python {platform.python_version()}")
    lines.append(f"- **Hardware**: {_hardware()}")
    if seconds is not None:
        lines.append(f"- **Time**: {seconds:.1f} s of training and evaluation in total")
    return lines


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
            if metric not in ("confidence", "temperature", "accuracy"):
                _bold_best(cells, values, metric not in LOWER_IS_BETTER and not metric.startswith(("ece", "nll", "brier")))
            rows[metric] = cells
        blocks.append(Block("h3", "Calibration on clean test data (ECE/MCE in %, -ts = after temperature scaling)"))
        blocks.append(Block("table", table=pd.DataFrame(rows)))
    return blocks


def write_report(
    run_dirs: Sequence[str | Path], out_dir: str | Path, formats: Sequence[str] = ("md",), seconds: float | None = None, plots: bool = True
) -> pd.DataFrame:
    """Collect the runs and write report.csv, report.md (and report.html), plus figures."""
    runs = collect(run_dirs)
    out_dir = ensure_writable_dir(out_dir)
    table = report_table(runs)
    figures: list[Path] = []
    if plots:
        from .plots import render_all

        figures = render_all(runs.metrics, runs.reliability, out_dir, runs.metrics["dataset"].iloc[0], runs.metrics["arch"].iloc[0])
    write_report_csv(table, out_dir / "report.csv")
    blocks = build_document(runs, table, [Path(f) for f in figures], out_dir, seconds if seconds is not None else runs.train_seconds or None)
    if "md" in formats:
        atomic_write_text(out_dir / "report.md", to_markdown(blocks))
    if "html" in formats:
        title = f"robustbench_mm report — {runs.metrics['dataset'].iloc[0]}"
        atomic_write_text(out_dir / "report.html", to_html(blocks, out_dir, title))
    return table


def headline_markdown(run_dirs: Sequence[str | Path]) -> str:
    from .document import markdown_table

    runs = collect(run_dirs)
    head, notes = headline(report_table(runs))
    return "\n".join([markdown_table(head), *notes])

"""The report's Setup section: data, model, training and attack settings, software, hardware."""

from __future__ import annotations

import platform

import pandas as pd

from robustbench_mm import __version__
from robustbench_mm.methods import method_sort_key
from robustbench_mm.report.collect import RunSet


def setup_lines(runs: RunSet, summary: pd.DataFrame, seconds: float | None) -> list[str]:
    metrics = runs.metrics
    configs = [c.get("train", {}) for c in runs.configs.values()]
    first = configs[0] if configs else {}
    seeds = sorted(metrics["seed"].unique())
    adv = summary[summary.suite == "adversarial"]
    curve = sorted(t for t in adv.test.unique() if t in ("curve", "curve-l2"))  # from FMN + the worst case
    attacks = sorted(t for t in adv.test.unique() if not t.startswith("worst-case") and t not in curve)
    # each attack with its radii, grouped: attacks run at the same radii share one entry
    radii_of: dict[str, list[str]] = {}
    for name in attacks:
        show = runs.threat.show if runs.threat is not None and not name.endswith("l2") else (lambda e: f"{e:.4g}")
        radii = ", ".join(show(e) for e in sorted(adv[adv.test == name].severity.unique()))
        radii_of.setdefault(radii, []).append(name)
    lines = [
        f"- **Data**: `{metrics['dataset'].iloc[0]}` ({_examples(runs, summary)})",
        f"- **Model**: `{metrics['arch'].iloc[0]}`; "
        f"methods: {', '.join(sorted(metrics['method'].unique(), key=method_sort_key))}; "
        f"seeds: {', '.join(map(str, seeds))}",
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
    if runs.threat is not None and attacks:
        t = runs.threat
        lines.append(
            f"- **Threat model**: {t.name}: L∞ {', '.join(map(t.show, t.linf))}, L2 "
            f"{', '.join(f'{e:g}' for e in t.l2)}; the headline quotes ε = {t.show(t.headline)}"
        )
    if attacks:
        groups = "; ".join(f"{', '.join(names)} at ε {radii}" for radii, names in radii_of.items())
        lines.append(
            f"- **Attacks**: {groups} (ε 0: unbounded attacks); the worst case at ε counts every attack at "
            "every radius up to ε and, with the default attacks, APGD-CE and APGD-T (100 iterations, 9 targets) "
            "run at every radius on the examples still standing"
            + ("; FMN (minimum norm) for the robustness curve" if curve else "")
        )
        if any(name.startswith("autoattack") for name in attacks):
            from robustbench_mm.attacks.standard import SETTINGS  # the attacks' own words, only when needed

            lines.append(f"- **autoattack**: {SETTINGS}")
    lines.append(f"- **Software**: robustbench_mm {__version__}, {_versions()}, Python {platform.python_version()}")
    lines.append(f"- **Hardware**: {_hardware()}")
    if seconds is not None:
        lines.append(f"- **Time**: {seconds:.1f} s of training and evaluation in total")
    return lines


def _examples(runs: RunSet, summary: pd.DataFrame) -> str:
    n = int(summary["n"].max())
    total = int(runs.subset.get("total", n) or n)
    if total > n:
        return (
            f"{n} of the {total} test examples per run, the same stratified subset for every run; the "
            "confidence intervals are over these"
        )
    return f"test examples per run: {n}"


def _method_settings(runs: RunSet) -> dict[str, str]:
    """method -> its settings as the runs recorded them (every value used, when seeds differ)."""
    values: dict[str, dict[str, set[str]]] = {}
    for config in runs.configs.values():
        method = str(config.get("train", {}).get("method", ""))
        for key, value in (config.get("method") or {}).items():
            values.setdefault(method, {}).setdefault(key, set()).add(str(value))
    return {
        m: ", ".join(f"{k} {' / '.join(sorted(v))}" for k, v in values[m].items())
        for m in sorted(values, key=method_sort_key)
    }


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

"""A run's evaluation on disk: its files, written and read as one unit.

``<run>/eval`` is a link to the folder of the current generation (see :mod:`.publish`):

```
<run>/eval/metrics.csv        rows of the one results schema
<run>/eval/per_example.npz    per-example correctness of every accuracy row (for paired CIs)
<run>/eval/reliability.csv    the clean reliability bins (when calibration ran)
<run>/eval/evaluation.toml    which test examples, which model, which settings produced it
```

:func:`read` resolves the link once, so the four files always come from one generation. Run
directories of the first releases kept metrics.csv and its companions at the top level; they
are read from there.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.files import read_csv_table, require_numeric
from robustbench_mm.core.results import COLUMNS
from robustbench_mm.core.untrusted import clip_path, plain
from robustbench_mm.settings import read_toml, to_toml
from robustbench_mm.store import schemas
from robustbench_mm.store.publish import current_generation, publish_generation

LINK = "eval"
METRICS, PER_EXAMPLE, RELIABILITY, RECORD = "metrics.csv", "per_example.npz", "reliability.csv", "evaluation.toml"
Key = tuple[str, str, float]  # (suite, test, severity) of a per-example result


@dataclass
class StoredEvaluation:
    """One generation of a run's evaluation, as read back."""

    metrics: pd.DataFrame
    per_example: dict[Key, np.ndarray] = field(default_factory=dict)
    reliability: pd.DataFrame | None = None
    record: dict[str, Any] = field(default_factory=dict)  # evaluation.toml
    folder: Path | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # further tables a suite keeps (spectra)


def folder(run: Path) -> Path | None:
    """The folder holding the run's current evaluation (None: never evaluated)."""
    current = current_generation(run, LINK)
    if current is not None:
        return current
    return run if (run / METRICS).exists() else None  # the first releases' layout


def read(run: Path, expect: dict[str, Any] | None = None, digest: str | None = None) -> StoredEvaluation | None:
    """The run's current evaluation, every file checked against its schema (:mod:`.schemas`);
    ``expect``: the run's dataset, arch, method and seed (config.toml); ``digest``: its model.pt's sha256."""
    where = folder(run)
    if where is None:
        return None
    for path in [where, *(where / name for name in (METRICS, PER_EXAMPLE, RELIABILITY, RECORD)), *where.glob("*.csv")]:
        _inside(run, path)
    record_path = where / RECORD
    metrics = _metrics(where / METRICS, expect)
    record = read_toml(record_path) if record_path.exists() else {}
    schemas.check_record(record, record_path)
    schemas.check_model_hash(record, record_path, digest)
    per_example = _per_example(where / PER_EXAMPLE)
    if (where / PER_EXAMPLE).exists():
        subset_n = (record.get("subset") or {}).get("n")
        schemas.check_per_example(per_example, where / PER_EXAMPLE, metrics, subset_n)
    reliability = _reliability(where / RELIABILITY)
    if reliability is not None:
        schemas.check_reliability(reliability, where / RELIABILITY, metrics)
    tables = {}
    for p in sorted(where.glob("*.csv")) if where != run else []:
        if p.name not in (METRICS, RELIABILITY):
            tables[p.stem] = read_csv_table(p, "a readable table")
            schemas.check_table(p.stem, tables[p.stem], p, metrics)
    return StoredEvaluation(metrics, per_example, reliability, record, where, tables)


def _inside(run: Path, path: Path) -> None:
    """Links inside a run directory never lead outside it (a copied run is read as it is)."""
    real, base = os.path.realpath(path), os.path.realpath(run)
    if os.path.commonpath([real, base]) != base:
        raise UserError(f"{clip_path(path)} leads outside the run directory {clip_path(run)}; move it away")


def write(
    run: Path,
    metrics: pd.DataFrame,
    per_example: dict[Key, np.ndarray],
    reliability: pd.DataFrame | None,
    record: dict[str, Any],
    tables: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Publish a complete evaluation as the run's new generation."""
    files = {METRICS: metrics[COLUMNS].to_csv(index=False, float_format="%.6g").encode()}
    for name, table in (tables or {}).items():
        if not name.replace("-", "").isalnum() or f"{name}.csv" in (METRICS, RELIABILITY):
            raise ValueError(f"a suite's table name must be a plain word, got {name!r}")  # a suite's bug
        files[f"{name}.csv"] = table.to_csv(index=False, float_format="%.6g").encode()
    buffer = io.BytesIO()
    arrays = {f"{s}|{t}|{sev:g}": _per_example_array(v) for (s, t, sev), v in per_example.items()}
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    files[PER_EXAMPLE] = buffer.getvalue()
    if reliability is not None:
        files[RELIABILITY] = reliability.to_csv(index=False, float_format="%.6g").encode()
    files[RECORD] = "\n".join(to_toml(values, table) for table, values in record.items()).encode()
    return publish_generation(run, LINK, files)


def _per_example_array(values: np.ndarray) -> np.ndarray:
    """Correctness as bool; a per-example quantity (a confidence) as float32."""
    values = np.asarray(values)
    return values.astype(np.float32) if values.dtype.kind == "f" else values.astype(bool)


def _metrics(path: Path, expect: dict[str, Any] | None = None) -> pd.DataFrame:
    if not path.exists():
        raise UserError(f"{clip_path(path)} is missing: the evaluation is incomplete; evaluate the run again")
    df = read_csv_table(path, "a valid metrics file")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{clip_path(path)} lacks columns: {', '.join(missing)}")
    require_numeric(df, path, ["seed", "severity", "value", "n"])
    incomplete = df[[c for c in COLUMNS if c != "value"]].isna().any(axis=1)
    if incomplete.any():  # e.g. a file cut short by a full disk or a copy interrupted
        raise UserError(
            f"{clip_path(path)} is not a valid metrics file (line {int(incomplete.idxmax()) + 2} is incomplete)"
        )
    schemas.check_metrics(df, path, expect)
    return df


def _per_example(path: Path) -> dict[Key, np.ndarray]:
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            out = {}
            for key in archive.files:
                suite, test, severity = key.split("|")
                out[(suite, test, float(severity))] = archive[key]
            return out
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{clip_path(path)} is unreadable ({plain(detail, 120)})") from None


def _reliability(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    table = read_csv_table(path, "a readable table")
    columns = ["bin", "count", "accuracy", "confidence"]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{clip_path(path)} lacks column(s) {', '.join(missing)}")
    require_numeric(table, path, columns)
    return table

"""One schema per evaluation file the bench reads back, checked in one place before anything uses it.

A run's evaluation is four to five files (metrics.csv, per_example.npz, reliability.csv,
spectra.csv, evaluation.toml) that a hand edit, a crafted copy or a damaged disk can change
independently. Each is checked here for what its readers assume: column types, integer counts,
values inside the range the metric registry (:mod:`robustbench_mm.core.metrics`) gives, arrays of
one dimension whose length is the ``n`` of their metrics row, and agreement with the run it
belongs to (dataset, architecture, method and seed of config.toml; the model's sha256). A file
that fails gets one UserError naming the file and the field; nothing downstream ever sees it.

The weights of model.pt and checkpoint.pt (dense, finite tensors) are checked here too; their
metadata and training state in :mod:`.checkpoint`, config.toml's settings in
:mod:`robustbench_mm.settings`, report.csv baselines theirs in :mod:`robustbench_mm.report.gate`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.metrics import NEITHER, metric
from robustbench_mm.core.results import DISTANCE_ARRAYS
from robustbench_mm.core.untrusted import Invalid, clip, clip_path, integer, listof, number, optional, plain, text

IDENTITY = ("dataset", "arch", "method", "seed")  # what a run's config.toml fixes for its evaluation
TEXT_COLUMNS = ("run", "dataset", "arch", "method", "suite", "test", "metric")
SEED_MAX = 2**32 - 1
COUNT_MAX = 10**9  # test examples per row: far above any dataset the bench reads
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _fail(path: Path, detail: str) -> UserError:
    return UserError(f"{clip_path(path)}: {detail}")


def _show(value: Any) -> str:
    """A number as a plain number ('5', 'nan', '-1'), never numpy's repr; anything else clipped."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return f"{float(value):g}"
    return clip(value, 40)


def _integers(table: pd.DataFrame, column: str, path: Path, low: int, high: int) -> None:
    """Every value of ``column`` a whole number in [low, high]."""
    values = table[column]
    if values.empty:
        return
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = ~(numbers.map(lambda v: math.isfinite(v) and v == int(v) and low <= v <= high))
    if bad.any():
        first = values[bad].iloc[0]
        raise _fail(path, f"column {column!r} must hold whole numbers in [{low}, {high}], got {_show(first)}")


# ------------------------------------------------------------------------------ model.pt, checkpoint.pt


def check_state_dict(state: Any, path: Path, field: str) -> dict[str, torch.Tensor]:
    """A dict of named dense tensors, bounded in count (not checked against any model here)."""
    if not isinstance(state, dict) or not 1 <= len(state) <= 100_000:
        raise UserError(f"{clip_path(path)}: {field} must be a dict of named tensors, got {clip(state, 60)}")
    name = text(1000, printable=False)
    for key, value in state.items():
        try:
            name(key)
        except Invalid:
            raise UserError(
                f"{clip_path(path)}: {field} has a key that is not a tensor name: {clip(key, 60)}"
            ) from None
        if not isinstance(value, torch.Tensor):
            raise UserError(f"{clip_path(path)}: {field}[{clip(key, 60)}] must be a tensor, got {clip(value, 60)}")
        if value.layout != torch.strided:
            raise UserError(
                f"{clip_path(path)}: {field}[{clip(key, 60)}] must be a dense tensor, got a {_layout(value)} one"
            )
        _check_finite(value, path, f"{field}[{clip(key, 60)}]")
    return state


def _layout(tensor: torch.Tensor) -> str:
    return str(tensor.layout).removeprefix("torch.").replace("_", " ")[:20]


def _check_finite(value: torch.Tensor, path: Path, field: str) -> None:
    """Weights and optimizer state are finite numbers: NaN or inf there is a damaged file (training
    stops before it would save one), which must not be blamed on the learning rate later."""
    if value.is_floating_point() and value.device.type != "meta" and not bool(torch.isfinite(value).all()):
        raise UserError(
            f"{clip_path(path)}: {field} holds NaN or infinite values: the file is damaged; "
            "delete it (or train with --force) to start over"
        )


def first_non_finite(state: dict) -> Any:
    """The key of an optimizer's per-parameter state holding NaN or inf (None: all finite)."""
    for param, values in list(state.items())[:100_000]:
        for value in values.values() if isinstance(values, dict) else ():
            if isinstance(value, torch.Tensor) and value.layout == torch.strided and value.is_floating_point():
                if not bool(torch.isfinite(value).all()):
                    return param
    return None


# ------------------------------------------------------------------------------ metrics.csv


def check_metrics(table: pd.DataFrame, path: Path, expect: dict[str, Any] | None = None) -> None:
    """metrics.csv: one run's rows, counts whole, every value inside its metric's range."""
    if table.empty:
        return
    for column in TEXT_COLUMNS:
        table[column] = table[column].astype(str)
    _integers(table, "seed", path, 0, SEED_MAX)
    _integers(table, "n", path, 0, COUNT_MAX)
    for column in ("run", *IDENTITY):
        values = table[column].astype(str).unique()
        if len(values) > 1:
            raise _fail(path, f"column {column!r} holds {len(values)} values; a metrics file is one run's")
    for name, rows in table.groupby("metric", sort=True):
        try:
            info = metric(str(name))
        except UserError:
            raise _fail(path, f"column 'metric' holds an unknown metric {plain(str(name), 40)}") from None
        values = rows["value"].astype(float)
        # NaN is "not measured": only a row over no examples or a descriptive quantity may hold it
        unmeasured = values.isna() & (rows["n"] > 0) & (info.direction != NEITHER)
        outside = ~values.map(info.valid) | unmeasured
        if outside.any():
            r = rows[outside].iloc[0]
            raise _fail(
                path,
                f"value {_show(r['value'])} of {plain(str(name), 40)} ({plain(r['suite'], 30)}/{plain(r['test'], 30)}) "
                f"is outside its range [{info.low:g}, {info.high:g}]",
            )
    if table.duplicated(subset=["suite", "test", "severity", "metric"]).any():
        first = table[table.duplicated(subset=["suite", "test", "severity", "metric"])].iloc[0]
        raise _fail(path, f"row {plain(first['suite'], 30)}/{plain(first['test'], 30)}/{first['metric']} repeats")
    _check_identity(table, path, expect)


_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+/-]{0,119}")  # a method's name or a saved model's label


def _check_identity(table: pd.DataFrame, path: Path, expect: dict[str, Any] | None) -> None:
    """The rows' dataset, arch, method and seed are the run's (config.toml), and the method exists."""
    from robustbench_mm.methods import METHODS

    method = str(table["method"].iloc[0])
    if expect is None:  # no config.toml: a saved model's evaluation (mmbench evaluate --model), named by its label
        if not _LABEL.fullmatch(method):
            raise _fail(path, f"column 'method' is not a plain label: {plain(method, 40)}")
    elif method not in METHODS:
        raise _fail(
            path, f"column 'method' names an unknown method {plain(method, 40)}; valid: {', '.join(METHODS.names())}"
        )
    for column in IDENTITY:
        if expect is None or expect.get(column) is None:
            continue
        found, wanted = table[column].iloc[0], expect[column]
        if str(found) != str(wanted):
            raise _fail(
                path,
                f"column {column!r} says {plain(str(found), 60)} "
                f"but the run's config.toml says {plain(str(wanted), 60)}",
            )


# ------------------------------------------------------------------------------ per_example.npz


def check_per_example(
    arrays: dict[tuple[str, str, float], np.ndarray], path: Path, metrics: pd.DataFrame, subset_n: int | None
) -> None:
    """per_example.npz: 1-D arrays of correctness (bool), a probability (float in [0, 1]) or, for
    the tests in ``DISTANCE_ARRAYS``, a distance (float >= 0, +inf allowed), one entry per test
    example of the metrics row they belong to."""
    counts = {
        (str(s), str(t), float(v)): int(n)
        for s, t, v, n in metrics[["suite", "test", "severity", "n"]].itertuples(index=False, name=None)
    }
    suites = set(metrics["suite"].astype(str))
    subset_n = subset_n if isinstance(subset_n, int) else None  # its type is check_record's to refuse
    for key, values in arrays.items():
        name = "|".join(map(str, key[:2])) + f"|{key[2]:g}"
        where = f"array {plain(name, 60)}"
        if math.isnan(key[2]):
            raise _fail(path, f"{where} has no severity")
        if not isinstance(values, np.ndarray) or values.ndim != 1 or values.size == 0:
            shape = getattr(values, "shape", ())
            raise _fail(path, f"{where} must be a non-empty 1-D array, got shape {tuple(shape)[:4]}")
        if values.dtype.kind == "f" and str(key[1]) in DISTANCE_ARRAYS:
            if not bool(np.all(values >= 0)):  # NaN fails too; +inf: nothing found
                raise _fail(path, f"{where} must hold distances >= 0")
        elif values.dtype.kind == "f":
            if not bool(np.all((values >= 0) & (values <= 1))):
                raise _fail(path, f"{where} must hold probabilities in [0, 1]")
        elif values.dtype.kind != "b":
            raise _fail(path, f"{where} must hold true/false values, got {plain(str(values.dtype), 20)}")
        if key not in counts and key[0] not in suites:
            raise _fail(path, f"{where} belongs to no row of metrics.csv")
        for expected in (counts.get(key), subset_n):  # its row's n, and evaluation.toml's test examples
            if expected is not None and len(values) != expected:
                raise _fail(path, f"{where} has {len(values)} entries for {expected} test examples")
    clean = ("clean", "clean", 0.0)
    if clean in counts and clean not in arrays:
        raise _fail(path, "the clean accuracy's array clean|clean|0 is missing")


# ------------------------------------------------------------------------------ reliability.csv, spectra.csv


def check_reliability(table: pd.DataFrame, path: Path, metrics: pd.DataFrame) -> None:
    """reliability.csv: bins numbered once each, whole counts, accuracy and confidence in [0, 1]
    (empty only in an empty bin), the run's method and seed."""
    if table.empty:
        raise _fail(path, "holds no bins")
    _integers(table, "bin", path, 0, 10_000)
    _integers(table, "count", path, 0, COUNT_MAX)
    if table["bin"].duplicated().any():
        raise _fail(path, f"bin {_show(table['bin'][table['bin'].duplicated()].iloc[0])} repeats")
    for column in ("accuracy", "confidence", *[c for c in ("lower", "upper") if c in table.columns]):
        values = pd.to_numeric(table[column], errors="coerce").astype(float)
        bad = ~values.map(lambda v: 0 <= v <= 1) & ~(values.isna() & (table["count"] == 0))
        if bad.any():
            raise _fail(path, f"column {column!r} must hold numbers in [0, 1], got {_show(values[bad].iloc[0])}")
    _same_run(table, path, metrics)


def check_table(name: str, table: pd.DataFrame, path: Path, metrics: pd.DataFrame) -> None:
    """A suite's further table: spectra.csv (layer, index from 1, a finite value >= 0); any table
    of the run's method and seed."""
    if name == "spectra":
        missing = [c for c in ("layer", "index", "value") if c not in table.columns]
        if missing:
            raise _fail(path, f"lacks column(s) {', '.join(missing)}")
        _integers(table, "index", path, 1, COUNT_MAX)
        values = pd.to_numeric(table["value"], errors="coerce").astype(float)
        bad = ~values.map(lambda v: math.isfinite(v) and v >= 0)
        if bad.any():
            raise _fail(path, f"column 'value' must hold finite numbers >= 0, got {_show(table['value'][bad].iloc[0])}")
    _same_run(table, path, metrics)


def _name(value: Any) -> str:
    """A cell as text: a whole number read as a float ('0.0' where a column also holds an empty cell)
    as the integer it is."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
        return str(int(value))
    return str(value)


def _same_run(table: pd.DataFrame, path: Path, metrics: pd.DataFrame) -> None:
    for column in ("method", "seed"):
        if column in table.columns and not metrics.empty:
            found = set(table[column].map(_name))
            wanted = _name(metrics[column].iloc[0])
            if found != {wanted}:
                shown = plain(", ".join(sorted(found)), 60)
                raise _fail(path, f"column {column!r} says {shown} but metrics.csv says {plain(wanted, 60)}")


# ------------------------------------------------------------------------------ evaluation.toml

_TABLES = {
    "subset": {"n": integer(0, COUNT_MAX), "total": integer(0, COUNT_MAX), "indices": text(64)},
    "model": {"sha256": text(64)},
    "history": {"settings": listof(text(64), 100_000, 0, "settings digests"), "version": text(64)},
    "threat": {
        "name": text(200),
        "linf": listof(number(0, 1e6), 64, 0, "radii"),
        "l2": listof(number(0, 1e6), 64, 0, "radii"),
        "headline": number(0, 1e6),
        "levels": optional(integer(1, 65_535)),
    },
}


def check_record(record: Any, path: Path) -> None:
    """evaluation.toml: the tables the bench reads, each field of its type and range."""
    if not isinstance(record, dict):
        raise _fail(path, "is not a table")
    for table, fields in _TABLES.items():
        values = record.get(table)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise _fail(path, f"[{table}] must be a table")
        for key, check in fields.items():
            if key not in values:
                continue
            try:
                check(values[key])
            except Invalid as exc:
                raise _fail(path, f"[{table}] {exc.describe(key)}") from None
    subset = record.get("subset") or {}
    if isinstance(subset.get("n"), int) and isinstance(subset.get("total"), int) and subset["n"] > subset["total"]:
        raise _fail(path, f"[subset] n = {subset['n']} exceeds total = {subset['total']}")
    sha = (record.get("model") or {}).get("sha256")
    if sha is not None and not _SHA256.fullmatch(sha):
        raise _fail(path, f"[model] sha256 must be 64 hexadecimal digits, got {clip(sha, 40)}")
    seconds = record.get("seconds")
    if seconds is not None:
        if not isinstance(seconds, dict):
            raise _fail(path, "[seconds] must be a table")
        for key, value in seconds.items():
            try:
                number(0, 1e9)(value)
            except Invalid as exc:
                raise _fail(path, f"[seconds] {exc.describe(plain(key, 40))}") from None
    for table in ("settings",):
        if table in record and not isinstance(record[table], dict):
            raise _fail(path, f"[{table}] must be a table")


def check_model_hash(record: dict[str, Any], path: Path, digest: str | None) -> None:
    """The evaluation is of the run's model.pt as it is now (identity by content, not by folder)."""
    sha = (record.get("model") or {}).get("sha256")
    if digest is not None and sha is not None and sha != digest:
        raise _fail(
            path,
            "[model] sha256 is not the sha256 of the run's model.pt (the model changed after this evaluation); "
            "evaluate the run again",
        )

"""The run directory: the one place that knows its layout, and reads and writes its files.

```
<run>/config.toml        [train] the resolved TrainConfig, [method] the method's settings, [run] facts
<run>/checkpoint.pt      everything a resume needs (rewritten atomically after every epoch)
<run>/train_log.csv      one row per finished epoch
<run>/model.pt           the trained model (state dict + metadata), written last
<run>/metrics.csv        the evaluation: rows of the one results schema
<run>/per_example.npz    per-example correctness of every accuracy row (for paired CIs)
<run>/reliability.csv    the clean reliability bins
```

Training, evaluation, the report and ``mmbench run`` ask this module for paths and contents;
none of them spells a file name.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import UserError
from .untrusted import clip
from .results import COLUMNS
from .settings import TrainConfig, from_table, read_toml, to_table, to_toml
from .storage import atomic_torch_save, atomic_write_bytes, atomic_write_text, ensure_writable_dir, read_csv_table, \
    require_numeric, safe_torch_load

CONFIG, CHECKPOINT, MODEL, TRAIN_LOG = "config.toml", "checkpoint.pt", "model.pt", "train_log.csv"
METRICS, PER_EXAMPLE, RELIABILITY = "metrics.csv", "per_example.npz", "reliability.csv"
RUN_FILES = (CONFIG, CHECKPOINT, MODEL, TRAIN_LOG, METRICS, PER_EXAMPLE, RELIABILITY)
REPLACED = ".replaced"  # --force keeps the old run here until the new one is complete
# config.toml files of the first releases kept the method's settings in [train]
_OLD_METHOD_KEYS = ("alpha", "mix_layers", "pairing")
Key = tuple[str, str, float]  # (suite, test, severity) of a per-example result


class RunDir:
    """A run directory at ``path`` (it need not exist yet)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, out_dir: str | Path, cfg: TrainConfig) -> "RunDir":
        """Where a resolved config's run lives: ``out_dir/<dataset>-<arch>-<method>-s<seed>``."""
        return cls(Path(out_dir) / cfg.run_name)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def is_trained(self) -> bool:
        return self.file(MODEL).exists()

    # ------------------------------------------------------------------ settings

    def write_config(self, cfg: TrainConfig, facts: dict[str, Any]) -> None:
        text = to_toml(to_table(cfg), "train")
        if cfg.method_options:
            text += "\n" + to_toml(cfg.method_options, "method")
        text += "\n" + to_toml(facts, "run")
        atomic_write_text(self.file(CONFIG), text)

    def read_toml(self) -> dict[str, Any]:
        return read_toml(self.file(CONFIG))

    def read_config(self) -> TrainConfig:
        """The resolved TrainConfig of this run (one-line UserError if missing or malformed)."""
        data = self.read_toml()
        train = dict(data.get("train") or {})
        method = dict(data.get("method") or {})
        for key in _OLD_METHOD_KEYS:  # an older layout: move the method's settings to their table
            if key in train:
                method.setdefault(key, train.pop(key))
        train.pop("out_dir", None)
        where = f"{self.file(CONFIG)} [train]"
        if not train:
            raise UserError(f"config file {self.file(CONFIG)} has no [train] table")
        cfg = from_table(TrainConfig, train, where)
        if not all(isinstance(k, str) for k in method):
            raise UserError(f"{self.file(CONFIG)} [method] is malformed")
        cfg.method_options = {k: v for k, v in method.items() if v is not None}
        return cfg

    def facts(self) -> dict[str, Any]:
        """The [run] table: what training found out (image counts, the holdout's seed, ...)."""
        run = self.read_toml().get("run") or {}
        return run if isinstance(run, dict) else {}

    # ------------------------------------------------------------------ training

    def prepare(self, force: bool, resume: bool, say: Callable[[str], None] = lambda s: None) -> None:
        """Refuse to overwrite an existing run unless --force (or --resume).

        --force touches only our own files and loses nothing if the new run is interrupted: the
        old files move to ``<run>/.replaced/`` and are deleted once the new model.pt is written.
        (If ``.replaced`` already exists, an earlier --force run was interrupted: it holds the last
        complete run and stays, and the interrupted run's files are removed.)
        """
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"run directory {self.path} exists and is not a directory")
        existing = [name for name in RUN_FILES if self.file(name).exists()]
        if existing and not (force or resume):
            raise UserError(f"run directory {self.path} already exists; pass --force to replace it or --resume to continue it")
        ensure_writable_dir(self.path)
        if force and not resume and existing:
            backup = self.file(REPLACED)
            keep = not backup.exists()
            backup.mkdir(exist_ok=True)
            for name in existing:
                path = self.file(name)
                if keep:
                    path.replace(backup / name)
                else:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            say(f"the replaced run is kept in {backup} until this one finishes")

    def drop_replaced(self) -> None:
        shutil.rmtree(self.file(REPLACED), ignore_errors=True)

    def read_checkpoint(self) -> Any:
        return safe_torch_load(self.file(CHECKPOINT))

    def write_checkpoint(self, payload: dict[str, Any]) -> None:
        atomic_torch_save(payload, self.file(CHECKPOINT))

    def write_train_log(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_text(self.file(TRAIN_LOG), pd.DataFrame(rows).to_csv(index=False))

    def read_train_log(self) -> pd.DataFrame | None:
        path = self.file(TRAIN_LOG)
        return read_table(path, ["epoch", "loss", "seconds"]) if path.exists() else None

    def save_model(self, model: Any, meta: dict[str, Any]) -> None:
        from .checkpoint import save_model

        save_model(self.file(MODEL), model, meta)

    def load_model(self, device: Any = "cpu", classes: list[str] | None = None) -> tuple[Any, dict[str, Any]]:
        """The trained model and its metadata, checked against config.toml (and the data's classes)."""
        from .checkpoint import load_model

        cfg = self.trained_config()
        return load_model(self.file(MODEL), device, expect_arch=cfg.arch, expect_dataset=cfg.dataset,
                          expect_classes=classes)

    def trained_config(self) -> TrainConfig:
        """The config of a finished run (one-line UserError when there is nothing to evaluate)."""
        if not self.path.is_dir():
            raise UserError(f"run directory not found: {self.path}")
        if not self.is_trained:
            raise UserError(f"{self.path} has no model.pt (is training finished? resume it with mmbench train --resume)")
        return self.read_config()

    # ------------------------------------------------------------------ evaluation

    def write_evaluation(self, metrics: pd.DataFrame, per_example: dict[Key, np.ndarray],
                         reliability: pd.DataFrame | None) -> None:
        atomic_write_text(self.file(METRICS), metrics[COLUMNS].to_csv(index=False, float_format="%.6g"))
        buffer = io.BytesIO()
        arrays = {f"{s}|{t}|{sev:g}": np.asarray(v, dtype=bool) for (s, t, sev), v in per_example.items()}
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(self.file(PER_EXAMPLE), buffer.getvalue())
        if reliability is not None:
            atomic_write_text(self.file(RELIABILITY), reliability.to_csv(index=False, float_format="%.6g"))
        else:  # an evaluation without calibration: the old bins no longer describe metrics.csv
            self.file(RELIABILITY).unlink(missing_ok=True)

    def read_metrics(self) -> pd.DataFrame:
        path = self.file(METRICS)
        if not path.exists():
            raise UserError(f"{self.path} has no metrics.csv; run mmbench evaluate {self.path} first")
        df = read_csv_table(path, "a valid metrics file")
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise UserError(f"{path} lacks columns: {', '.join(missing)}")
        require_numeric(df, path, ["seed", "severity", "value", "n"])
        incomplete = df[[c for c in COLUMNS if c != "value"]].isna().any(axis=1)
        if incomplete.any():  # e.g. a file cut short by a full disk or a copy interrupted
            raise UserError(f"{path} is not a valid metrics file (line {int(incomplete.idxmax()) + 2} is incomplete)")
        return df

    def read_per_example(self) -> dict[Key, np.ndarray]:
        path = self.file(PER_EXAMPLE)
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
            raise UserError(f"{path} is unreadable ({clip(detail, 120)})") from None

    def read_reliability(self) -> pd.DataFrame | None:
        path = self.file(RELIABILITY)
        return read_table(path, ["bin", "count", "accuracy", "confidence"]) if path.exists() else None


def read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV the project wrote, checked for the columns we use (one clear error otherwise)."""
    table = read_csv_table(path, "a readable table")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)}")
    require_numeric(table, path, columns)
    return table

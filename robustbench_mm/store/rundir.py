"""The run directory: the one place that knows its layout, and reads and writes its files.

```
<run>/config.toml        [train] the resolved TrainConfig, [method] the method's settings, [run] facts
<run>/checkpoint.pt      the state a resume needs (rewritten atomically after every epoch)
<run>/train_log.csv      one row per finished epoch
<run>/model.pt           the trained model: weights and what builds and checks them, written last
<run>/eval/              the evaluation, published as one unit (see :mod:`.evalstore`)
<run>/.lock              held by the one command working on the run
```

Training, evaluation, the report and ``mmbench run`` ask this module for paths and contents;
none of them spells a file name. config.toml is the one copy of the run's settings: neither
checkpoint.pt nor model.pt repeats them (see :mod:`.checkpoint`), and whoever needs a setting
reads it here (:meth:`RunDir.read_config`). Every command that writes holds the run's lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.files import (
    LOCK_NAME,
    atomic_torch_save,
    atomic_write_text,
    ensure_writable_dir,
    read_csv_table,
    remove_stale_temps,
    require_numeric,
    run_lock,
    safe_torch_load,
)
from robustbench_mm.core.untrusted import clip_path
from robustbench_mm.settings import TrainConfig, differences, from_table, read_toml, to_table, to_toml
from robustbench_mm.store import evalstore

CONFIG, CHECKPOINT, MODEL, TRAIN_LOG = "config.toml", "checkpoint.pt", "model.pt", "train_log.csv"
# the first releases' evaluation files, at the top of the run directory
OLD_EVALUATION = (evalstore.METRICS, evalstore.PER_EXAMPLE, evalstore.RELIABILITY)
RUN_FILES = (CONFIG, CHECKPOINT, MODEL, TRAIN_LOG, evalstore.LINK, *OLD_EVALUATION)
REPLACED = ".replaced"  # --force keeps the old run here until the new one is complete
# config.toml files of the first releases kept the method's settings in [train]
_OLD_METHOD_KEYS = ("alpha", "mix_layers", "pairing")


class RunDir:
    """A run directory at ``path`` (it need not exist yet)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, out_dir: str | Path, cfg: TrainConfig) -> RunDir:
        """Where a resolved config's run lives: ``out_dir/<dataset>-<arch>-<method>-s<seed>``."""
        return cls(Path(out_dir) / cfg.run_name)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def _file(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------ its files

    @property
    def config_path(self) -> Path:
        """config.toml: the run's settings (the one copy of them)."""
        return self._file(CONFIG)

    @property
    def checkpoint_path(self) -> Path:
        return self._file(CHECKPOINT)

    @property
    def model_path(self) -> Path:
        return self._file(MODEL)

    @property
    def train_log_path(self) -> Path:
        return self._file(TRAIN_LOG)

    @property
    def metrics_path(self) -> Path:
        """The published evaluation's metrics.csv (through the ``eval`` link)."""
        return self._file(evalstore.LINK) / evalstore.METRICS

    @property
    def lock_path(self) -> Path:
        return self._file(LOCK_NAME)

    def has_files(self) -> bool:
        """Whether the folder holds any file of a run (a run directory, started or not)."""
        return any(self._file(name).exists() for name in RUN_FILES)

    @property
    def is_trained(self) -> bool:
        return self.model_path.exists()

    # ------------------------------------------------------------------ settings

    def write_config(self, cfg: TrainConfig, facts: dict[str, Any]) -> None:
        text = to_toml(to_table(cfg), "train")
        if cfg.method_options:
            text += "\n" + to_toml(cfg.method_options, "method")
        text += "\n" + to_toml(facts, "run")
        atomic_write_text(self.config_path, text)

    def read_toml(self) -> dict[str, Any]:
        return read_toml(self.config_path)

    def read_config(self) -> TrainConfig:
        """The resolved TrainConfig of this run (one-line UserError if missing or malformed)."""
        data = self.read_toml()
        train = dict(data.get("train") or {})
        method = dict(data.get("method") or {})
        for key in _OLD_METHOD_KEYS:  # an older layout: move the method's settings to their table
            if key in train:
                method.setdefault(key, train.pop(key))
        train.pop("out_dir", None)
        where = f"{self.config_path} [train]"
        if not train:
            raise UserError(f"config file {self.config_path} has no [train] table")
        cfg = from_table(TrainConfig, train, where)
        if not all(isinstance(k, str) for k in method):
            raise UserError(f"{self.config_path} [method] is malformed")
        cfg.method_options = {k: v for k, v in method.items() if v is not None}
        return cfg

    def facts(self) -> dict[str, Any]:
        """The [run] table: what training found out (image counts, the holdout's seed, ...)."""
        run = self.read_toml().get("run") or {}
        return run if isinstance(run, dict) else {}

    # ------------------------------------------------------------------ training

    @contextlib.contextmanager
    def locked(self, what: str) -> Iterator[None]:
        """Hold the run's lock for the block (the folder is created first); temp files that a
        killed writer left behind are removed once the lock is ours."""
        ensure_writable_dir(self.path)
        with run_lock(self.path, what):
            remove_stale_temps(self.path, (CONFIG, CHECKPOINT, MODEL, TRAIN_LOG, *OLD_EVALUATION))
            yield

    def training_state(self, cfg: TrainConfig, force: bool) -> str:
        """What training ``cfg`` into this folder means: ``new``, ``resume`` (a checkpoint of the
        same settings), ``finished`` (the same settings, already trained: nothing to do) or
        ``replace`` (--force). A run of other settings is refused, naming them."""
        existing = [name for name in RUN_FILES if self._file(name).exists() or self._file(name).is_symlink()]
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"run directory {clip_path(self.path)} exists and is not a directory")
        if not existing:
            return "new"
        if force:
            return "replace"
        if not self.config_path.exists():
            raise UserError(
                f"run directory {clip_path(self.path)} holds files of an unknown run; pass --force to replace them"
            )
        changed = differences(self.read_config(), cfg)
        if changed:
            raise UserError(
                f"run directory {clip_path(self.path)} holds a run with other settings "
                f"({', '.join(changed[:6])}); pass --force to replace it"
            )
        if self.is_trained:
            return "finished"
        return "resume" if self.checkpoint_path.exists() else "new"

    def prepare(self, replace: bool, say: Callable[[str], None] = lambda s: None) -> None:
        """Make room for a new training.

        ``replace`` (--force) touches only our own files and loses nothing if the new run is
        interrupted: the old files move to ``<run>/.replaced/`` and are deleted once the new
        model.pt is written. (If ``.replaced`` already exists, an earlier --force run was
        interrupted: it holds the last complete run and stays, and the interrupted run's files are
        removed.) Without it, the leftovers of a run killed before its first checkpoint go.
        """
        existing = [name for name in RUN_FILES if self._file(name).exists() or self._file(name).is_symlink()]
        ensure_writable_dir(self.path)
        backup = self._file(REPLACED)
        keep = replace and existing and not backup.exists()
        if keep:
            backup.mkdir()
        for name in existing:
            path = self._file(name)
            if keep:
                path.replace(backup / name)
            elif path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        for old in self.path.glob(f".{evalstore.LINK}-*"):
            if keep:
                old.replace(backup / old.name)
            else:
                shutil.rmtree(old, ignore_errors=True)
        if keep:
            say(f"the replaced run is kept in {backup} until this one finishes")

    def drop_replaced(self) -> None:
        shutil.rmtree(self._file(REPLACED), ignore_errors=True)

    def read_checkpoint(self) -> Any:
        return safe_torch_load(self.checkpoint_path)

    def write_checkpoint(self, payload: dict[str, Any]) -> None:
        atomic_torch_save(payload, self.checkpoint_path)

    def write_train_log(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_text(self.train_log_path, pd.DataFrame(rows).to_csv(index=False))

    def read_train_log(self) -> pd.DataFrame | None:
        path = self.train_log_path
        return read_table(path, ["epoch", "loss", "seconds"]) if path.exists() else None

    def save_model(self, model: Any, meta: dict[str, Any]) -> None:
        from robustbench_mm.store.checkpoint import save_model

        save_model(self.model_path, model, meta)

    def load_model(self, device: Any = "cpu", data: Any = None) -> tuple[Any, dict[str, Any]]:
        """The trained model and its metadata, checked against config.toml (and the data: its
        classes, channels and image size)."""
        from robustbench_mm.store.checkpoint import load_model

        cfg = self.trained_config()
        return load_model(
            self.model_path,
            device,
            expect_arch=cfg.arch,
            expect_dataset=cfg.dataset,
            expect_method=cfg.method,
            expect_classes=None if data is None else list(data.classes),
            expect_input=None if data is None else (data.in_channels, data.image_size),
        )

    def check_model_fits(self, meta: dict[str, Any], data: Any) -> None:
        """The metadata of a model :meth:`load_model` loaded without the data, checked against
        the data now (its classes, channels and image size), so the model need not be read again."""
        from robustbench_mm.store.checkpoint import check_expected

        check_expected(
            meta, self.model_path, expect_classes=list(data.classes), expect_input=(data.in_channels, data.image_size)
        )

    def trained_config(self) -> TrainConfig:
        """The config of a finished run (one-line UserError when there is nothing to evaluate)."""
        if not self.path.is_dir():
            raise UserError(f"run directory not found: {self.path}")
        if not self.is_trained:
            raise UserError(
                f"{clip_path(self.path)} has no model.pt (is training finished? run the same train command "
                "again to continue it)"
            )
        return self.read_config()

    # ------------------------------------------------------------------ evaluation

    def evaluation(self, same_model: bool = True) -> evalstore.StoredEvaluation | None:
        """The run's current evaluation, every file from one generation and checked against its
        schema and this run's config.toml (None: not evaluated). ``same_model``: refuse an
        evaluation of another model than the run's model.pt (by its sha256)."""
        expect = None
        if self.config_path.exists():
            cfg = self.read_config()
            expect = {"dataset": cfg.dataset, "arch": cfg.arch, "method": cfg.method, "seed": cfg.seed}
        digest = model_digest(self.model_path) if same_model and self.model_path.is_file() else None
        return evalstore.read(self.path, expect, digest)

    def read_metrics(self) -> pd.DataFrame:
        stored = self.evaluation()
        if stored is None:
            raise UserError(
                f"{clip_path(self.path)} has no evaluation; run mmbench evaluate {clip_path(self.path)} first"
            )
        return stored.metrics


def model_digest(path: Path) -> str:
    """The sha256 of a model file: what identifies a model (never its folder's name)."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV the project wrote, checked for the columns we use (one clear error otherwise)."""
    table = read_csv_table(path, "a readable table")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)}")
    require_numeric(table, path, columns)
    return table

"""Files on disk: every write is atomic, every checkpoint load is safe.

Atomic: we write to a temporary file in the destination's directory and ``os.replace`` it
into place, so a reader (or a crash) sees either the old file or the new one, never half of
one. Safe: checkpoints are read with ``torch.load(weights_only=True)``, whose unpickler only
builds tensors and plain containers, so a crafted pickle cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from .errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temp file next to ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except FileNotFoundError:
        raise UserError(f"output directory does not exist: {directory}") from None
    except PermissionError:
        raise UserError(f"cannot write to {directory}: permission denied") from None
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that we can write there (one clear error if not)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (PermissionError, FileExistsError, NotADirectoryError) as exc:
        raise UserError(f"cannot create output directory {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"output directory {path} is not writable")
    return path


def safe_torch_load(path: str | Path) -> Any:
    """Load a checkpoint without executing any code it may carry.

    ``weights_only=True`` refuses every pickle opcode that would import or call arbitrary
    objects. Anything that is not a readable checkpoint becomes one clear UserError.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise UserError(f"checkpoint path is a directory: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint is empty: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message opens with boilerplate; the line naming the refused global/opcode is the useful one.
        boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
        lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.strip().startswith(boilerplate)]
        detail = lines[0] if lines else "unsupported content"
        raise UserError(f"refusing to load {path}: not a safe checkpoint ({detail[:160]})") from None
    except Exception as exc:  # noqa: BLE001 - garbage bytes make the unpickler raise KeyError, IndexError, struct.error, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        detail = f"{type(exc).__name__}: {first}" if not isinstance(exc, (RuntimeError, OSError)) or not first else first
        raise UserError(f"cannot read checkpoint {path}: corrupt, truncated or not a checkpoint ({detail[:160]})") from None


def read_csv_table(path: str | Path, description: str) -> pd.DataFrame:
    """A CSV this project wrote, or one clear error saying it is not ``description``."""
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not {description} ({str(exc).splitlines()[0]})") from None


def require_numeric(table: pd.DataFrame, path: str | Path, columns: list[str]) -> None:
    """Every listed column must hold numbers (a hand-edited 'n/a' or 'high' is bad input)."""
    for column in columns:
        if not table.empty and not pd.api.types.is_numeric_dtype(table[column]):
            raise UserError(f"{path}: column {column!r} holds non-numeric values")

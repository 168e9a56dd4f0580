"""Files on disk: every write is atomic, every checkpoint load is safe, a run can be locked.

Atomic: we write to a temporary file in the destination's directory and ``os.replace`` it
into place, so a reader (or a crash) sees either the old file or the new one, never half of
one; a write that fails names its target, and the temp files a kill leaves behind are
removed by :func:`remove_stale_temps`. Safe: checkpoints are read with
``torch.load(weights_only=True)``, whose unpickler only builds tensors and plain containers,
so a crafted pickle cannot run code. Locked: :func:`run_lock` keeps a second process out of
a run directory (flock, so a killed holder never leaves a stale lock).
"""

from __future__ import annotations

import io
import os
import pickle
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip_path, plain

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temp file next to ``path``, fsync it, then rename it over ``path``.

    The temp file is ``.<name>.<8 random characters>.tmp`` (what :func:`remove_stale_temps`
    recognises). A full disk, a read-only file system or a permission error becomes one
    UserError naming ``path``, never the temp file, and leaves ``path`` as it was.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except FileNotFoundError:
        raise UserError(f"output directory does not exist: {clip_path(directory)}") from None
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp_name, path)
    except BaseException as exc:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        # Errors on our own files (writes and fsync carry no file name, chmod/replace the temp
        # file's) are about the target; an error about another file is the caller's to report.
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp_name, str(path)):
            raise _write_error(path, exc) from None
        raise
    return path


def _write_error(path: Path, exc: OSError) -> UserError:
    """'cannot write <target>: No space left on device' (never the temp file's name)."""
    if exc.strerror:
        reason = exc.strerror
    else:
        reason = os.strerror(exc.errno) if exc.errno is not None else type(exc).__name__
    return UserError(f"cannot write {clip_path(path)}: {reason}")


# tempfile.mkstemp's names: prefix + 8 characters of [a-z0-9_] + suffix (CPython's _RandomNameSequence)
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


def remove_stale_temps(directory: str | Path, names: Iterable[str]) -> list[Path]:
    """Delete the temp files that :func:`atomic_write` left in ``directory`` for the files ``names``.

    A SIGKILL between mkstemp and the rename leaves ``.<name>.<random>.tmp`` behind. Only
    regular files of exactly that pattern, for one of ``names``, are removed; nothing else is
    touched. Call it while holding the directory's :func:`run_lock`: otherwise another
    writer's temp file, still being written, would go too. Returns what was removed.
    """
    wanted = set(names)
    removed = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if not match or match.group("target") not in wanted or not entry.is_file(follow_symlinks=False):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UserError(f"cannot remove the stale temp file {clip_path(entry.path)}: {exc.strerror}") from None
        removed.append(Path(entry.path))
    return removed


def fsync_dir(path: str | Path) -> None:
    """Make a folder's renames durable (a crash after this finds the new entries)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder: nothing more to do there
        pass
    finally:
        os.close(fd)


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
        raise UserError(
            f"cannot create output directory {clip_path(path)}: {exc.strerror or plain(str(exc), 160)}"
        ) from None
    if not os.access(path, os.W_OK):
        raise UserError(f"output directory {clip_path(path)} is not writable")
    return path


def safe_torch_load(path: str | Path) -> Any:
    """Load a checkpoint without executing any code it may carry.

    ``weights_only=True`` refuses every pickle opcode that would import or call arbitrary
    objects. Anything that is not a readable checkpoint becomes one clear UserError.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {clip_path(path)}")
    if path.is_dir():
        raise UserError(f"checkpoint path is a directory: {clip_path(path)}")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint is empty: {clip_path(path)}")
    try:
        with warnings.catch_warnings():  # torch's note that it checks sparse tensors: the check is what we want
            warnings.filterwarnings("ignore", message="Validating sparse tensor invariants")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message opens with boilerplate; the line naming the refused global/opcode is the useful one.
        boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
        lines = [
            line.strip() for line in str(exc).splitlines() if line.strip() and not line.strip().startswith(boilerplate)
        ]
        detail = lines[0] if lines else "unsupported content"
        raise UserError(f"refusing to load {clip_path(path)}: not a safe checkpoint ({plain(detail, 160)})") from None
    except Exception as exc:  # noqa: BLE001 - garbage bytes make the unpickler raise KeyError, IndexError, struct.error, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        detail = (
            f"{type(exc).__name__}: {first}" if not isinstance(exc, (RuntimeError, OSError)) or not first else first
        )
        raise UserError(
            f"cannot read checkpoint {clip_path(path)}: corrupt, truncated or not a checkpoint ({plain(detail, 160)})"
        ) from None


def read_csv_table(path: str | Path, description: str) -> pd.DataFrame:
    """A CSV this project wrote, or one clear error saying it is not ``description``."""
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{clip_path(path)} is not {description} ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc)[:1000].strip().splitlines()
    return plain(lines[0], 160) if lines else type(exc).__name__


def require_numeric(table: pd.DataFrame, path: str | Path, columns: list[str]) -> None:
    """Every listed column must hold numbers (a hand-edited 'n/a' or 'high' is bad input)."""
    for column in columns:
        if not table.empty and not pd.api.types.is_numeric_dtype(table[column]):
            raise UserError(f"{clip_path(path)}: column {column!r} holds non-numeric values")


# ------------------------------------------------------------------------------ the run lock

LOCK_NAME = ".lock"
_held: dict[str, list] = {}  # realpath -> [pid, fd, depth]: this process's locks (re-entrant)
_held_guard = threading.Lock()


@contextmanager
def run_lock(directory: str | Path, what: str = "") -> Iterator[Path]:
    """Hold ``<directory>/.lock`` exclusively (flock, non-blocking) for the ``with`` block.

    A second process gets one UserError naming the holder's PID and ``what`` it is doing.
    The kernel drops a flock when its holder dies, even by SIGKILL, so a killed command never
    leaves a stale lock; the file itself is removed on a normal exit. Re-entrant within one
    process. A child forked while the lock is held shares it until the lock is released
    (workers should die with their parent: see :mod:`procs`). ``directory`` must exist.
    """
    key = os.path.realpath(directory)
    with _held_guard:
        entry = _held.get(key)
        if entry is not None and entry[0] == os.getpid():
            entry[2] += 1
        else:
            entry = _held[key] = [os.getpid(), _acquire(Path(directory), what), 1]
    try:
        yield Path(directory) / LOCK_NAME
    finally:
        with _held_guard:
            entry[2] -= 1
            if entry[2] == 0:
                del _held[key]
                _release(Path(directory), entry[1])


def _acquire(directory: Path, what: str) -> int:
    import fcntl  # POSIX only: imported here so the rest of this module loads anywhere

    path = directory / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o666 & ~_UMASK)
        except FileNotFoundError:
            raise UserError(f"run directory not found: {clip_path(directory)}") from None
        except OSError as exc:
            raise UserError(f"cannot lock {clip_path(directory)}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(f"{clip_path(directory)} is in use by {holder}; wait for it to finish or stop it") from None
        # The previous holder may have removed the file between our open and our flock: then we
        # hold a lock on a file nobody else can find, and must lock the current one instead.
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n{plain(what, 200)}\n".encode("utf-8", "replace"), 0)
    return fd


def _release(directory: Path, fd: int) -> None:
    import fcntl

    try:
        os.unlink(directory / LOCK_NAME)  # before unlocking: see the re-check in _acquire
    except OSError:
        pass
    fcntl.flock(fd, fcntl.LOCK_UN)  # explicit: a forked child's copy of fd would keep it otherwise
    os.close(fd)


def _holder(fd: int) -> str:
    """'process 1234 (mmbench train)' from the lock file (its content is untrusted: bounded)."""
    try:
        lines = os.pread(fd, 512, 0).decode("utf-8", "replace").splitlines()
    except OSError:
        lines = []
    pid = lines[0].strip() if lines else ""
    if not re.fullmatch(r"[0-9]{1,10}", pid):
        return "another process"
    what = plain(lines[1].strip(), 80) if len(lines) > 1 and lines[1].strip() else ""
    return f"process {pid}" + (f" ({what})" if what else "")

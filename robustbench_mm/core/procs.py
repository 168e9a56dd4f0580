"""Worker processes that die with their parent, and jobs that can be interrupted.

``kill -9`` of ``mmbench run --jobs 2`` used to leave its workers running: they finished
their run, writing beside a later ``--resume``, and then waited forever for a parent that was
gone. A worker calls :func:`die_with_parent` first thing (a ProcessPoolExecutor
``initializer``), with the parent's PID taken in the parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int | None = None, poll_seconds: float = 0.5) -> str:
    """Make this process die (SIGKILL) as soon as its parent does; returns the mechanism used.

    On Linux the kernel does it (``prctl(PR_SET_PDEATHSIG, SIGKILL)``): immediate, and it
    holds while the worker is busy in C code. Elsewhere, or where prctl is unavailable, a
    daemon thread polls the parent PID (:func:`watch_parent`).

    ``parent_pid`` is the PID the parent took of itself before starting the worker, and must
    be the worker's direct parent (the fork and spawn start methods, not forkserver). It
    closes a race: a parent that dies between the fork and this call would never signal us,
    so if our parent is no longer ``parent_pid`` we die now. Linux sends the signal when the
    *thread* that forked us ends, so start workers from a thread that lives as long as they
    should (the main thread; ProcessPoolExecutor starts fork workers from the submitting thread).
    """
    expected = os.getppid() if parent_pid is None else int(parent_pid)
    mechanism = "prctl" if _set_pdeathsig() else watch_parent(expected, poll_seconds)
    if os.getppid() != expected:  # the parent was already gone when the watch began
        _die()
    return mechanism


def watch_parent(parent_pid: int, poll_seconds: float = 0.5) -> str:
    """The portable fallback: a daemon thread that kills this process once its parent PID
    changes (an orphan is re-parented to init or a subreaper). Returns ``"watcher"``."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        _die()

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
    return "watcher"


def _set_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # the C library already loaded into Python
    except (OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0


def _die() -> None:
    kill = getattr(signal, "SIGKILL", None)
    if kill is not None:
        os.kill(os.getpid(), kill)
    os._exit(1)  # no SIGKILL on this platform (or it did not take): leave without cleanup all the same


@contextlib.contextmanager
def interruptible_children() -> Iterator[None]:
    """Programs started inside this block take SIGINT (``job.cancel()``, ``scancel --signal=INT``)
    even where this process ignores it.

    A shell without job control starts a background command (``&``, as nohup scripts and some CI
    runners do) with SIGINT ignored, and an ignored signal stays ignored through fork and exec:
    the local launcher's detached jobs would then never stop when cancelled. A signal that has a
    handler is reset to its default by exec instead, so for the duration of the block SIGINT gets
    a handler that does nothing: this process goes on ignoring it, its new programs do not.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield  # not ignored here (children inherit the default), or not ours to change
        return
    signal.signal(signal.SIGINT, _swallow)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _swallow(signum: int, frame: object) -> None:
    """A SIGINT handler that ignores it, as SIG_IGN does, but that exec resets to the default."""

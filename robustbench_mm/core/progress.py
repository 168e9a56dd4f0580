"""Progress of long steps: a bar with an ETA on a terminal, a plain line per finished step in a log.

``Progress(total, label, mode)``: ``mode`` is ``"bar"`` (tqdm on stderr), ``"lines"`` (one line on
stderr per finished step, with elapsed time and an ETA from the steps done so far: what a log
file or CI wants) or ``"off"``. :func:`mode_for` picks bar or lines from whether stderr is a
terminal; ``--quiet`` turns both off.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def mode_for(quiet: bool) -> str:
    if quiet:
        return "off"
    return "bar" if sys.stderr.isatty() else "lines"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """``total`` units of work (runs, examples, attack calls), reported as they finish."""

    def __init__(self, total: int, label: str, mode: str = "off", unit: str = "step", leave: bool = False) -> None:
        self.total, self.label, self.mode, self.unit = max(int(total), 0), label, mode, unit
        self.done = 0
        self.started = time.perf_counter()
        self._bar: Any = None
        if mode == "bar" and self.total:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=label, unit=unit, leave=leave, file=sys.stderr, dynamic_ncols=True)

    def update(self, amount: int = 1, note: str = "") -> None:
        self.done = min(self.total, self.done + amount)
        if self._bar is not None:
            self._bar.update(amount)
            if note:
                self._bar.set_postfix_str(note[:60])
        elif self.mode == "lines":
            print(self.line(note), file=sys.stderr, flush=True)

    def line(self, note: str = "") -> str:
        """``[3/9] label: note; 45 s elapsed, about 90 s left``."""
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta = f", about {_duration(left)} left" if self.done < self.total and self.done else ""
        text = f"[{self.done}/{self.total}] {self.label}" + (f": {note}" if note else "")
        return f"{text}; {_duration(elapsed)} elapsed{eta}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

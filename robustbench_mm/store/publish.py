"""Publishing several files as one unit, so a reader never sees a mix of two versions.

Two shapes, one idea (build everything aside, then switch with a single atomic step):

* :func:`publish_generation`: the files go into a fresh folder ``.<name>-<n>`` next to a symlink
  ``<name>``, which is then replaced atomically (``rename`` of a new link over the old one) to
  point at it. A reader resolves the link once (:func:`current_generation`) and reads every file
  from the folder it names: all old or all new, whatever happens meanwhile. A run's evaluation
  (metrics, per-example results, reliability bins, its settings) is published this way.
* :func:`publish_files`: for a folder whose file names are fixed and shared with other content
  (a report folder such as ``results/``), the files are written into ``.staging-<name>/`` with a
  ``COMPLETE`` marker last, then renamed into place one by one, and the staging folder removed.
  A command killed during the renames leaves a complete staging folder that the next
  publication (or :func:`recover_files`) finishes before anything else: the folder converges to
  the new version and never keeps a mix once any command has touched it again.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.files import atomic_write_bytes, fsync_dir
from robustbench_mm.core.untrusted import clip_path

_GENERATION = re.compile(r"\.(?P<name>[A-Za-z0-9_-]+)-(?P<n>[0-9]{1,9})")
COMPLETE = "COMPLETE"


def current_generation(directory: Path, name: str) -> Path | None:
    """The folder the ``name`` link points at now (None: nothing published yet)."""
    link = directory / name
    if link.is_dir() and not link.is_symlink():  # copied by a tool that follows links: read it as it is
        return link
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return None
    except OSError:  # neither a link nor a folder
        raise UserError(f"{clip_path(link)} is not a link to a published generation; move it away") from None
    match = _GENERATION.fullmatch(target)
    if not match or match.group("name") != name:  # only our own sibling folders are followed
        raise UserError(f"{clip_path(link)} points outside the run directory ({clip_path(target, 60)})")
    folder = directory / target
    if not folder.is_dir():
        raise UserError(f"{clip_path(link)} points at a missing folder {clip_path(folder)}")
    return folder


def publish_generation(directory: Path, name: str, files: Mapping[str, bytes]) -> Path:
    """Write ``files`` into a new generation folder and point the ``name`` link at it."""
    current = current_generation(directory, name)
    number = max([_number(p.name, name) for p in directory.glob(f".{name}-*")] + [0]) + 1
    folder = directory / f".{name}-{number}"
    building = directory / f".{name}-{number}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        for file_name, data in files.items():
            atomic_write_bytes(building / file_name, data)
        building.rename(folder)
    except BaseException:  # a full disk, a kill: the current generation stays as it was
        shutil.rmtree(building, ignore_errors=True)
        raise
    if current == directory / name:  # a plain folder (a run copied by a tool that follows links)
        os.replace(current, directory / f".{name}-0")  # becomes the previous generation
        current = directory / f".{name}-0"
    temp_link = directory / f".{name}.link-{os.getpid()}"
    temp_link.unlink(missing_ok=True)
    os.symlink(folder.name, temp_link)
    os.replace(temp_link, directory / name)  # the one step that switches readers over
    fsync_dir(directory)
    _drop_old(directory, name, keep={folder.name, current.name if current else ""})
    return folder


def _number(folder_name: str, name: str) -> int:
    match = _GENERATION.fullmatch(folder_name.split(".building")[0])
    return int(match.group("n")) if match and match.group("name") == name else 0


def _drop_old(directory: Path, name: str, keep: set[str]) -> None:
    """Generations older than the previous one go (a reader in the middle of the previous one
    keeps it); so do leftovers of interrupted publications."""
    for path in directory.glob(f".{name}-*"):
        if path.name not in keep and (_GENERATION.fullmatch(path.name) or path.name.endswith(".building")):
            shutil.rmtree(path, ignore_errors=True)
    for path in directory.glob(f".{name}.link-*"):
        path.unlink(missing_ok=True)


def publish_files(directory: Path, build: Callable[[Path], None], owned: tuple[str, ...] = ()) -> None:
    """Replace the files ``build(staging)`` writes in ``directory`` as one unit (see the module doc);
    the files named in ``owned`` that this build did not write are deleted with it (they would
    describe an older version). Hold the folder's lock: two publications share one staging folder."""
    recover_files(directory)
    staging = directory / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    build(staging)
    remove = [name for name in owned if not (staging / name).exists()]
    atomic_write_bytes(staging / COMPLETE, "\n".join(["remove", *remove]).encode())
    fsync_dir(staging)
    recover_files(directory)


def recover_files(directory: Path) -> None:
    """Finish a publication that a kill interrupted (or drop one that never completed)."""
    staging = directory / ".staging"
    if not staging.is_dir():
        return
    marker = staging / COMPLETE
    if not marker.is_file():
        shutil.rmtree(staging, ignore_errors=True)
        return
    lines = marker.read_text().splitlines()
    for file_name in sorted(os.listdir(staging)):
        if file_name != COMPLETE and (staging / file_name).is_file():
            os.replace(staging / file_name, directory / file_name)
    for file_name in lines[1:]:
        if "/" not in file_name and file_name not in ("", ".", ".."):
            (directory / file_name).unlink(missing_ok=True)
    fsync_dir(directory)
    shutil.rmtree(staging, ignore_errors=True)

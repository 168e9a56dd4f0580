"""Image folders (``root/<split>/<class>/<image>``) decoded once into a uint8 cache.

Decoding tens of thousands of JPEGs costs far more than reading their pixels back, so the
first load writes every split as one ``.npy`` array per tensor under the user's cache folder
(``$XDG_CACHE_HOME/robustbench_mm`` or ``~/.cache/robustbench_mm``; the data folder itself may be
read-only), in a sub-folder named by a hash of the folder's absolute path. The files are named
by a key that hashes the sorted file list with every file's size and mtime, so any added,
removed, renamed or rewritten image gives a new key and the old arrays are never read again.
Each file is written atomically and the manifest last: a reader sees a complete entry or none.

The walk follows symbolic links, as torchvision's ImageFolder does, but refuses to enter a
folder twice: a link loop would otherwise repeat its images until the path grew too long.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.files import atomic_write, atomic_write_text
from robustbench_mm.data.decode import NeedsColour, Undecodable, decode_file, file_kind

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's
CACHE_VERSION = 2  # 2: 16-bit images scaled (1 clipped them), alpha composited over black
_SHOWN = 5  # names shown in a message before "..."


@dataclass
class SplitFiles:
    """The images of one split in load order: paths, labels, and (size, mtime) for the cache key."""

    directory: Path
    classes: list[str]
    paths: list[str]
    labels: list[int]
    stamps: list[tuple[int, int]]


@dataclass
class Split:
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64
    classes: list[str]
    mean: tuple[float, ...]  # per channel, in [0, 1]
    std: tuple[float, ...]


def _shown(names: list[str]) -> str:
    return ", ".join(names[:_SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > _SHOWN else "")


def _image_dirs(class_dir: Path, seen: dict[tuple[int, int], str]) -> list[tuple[str, list[os.DirEntry]]]:
    """(folder, image files sorted by name) for ``class_dir`` and every folder below it, links followed."""
    found, stack = [], [str(class_dir)]
    while stack:
        folder = stack.pop()
        try:
            info = os.stat(folder)
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise UserError(f"cannot read folder {folder}: {exc.strerror or exc}") from None
        identity = (info.st_dev, info.st_ino)
        if identity in seen:
            raise UserError(
                f"image folder: {folder} is the folder {seen[identity]} again "
                "(a symbolic link loop or duplicate); remove the link"
            )
        seen[identity] = folder
        files = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # follows links
            except OSError:
                is_dir = False
            if is_dir:
                stack.append(entry.path)
            elif entry.name.lower().endswith(IMG_EXTENSIONS):
                files.append(entry)
        found.append((folder, sorted(files, key=lambda entry: entry.name)))
    return sorted(found, key=lambda item: item[0])  # torchvision's order: folders by path, files by name


def list_split(split_dir: Path) -> SplitFiles:
    """Every image of one split, in torchvision ImageFolder's order and labelling."""
    try:
        classes = sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())
    except OSError as exc:
        raise UserError(f"cannot read image folder {split_dir}: {exc.strerror or exc}") from None
    if not classes:
        raise UserError(f"image folder {split_dir}: no class folder found (expected {split_dir}/<class>/<image>)")
    split = SplitFiles(split_dir, classes, [], [], [])
    seen: dict[tuple[int, int], str] = {}
    empty = []
    for label, name in enumerate(classes):
        count = len(split.paths)
        for _folder, files in _image_dirs(split_dir / name, seen):
            for entry in files:
                path = entry.path
                try:
                    info = entry.stat()  # follows links, as the decoder will
                except OSError as exc:
                    raise UserError(f"cannot read image {path}: {exc.strerror or exc}") from None
                split.paths.append(path)
                split.labels.append(label)
                split.stamps.append((info.st_size, info.st_mtime_ns))
        if len(split.paths) == count:
            empty.append(name)
    if empty:
        raise UserError(
            f"image folder {split_dir}: Found no valid file for the classes {_shown(empty)} "
            f"(extensions: {', '.join(IMG_EXTENSIONS)})"
        )
    return split


def cache_key(splits: dict[str, SplitFiles]) -> str:
    """A hash of everything the decoded arrays depend on: the files, their sizes and mtimes."""
    digest = hashlib.sha256(f"robustbench_mm imagefolder cache v{CACHE_VERSION}\n".encode())
    for name, split in splits.items():
        digest.update(f"split {name} {json.dumps(split.classes)}\n".encode())
        base = len(str(split.directory)) + 1
        for path, label, (size, mtime) in zip(split.paths, split.labels, split.stamps, strict=True):
            digest.update(f"{path[base:]}\0{label}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]


def cache_dir(root: Path) -> Path:
    """Where the arrays of the folder ``root`` are cached (outside the folder: it may be read-only)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    name = hashlib.sha256(str(Path(root).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(base) / "robustbench_mm" / "imagefolder" / name


def _decode_into(out: np.ndarray, index: int, path: str, mode: str, where: Path) -> None:
    try:
        array = decode_file(path, mode)
    except NeedsColour:
        raise
    except Undecodable as exc:
        raise UserError(f"cannot decode image {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many unrelated types for broken files
        raise UserError(f"cannot read image {path}: {type(exc).__name__}") from None
    if array.shape[1:] != out.shape[2:]:
        raise UserError(
            f"images of mixed sizes in {where}: {path} is "
            f"{array.shape[2]}x{array.shape[1]}, expected {out.shape[3]}x{out.shape[2]}"
        )
    out[index] = array


def _first_image(path: str) -> tuple[str, tuple[int, int]]:
    try:
        return file_kind(path)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read image {path}: {type(exc).__name__}") from None


def _decode_all(split: SplitFiles, mode: str, progress: bool) -> np.ndarray:
    from tqdm import tqdm

    paths = split.paths
    _, size = _first_image(paths[0])
    out = np.empty((len(paths), 1 if mode == "L" else 3, *size), dtype=np.uint8)
    chunk = 256
    starts = range(0, len(paths), chunk)

    def work(start: int) -> int:
        for index in range(start, min(start + chunk, len(paths))):
            _decode_into(out, index, paths[index], mode, split.directory)
        return min(chunk, len(paths) - start)

    # PIL releases the GIL while decoding, so a few threads overlap their decodes.
    with (
        tqdm(
            total=len(paths),
            desc=f"decoding {split.directory.name}",
            unit="img",
            file=sys.stderr,
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        ) as bar,
        ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool,
    ):
        # map() yields in order, so the first failing chunk (in file order) is the one reported
        for done in pool.map(work, starts):
            bar.update(done)
    return out


def decode_splits(splits: dict[str, SplitFiles], progress: bool) -> dict[str, Split]:
    """Decode every split into uint8 arrays: grey if every image is grey, RGB otherwise."""
    mode, _ = _first_image(next(iter(splits.values())).paths[0])
    try:
        images = {name: _decode_all(split, mode, progress) for name, split in splits.items()}
    except NeedsColour:  # rare: decode again in colour rather than hold every image in RGB up front
        images = {name: _decode_all(split, "RGB", progress) for name, split in splits.items()}
    return {
        name: Split(images[name], np.asarray(s.labels, dtype=np.int64), s.classes, *channel_stats_uint8(images[name]))
        for name, s in splits.items()
    }


def _read_cache(directory: Path, key: str, splits: dict[str, SplitFiles]) -> dict[str, Split] | None:
    manifest_path = directory / f"{key}.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        result = {}
        for name, split in splits.items():
            images = np.load(directory / f"{key}.{name}.images.npy", allow_pickle=False)
            labels = np.load(directory / f"{key}.{name}.labels.npy", allow_pickle=False)
            if (
                images.dtype != np.uint8
                or labels.dtype != np.int64
                or list(images.shape) != manifest[name]["shape"]
                or labels.shape != (len(split.paths),)
                or images.shape[0] != len(split.paths)
            ):
                return None
            stats = manifest[name]
            result[name] = Split(
                images, labels, split.classes, tuple(map(float, stats["mean"])), tuple(map(float, stats["std"]))
            )
        return result
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None  # absent, partial or damaged: decode again (and rewrite it)


def _write_cache(directory: Path, key: str, root: Path, decoded: dict[str, Split]) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, split in decoded.items():
            for part, array in (("images", split.images), ("labels", split.labels)):
                atomic_write(
                    directory / f"{key}.{name}.{part}.npy", functools.partial(np.save, arr=array, allow_pickle=False)
                )
        manifest = {
            "version": CACHE_VERSION,
            "root": str(root),
            **{name: {"shape": list(s.images.shape), "mean": s.mean, "std": s.std} for name, s in decoded.items()},
        }
        atomic_write_text(directory / f"{key}.json", json.dumps(manifest, indent=1))
    except (OSError, UserError) as exc:
        warnings.warn(
            f"cannot write the image cache in {directory} ({exc}); the images will be decoded again next time",
            stacklevel=3,
        )
        return
    for stale in directory.iterdir():  # entries of earlier versions of the folder
        if not stale.name.startswith(key) and stale.suffix in (".npy", ".json"):
            try:
                stale.unlink()
            except OSError:
                pass


def read_image_folder(
    root: Path, split_names: tuple[str, ...] = ("train", "test"), cache: bool = True, progress: bool | None = None
) -> dict[str, Split]:
    """Each split of ``root`` as uint8 arrays, from the cache when the files are unchanged.

    ``progress``: a progress bar on stderr while decoding (None: only when stderr is a terminal).
    """
    root = Path(root)
    splits = {name: list_split(root / name) for name in split_names}
    if progress is None:
        progress = sys.stderr.isatty()
    if not cache:
        return decode_splits(splits, progress)
    key, directory = cache_key(splits), cache_dir(root)
    decoded = _read_cache(directory, key, splits)
    if decoded is None:
        decoded = decode_splits(splits, progress)
        _write_cache(directory, key, root.resolve(), decoded)
    return decoded


def channel_stats_uint8(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] of uint8 images, exactly, from per-channel histograms.

    Counting the 256 values needs no float copy of the data (the float64 path would need
    several times the images' size in temporaries).
    """
    counts = np.zeros((images.shape[1], 256), dtype=np.int64)
    for start in range(0, len(images), 1024):
        chunk = images[start : start + 1024]
        for channel in range(images.shape[1]):
            counts[channel] += np.bincount(chunk[:, channel].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    total = counts.sum(axis=1)
    mean = (counts * values).sum(axis=1) / total
    var = (counts * (values - mean[:, None]) ** 2).sum(axis=1) / total
    std = np.sqrt(var)
    return tuple(round(float(m), 6) for m in mean), tuple(round(max(float(s), 1e-3), 6) for s in std)

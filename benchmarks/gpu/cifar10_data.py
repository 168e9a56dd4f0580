"""The CIFAR-10 image folder for the GPU run (``mmbench run --preset cifar10-gpu``): packed into
a tarball here, unpacked there; and a synthetic CIFAR-shaped folder for CPU smoke tests.

The device machine has no network, so the JPEG class folders (``train/<class>/*.jpg``,
``test/<class>/*.jpg``) travel inside the working tree as one git-ignored tarball:

    mkdir -p data && tar -C /work/data -czf data/cifar10.tar.gz cifar10
    # or from Python: cifar10_data.make_tar(Path("/work/data/cifar10"), Path("data/cifar10.tar.gz"))

(~20 MB: 60,000 small JPEGs whose headers gzip well; the device tree may carry 64 MiB in all.)
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from robustbench_mm.core.errors import UserError

SPLITS = ("train", "test")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
MARKER = ".unpacked-from"  # names the archive (size, mtime) a folder was unpacked from


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def class_files(root: Path, per_class: int | None = None) -> list[Path]:
    """Every image of ``root/{train,test}/<class>/``, sorted; the first ``per_class`` of each class."""
    files = []
    for split in SPLITS:
        if not (root / split).is_dir():
            raise UserError(f"{root} needs train/ and test/ class folders; missing {root / split}")
        for folder in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            images = sorted(p for p in folder.iterdir() if p.is_file())
            files += images[:per_class] if per_class else images
    return files


def make_tar(source: Path, dest: Path, per_class: int | None = None) -> int:
    """Pack ``source``'s class folders into ``dest`` (gzip when it ends in .gz/.tgz) under the
    folder name ``source.name``; returns the number of images packed."""
    source = source.expanduser().resolve()
    files = class_files(source, per_class)
    dest.parent.mkdir(parents=True, exist_ok=True)
    mode = "w:gz" if dest.name.endswith((".gz", ".tgz")) else "w"
    partial = dest.with_name(dest.name + ".partial")
    with tarfile.open(partial, mode) as tar:
        for path in files:
            tar.add(path, arcname=f"{source.name}/{path.relative_to(source)}", recursive=False)
    partial.replace(dest)  # never leave a half-written tarball under the real name
    return len(files)


def unpack(archive: Path, into: Path) -> tuple[Path, bool]:
    """The image folder inside ``archive``, unpacked under ``into`` (reused when ``into`` already
    holds this very archive's contents); returns (folder, unpacked now)."""
    stat = archive.stat()
    stamp = f"{archive.resolve()} {stat.st_size} {stat.st_mtime_ns}"
    marker = into / MARKER
    if marker.exists() and marker.read_text() == stamp:
        return find_imagefolder(into), False
    into.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")  # no absolute paths, no links out, no devices
    except (tarfile.TarError, OSError, EOFError) as exc:
        first = (str(exc).splitlines() or [""])[0][:200]  # tarfile lists every compression it tried, a line each
        raise UserError(f"cannot unpack {archive}: {type(exc).__name__}: {first}") from None
    marker.write_text(stamp)
    return find_imagefolder(into), True


def find_imagefolder(root: Path) -> Path:
    """``root`` itself or the one folder under it that holds train/ and test/."""
    if all((root / s).is_dir() for s in SPLITS):
        return root
    inner = [p for p in sorted(root.iterdir()) if p.is_dir() and all((p / s).is_dir() for s in SPLITS)]
    if len(inner) != 1:
        raise UserError(f"{root} holds {len(inner)} folders with train/ and test/; expected exactly one")
    return inner[0]


def copy_subset(source: Path, dest: Path, per_class_train: int, per_class_test: int) -> Path:
    """A small real subset (the first images of each class) of an image folder, for --tiny."""
    import shutil

    for split, count in (("train", per_class_train), ("test", per_class_test)):
        for folder in sorted(p for p in (source / split).iterdir() if p.is_dir()):
            target = dest / split / folder.name
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted(p for p in folder.iterdir() if p.is_file())[:count]:
                shutil.copyfile(path, target / path.name)
    return dest


def synthetic_imagefolder(root: Path, per_class_train: int, per_class_test: int, suffix: str = ".jpg") -> Path:
    """A learnable CIFAR-shaped image folder (each class a colour and stripe pattern plus noise),
    for --tiny and run_all.py where no real data is at hand; JPEGs like the real folder's."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            base = np.zeros((32, 32, 3))
            base[..., c % 3] = 0.3 + 0.07 * c
            base[:: 2 + c % 4, :, (c + 1) % 3] += 0.3
            for i in range(count):
                image = np.clip(base + rng.normal(0, 0.15, base.shape), 0, 1)
                Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{i:04d}{suffix}", quality=90)
    return root

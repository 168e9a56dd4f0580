"""Dataset registry. Every dataset becomes in-memory tensors: images NCHW, labels int64.

8-bit datasets stay uint8 (4x less memory, and the GPU path keeps them on the device as
uint8, as airbench does); :func:`to_float` turns a batch into float32 in [0, 1] on use.
``digits`` (scikit-learn's embedded 8x8 digits) is the default and never touches the network;
the torchvision datasets read ``--data-root`` and download only with ``--download``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.registry import Registry
from robustbench_mm.data.cards import card_for
from robustbench_mm.data.mnist_files import check_idx_folder

DATASETS: Registry[Callable[..., DatasetSplits]] = Registry("dataset")

# Per-channel statistics of the training sets (the usual published values); the model owns
# them as buffers, nothing outside a model normalizes.
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
SVHN_STATS = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))
MNIST_STATS = ((0.1307,), (0.3081,))
FASHION_STATS = ((0.2860,), (0.3530,))


@dataclass
class DatasetSplits:
    """A dataset held in memory, with what training and models need to know about it."""

    name: str
    train_x: torch.Tensor  # (N, C, H, W) uint8 or float32 in [0, 1]
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0  # random-crop padding used in training (0 = no crop)
    flip: bool = False  # random horizontal flip in training
    default_arch: str = "cnn"
    # the name of its card (data/cards.py: training and evaluation defaults, threat model; "": its name)
    profile: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.profile = self.profile or self.name

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 / 255; float tensors pass through unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of images in [0, 1] (float64 accumulation, chunked)."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(x.shape[1], dtype=torch.float64)
    count = 0
    for start in range(0, len(x), 4096):
        chunk = to_float(x[start : start + 4096]).double()
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += (chunk**2).sum(dim=(0, 2, 3))
        count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = total / count
    std = (total_sq / count - mean**2).clamp_min(1e-12).sqrt()
    return tuple(round(float(m), 6) for m in mean), tuple(round(max(float(s), 1e-3), 6) for s in std)


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    download: bool = False,
    cache: bool = True,
    progress: bool | None = None,
) -> DatasetSplits:
    """Load a registered dataset (``imagefolder:<path>`` for a folder of images).

    ``cache`` and ``progress`` apply to image folders: keep the decoded images in the user's
    cache folder; show a progress bar while decoding (None: when stderr is a terminal).
    """
    if name.startswith("imagefolder:"):
        path = name.split(":", 1)[1]
        if not path:
            raise UserError("imagefolder needs a path: --dataset imagefolder:<path>")
        return load_imagefolder(Path(path).expanduser(), cache=cache, progress=progress)
    return DATASETS.get(name)(data_root=data_root, download=download)


def dataset_names() -> list[str]:
    return DATASETS.names() + ["imagefolder:<path>"]


@DATASETS.register("digits")
def load_digits(data_root: str | Path | None = None, download: bool = False) -> DatasetSplits:
    """scikit-learn's 1,797 real 8x8 digits, split once 80/20 stratified with seed 0."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]  # pixel values are 0..16
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2, stratify=labels, random_state=0)
    # clone(contiguous_format) fixes the strides NumPy leaves on the size-1 channel axis, which
    # would otherwise read as channels_last to PyTorch.
    train_x = torch.from_numpy(x_train).clone(memory_format=torch.contiguous_format)
    mean, std = channel_stats(train_x)
    return DatasetSplits(
        name="digits",
        train_x=train_x,
        train_y=torch.from_numpy(y_train),
        test_x=torch.from_numpy(x_test).clone(memory_format=torch.contiguous_format),
        test_y=torch.from_numpy(y_test),
        classes=[str(c) for c in range(10)],
        mean=mean,
        std=std,
        default_arch="cnn",
    )


def _require_root(name: str, data_root: str | Path | None, hint: str) -> Path:
    if data_root is None:
        raise UserError(f"dataset {name!r} needs a data root: --data-root DIR, data_root= in Python ({hint})")
    return Path(data_root).expanduser()


def _torchvision(name: str, build: Callable[[bool], object], root: Path, hint: str):
    """Instantiate a torchvision dataset, turning its 'not found' errors into one clear line."""
    try:
        return build(True), build(False)
    except RuntimeError as exc:
        raise UserError(f"dataset {name!r} not found under {root}: {hint} ({str(exc).splitlines()[0]})") from None
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"dataset {name!r} under {root} is unreadable: {exc}") from None


_DOWNLOAD_HINT = "pass --download to fetch it there, or copy the torchvision files into that folder"


def _mnist_like(name: str, cls_name: str, stats, data_root, download) -> DatasetSplits:
    import torchvision.datasets as tvd

    root = _require_root(name, data_root, _DOWNLOAD_HINT)
    cls = getattr(tvd, cls_name)
    raw = root / cls_name / "raw"  # where torchvision looks (its class name, then raw/)
    check_idx_folder(raw)  # the files present: torchvision asserts or misreports on damaged ones
    train, test = _torchvision(name, lambda train: cls(str(root), train=train, download=download), root, _DOWNLOAD_HINT)
    check_idx_folder(raw)  # and any it just downloaded
    for split in (train, test):
        if len(split.data) != len(split.targets):  # torchvision's older processed/*.pt files
            raise UserError(f"dataset {name!r} under {root}: {len(split.data)} images but {len(split.targets)} labels")
    return DatasetSplits(
        name=name,
        train_x=train.data.unsqueeze(1).contiguous(),
        train_y=train.targets.long(),
        test_x=test.data.unsqueeze(1).contiguous(),
        test_y=test.targets.long(),
        classes=list(train.classes),
        mean=stats[0],
        std=stats[1],
        default_arch=_default_arch(name),
    )


def _default_arch(name: str) -> str:
    arch = card_for(name).arch
    assert arch is not None, f"a registered dataset ({name}) names its architecture"
    return arch


@DATASETS.register("mnist")
def load_mnist(data_root=None, download: bool = False) -> DatasetSplits:
    return _mnist_like("mnist", "MNIST", MNIST_STATS, data_root, download)


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(data_root=None, download: bool = False) -> DatasetSplits:
    return _mnist_like("fashion-mnist", "FashionMNIST", FASHION_STATS, data_root, download)


def _cifar(name: str, cls_name: str, stats, data_root, download) -> DatasetSplits:
    import torchvision.datasets as tvd

    root = _require_root(name, data_root, _DOWNLOAD_HINT)
    cls = getattr(tvd, cls_name)
    train, test = _torchvision(name, lambda train: cls(str(root), train=train, download=download), root, _DOWNLOAD_HINT)

    def nchw(array) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.asarray(array).transpose(0, 3, 1, 2)))

    # The official Manifold Mixup code: RandomCrop(32, padding=2) + horizontal flip on CIFAR.
    return DatasetSplits(
        name=name,
        train_x=nchw(train.data),
        train_y=torch.as_tensor(train.targets, dtype=torch.int64),
        test_x=nchw(test.data),
        test_y=torch.as_tensor(test.targets, dtype=torch.int64),
        classes=list(train.classes),
        mean=stats[0],
        std=stats[1],
        crop_padding=2,
        flip=True,
        default_arch=_default_arch(name),
    )


@DATASETS.register("cifar10")
def load_cifar10(data_root=None, download: bool = False) -> DatasetSplits:
    return _cifar("cifar10", "CIFAR10", CIFAR10_STATS, data_root, download)


@DATASETS.register("cifar100")
def load_cifar100(data_root=None, download: bool = False) -> DatasetSplits:
    return _cifar("cifar100", "CIFAR100", CIFAR100_STATS, data_root, download)


@DATASETS.register("svhn")
def load_svhn(data_root=None, download: bool = False) -> DatasetSplits:
    import torchvision.datasets as tvd

    root = _require_root("svhn", data_root, _DOWNLOAD_HINT)
    train, test = _torchvision(
        "svhn",
        lambda train: tvd.SVHN(str(root), split="train" if train else "test", download=download),
        root,
        _DOWNLOAD_HINT,
    )
    # SVHN: random crop with padding 2, no flip (digits are not mirror-symmetric).
    return DatasetSplits(
        name="svhn",
        train_x=torch.from_numpy(np.ascontiguousarray(train.data)),
        train_y=torch.as_tensor(train.labels, dtype=torch.int64),
        test_x=torch.from_numpy(np.ascontiguousarray(test.data)),
        test_y=torch.as_tensor(test.labels, dtype=torch.int64),
        classes=[str(c) for c in range(10)],
        mean=SVHN_STATS[0],
        std=SVHN_STATS[1],
        crop_padding=2,
        default_arch="preactresnet18",
    )


def load_imagefolder(root: Path, cache: bool = True, progress: bool | None = None) -> DatasetSplits:
    """``root/train/<class>/*`` and ``root/test/<class>/*`` (torchvision's ImageFolder layout).

    Decoded once into a uint8 cache (see :mod:`robustbench_mm.data.imagefolder`; ``cache=False``
    decodes every time and writes nothing). Grey if every image is grey, RGB otherwise.
    """
    from robustbench_mm.data.imagefolder import read_image_folder

    root = Path(root)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise UserError(f"imagefolder {root} needs train/ and test/ sub-folders; missing {root / split}")
    splits = read_image_folder(root, ("train", "test"), cache=cache, progress=progress)
    train, test = splits["train"], splits["test"]
    classes = train.classes
    if classes != test.classes:
        raise UserError(
            f"imagefolder {root}: train classes {_capped(classes)} differ from test classes {_capped(test.classes)}"
        )
    if train.images.shape[1:] != test.images.shape[1:]:
        raise UserError(
            f"imagefolder {root}: train images {tuple(train.images.shape[1:])} and test images "
            f"{tuple(test.images.shape[1:])} differ in size"
        )
    if train.images.shape[-1] != train.images.shape[-2]:
        raise UserError(f"imagefolder {root}: images must be square, got {tuple(train.images.shape[-2:])}")
    mean, std = train.mean, train.std
    size, channels = train.images.shape[-1], train.images.shape[1]
    profile = {(32, 3): "imagefolder-32-colour", (28, 1): "imagefolder-28-grey"}.get((size, channels), "imagefolder")
    fallback = "preactresnet18" if size >= 32 else "cnn"
    return DatasetSplits(
        name=f"imagefolder:{root}",
        train_x=torch.from_numpy(train.images),
        train_y=torch.from_numpy(train.labels),
        test_x=torch.from_numpy(test.images),
        test_y=torch.from_numpy(test.labels),
        classes=classes,
        mean=mean,
        std=std,
        crop_padding=2 if size >= 32 else 0,
        flip=channels == 3,  # colour folders are taken for photographs (mirror-symmetric classes)
        default_arch=card_for(profile).arch or fallback,
        profile=profile,
    )


def _capped(names: list[str], shown: int = 5) -> str:
    """A class list for a message: the first few names and the count (folders may hold thousands)."""
    return "[" + ", ".join(names[:shown]) + (f", ... ({len(names)} in all)" if len(names) > shown else "") + "]"


def stratified_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of ``n`` examples: an equal share of every class, drawn with ``seed``.

    RobustBench evaluates the first ``n_examples`` of a test set; a seeded, class-balanced draw
    keeps the subset representative whatever the file order (an image folder is sorted by
    class, so its first 1,000 images are one class). ``n / classes`` per class; a class with
    fewer examples gives all it has and its unused share goes to the others; the remainder
    goes one each to the classes with the lowest labels. The same (labels, n, seed) always
    gives the same indices, and a larger ``n`` gives a superset.
    """
    if n <= 0:
        raise UserError(f"the number of test examples must be > 0, got {n}")
    labels = torch.as_tensor(labels).long().cpu()
    if n >= len(labels):
        return torch.arange(len(labels))
    counts = torch.bincount(labels).tolist()
    quota = [0] * len(counts)
    remaining = n
    while remaining > 0:  # each round either places everything or fills at least one class
        open_classes = [c for c, count in enumerate(counts) if quota[c] < count]
        share, extra = divmod(remaining, len(open_classes))
        for rank, c in enumerate(open_classes):
            take = min(share + (rank < extra), counts[c] - quota[c])
            quota[c] += take
            remaining -= take
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c, count in enumerate(counts):
        members = torch.nonzero(labels == c).flatten()
        order = torch.randperm(count, generator=generator)  # drawn for every class: subsets nest as n grows
        chosen.append(members[order[: quota[c]]])
    return torch.cat(chosen).sort().values


def draw_crop_flip(n: int, padding: int, flip: bool, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example crop offsets (2, n) and flip flags (n,), drawn on ``generator``'s device.

    Drawing is separate from applying so that distributed ranks can draw the parameters of
    the whole global batch (keeping their generators in step) and apply their own slice. On
    CUDA the generator lives on the GPU: a host-drawn tensor would need a copy that waits
    for the GPU every step.
    """
    device = generator.device
    if padding > 0:
        offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=device)
    else:
        offsets = torch.zeros(2, n, dtype=torch.long, device=device)
    if flip:
        flips = torch.rand(n, generator=generator, device=device) < 0.5
    else:
        flips = torch.zeros(n, dtype=torch.bool, device=device)
    return offsets, flips


def apply_crop_flip(x: torch.Tensor, padding: int, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Crop each image at its offset from the zero-padded batch, then flip the flagged ones.

    One gather over the padded batch on x's device; no per-image Python loop.
    """
    n, _, h, w = x.shape
    if padding > 0:
        offsets = offsets.to(x.device)
        padded = torch.nn.functional.pad(x, (padding,) * 4)
        rows = torch.arange(h, device=x.device)[None, :] + offsets[0][:, None]  # (n, h)
        cols = torch.arange(w, device=x.device)[None, :] + offsets[1][:, None]  # (n, w)
        batch = torch.arange(n, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flips.device.type != "cpu" or bool(flips.any()):  # no host sync on CUDA
        x = torch.where(flips.to(x.device)[:, None, None, None], x.flip(3), x)
    return x.contiguous()


def random_crop_flip(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Batched random crop with zero padding and random horizontal flip, on x's device.

    Random numbers come from ``generator`` on the CPU, so CPU and CUDA runs draw the same crops.
    """
    offsets, flips = draw_crop_flip(x.shape[0], padding, flip, generator)
    return apply_crop_flip(x, padding, offsets, flips)

"""One card per dataset: what training and evaluation use by default, the threat model its
attacks use and the clean-accuracy floor the report holds a run to.

A card is keyed by a dataset profile (``DatasetSplits.profile``): a registered dataset's name, or
what an image folder's images look like. ``settings`` reads the cards for every per-dataset
default (``--epochs``, ``--lr``, ..., ``--n-test``) and for the help text that lists them; the
attacks read ``threat``; the report reads ``floor``. Adding a dataset = its loader, its card, its
test.

Why these values:

- The floors are what a properly trained small model reaches easily (the report marks a run
  below its floor as undertrained): digits 95%, MNIST 98%, Fashion-MNIST 88%, CIFAR-10 80%,
  CIFAR-100 50%, SVHN 90%; an image folder has none unless --accuracy-floor gives one.
- digits: the cnn and the paper's step schedule (its milestones never fall inside epoch 1).
- 28x28 grey and 32x32 colour: the CPU-fast nets (models/fast.py) with the trapezoid schedule,
  the recipes in notes/recipe.md. Evaluation on a stratified 1,000-image subset, RobustBench's
  customary n_examples for a quick but stable estimate.
- CIFAR-100 and SVHN: PreActResNet18 as in the paper's App. C (lr 0.1, wd 1e-4, batch 100),
  200 epochs rather than 1,200 (the paper presets restore 1,200) -- GPU settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from robustbench_mm.data.threat import COLOUR32, DIGITS, GREY28, ThreatModel, threat_for_shape


@dataclass(frozen=True)
class DatasetCard:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    arch: str | None = None  # None: chosen by the loader from the image size (image folders)
    floor: float | None = None  # clean accuracy below which a run counts as undertrained (report)
    schedule: str = "trapezoid"  # per-step lr shape (training/schedules.py)
    n_test: int | None = None  # test examples an evaluation draws (stratified); None: all
    threat: ThreatModel | None = None  # the attack radii; None: by the images' shape (image folders)


CARDS: dict[str, DatasetCard] = {}


def register_card(profile: str, card: DatasetCard) -> DatasetCard:
    if profile in CARDS:
        raise ValueError(f"dataset card {profile!r} is registered twice")
    CARDS[profile] = card
    return card


register_card(
    "digits",
    DatasetCard(
        epochs=30, batch_size=64, lr=0.05, weight_decay=5e-4, arch="cnn", floor=0.95, schedule="step", threat=DIGITS
    ),
)
register_card(
    "mnist",
    DatasetCard(
        epochs=4, batch_size=128, lr=0.1, weight_decay=5e-4, arch="fast28", floor=0.98, n_test=1000, threat=GREY28
    ),
)
register_card(
    "fashion-mnist",
    DatasetCard(
        epochs=10, batch_size=128, lr=0.1, weight_decay=5e-4, arch="fast28", floor=0.88, n_test=1000, threat=GREY28
    ),
)
register_card(
    "cifar10",
    DatasetCard(
        epochs=15, batch_size=256, lr=0.2, weight_decay=5e-4, arch="fast32", floor=0.8, n_test=1000, threat=COLOUR32
    ),
)
register_card(
    "cifar100",
    DatasetCard(
        epochs=200,
        batch_size=100,
        lr=0.1,
        weight_decay=1e-4,
        arch="preactresnet18",
        floor=0.5,
        n_test=1000,
        threat=COLOUR32,
    ),
)
register_card(
    "svhn",
    DatasetCard(
        epochs=100,
        batch_size=100,
        lr=0.1,
        weight_decay=1e-4,
        arch="preactresnet18",
        floor=0.9,
        n_test=1000,
        threat=COLOUR32,
    ),
)
register_card("imagefolder", DatasetCard(epochs=50, batch_size=64, lr=0.05, weight_decay=5e-4))
# image folders of 28x28 grey / 32x32 colour images: the MNIST / CIFAR-10 recipe, without the floor
register_card(
    "imagefolder-28-grey", DatasetCard(epochs=4, batch_size=128, lr=0.1, weight_decay=5e-4, arch="fast28", n_test=1000)
)
register_card(
    "imagefolder-32-colour",
    DatasetCard(epochs=15, batch_size=256, lr=0.2, weight_decay=5e-4, arch="fast32", n_test=1000),
)


def dataset_family(dataset: str) -> str:
    """A dataset's card name: its own, or ``imagefolder`` for any ``imagefolder:<path>``."""
    return "imagefolder" if dataset.startswith("imagefolder:") else dataset


def card_for(profile: str) -> DatasetCard:
    """The card of a dataset profile (``DatasetSplits.profile``; any other image folder: generic)."""
    return CARDS.get(profile, CARDS["imagefolder"])


def threat_for(dataset: str, channels: int | None = None, size: int | None = None) -> ThreatModel:
    """The threat model of a dataset by name (an image folder: by its images' shape)."""
    card = CARDS.get(dataset)
    if card is not None and card.threat is not None:
        return card.threat
    if channels is not None and size is not None:
        return threat_for_shape(channels, size)
    return COLOUR32


def threat_of(data) -> ThreatModel:
    """The threat model a loaded dataset (``DatasetSplits``) carries, or the one its name and
    image shape give."""
    threat = getattr(data, "threat", None)
    if isinstance(threat, ThreatModel):
        return threat
    return threat_for(data.name, getattr(data, "in_channels", None), getattr(data, "image_size", None))

"""Evaluation settings: what ``mmbench evaluate`` (and ``robustbench_mm.evaluate``) measures, and how."""

from __future__ import annotations

from dataclasses import dataclass

from robustbench_mm.core.errors import UserError
from robustbench_mm.settings.fields import check, find, setting
from robustbench_mm.settings.train import SEED_MAX

SIZE_MAX = 65_536  # batch sizes
EXAMPLES_MAX = 100_000_000
L2_MAX = 10_000  # L2 radii and step sizes in [0, 1] pixel units: past any image's diameter


@dataclass
class EvalConfig:
    """How a model is evaluated (``None``: the default named in the help)."""

    suites: list[str] | None = setting(
        None,
        "suites to run (default: every default suite; mmbench list)",
        flag="--suite",
        aliases=("--suites",),
        unique=True,
    )
    attacks: list[str] | None = setting(
        None,
        "attacks (default: fgsm, pgd-linf, pgd-l2 and square at every radius, and a worst case that "
        "adds APGD-CE and APGD-T, 100 iterations, on the examples still standing; mmbench list)",
        unique=True,
    )
    eps: list[float] | None = setting(
        None,
        "L∞ radii in (0, 1] pixel scale (default: the dataset's grid; ε = 0 is the clean suite's accuracy)",
        low=0,
        low_open=True,
        high=1,
        sort=True,
    )
    eps_l2: list[float] | None = setting(
        None, "L2 radii (default: the dataset's grid)", low=0, low_open=True, high=L2_MAX, sort=True
    )
    pgd_steps: int = setting(
        10,
        "steps of PGD (and of the other iterative attacks but APGD and AutoAttack: fixed at 100)",
        low=1,
        high=100_000,
    )
    pgd_restarts: int = setting(1, "random restarts of the iterative attacks", low=1, high=1000)
    # bounded by the largest L2 radius: a bigger step leaves every ball in one step, and 1e308 overflows
    # float32 into inf/NaN images
    pgd_step_size: float | None = setting(
        None, "PGD step size (default 2.5·ε/steps)", low=0, low_open=True, high=L2_MAX
    )
    attack_precision: str = setting(
        "auto",
        "attack gradients in fp32 (auto) or bf16 (CUDA only; weaker at small ε)",
        choices=("auto", "fp32", "bf16"),
    )
    deformations: str = setting("paper", "deformation grid: paper (Table 4) or paper-full (Table 9)")
    corruptions: list[str] | None = setting(None, "common corruptions (default: all 19)", unique=True)
    severities: list[int] | None = setting(None, "corruption levels 1..5 (default: all)", low=1, high=5, sort=True)
    ood: list[str] | None = setting(
        None,
        "outlier sets of the ood suite (default: uniform, gaussian, pixel-shuffle); a "
        "dataset name or imagefolder:<path> too, e.g. svhn next to cifar10",
        unique=True,
    )
    ood_data_root: str | None = setting(None, "folder holding an outlier dataset's files (default: --data-root)")
    cifar_c_root: str | None = setting(
        None, "folder holding CIFAR-10-C/ or CIFAR-100-C/ .npy files (the published images)"
    )
    batch_size: int = setting(
        500, "evaluation batch size (0: from free GPU memory)", flag="--eval-batch-size", low=0, high=SIZE_MAX
    )
    seed: int = setting(
        0, "seed of the attacks' random starts, deformations and corruptions", flag="--eval-seed", low=0, high=SEED_MAX
    )
    device: str = setting("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    cpu_threads: int = setting(
        1, "torch threads when evaluating on the CPU (the numbers depend on it)", low=1, high=256
    )
    data_root: str | None = setting(
        None, "folder holding the torchvision dataset files (default: where training found them)"
    )
    download: bool = setting(False, "let torchvision download the dataset into --data-root")
    n_test: int | None = setting(
        None,
        "evaluate on N test examples: a class-stratified subset drawn with --seed, the "
        "same for every run (default per dataset; 0: the whole test set)",
        low=0,
        high=EXAMPLES_MAX,
        per_dataset=True,
        aliases=("--max-examples",),
    )
    n_bins: int = setting(15, "calibration bins", flag="--bins", low=1, high=1000)

    def validate(self, cli: bool = False) -> EvalConfig:
        check(self, cli)
        if self.suites is not None:
            for name, suite in SUITE_OF.items():
                if getattr(self, name) is not None and suite not in self.suites:
                    # refused, not warned: the user asked for numbers the evaluation would not produce,
                    # and a warning scrolls past while the report silently lacks them
                    label = find(EvalConfig, name).label(cli)
                    where = "--suite" if cli else "suites"
                    raise UserError(
                        f"{label} has no effect without the {suite} suite; add {suite} to {where} or drop it"
                    )
        return self


# settings that only one suite reads (those without a default value, so that a value means it was given)
SUITE_OF = {
    "attacks": "adversarial",
    "corruptions": "corruption",
    "severities": "corruption",
    "cifar_c_root": "corruption",
    "ood": "ood",
    "ood_data_root": "ood",
}

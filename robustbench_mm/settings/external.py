"""``mmbench evaluate --model``: a saved or published model instead of run directories."""

from __future__ import annotations

from dataclasses import dataclass

from robustbench_mm.core.errors import UserError
from robustbench_mm.settings.fields import check, setting


@dataclass
class ExternalModelOptions:
    """Which model ``mmbench evaluate --model`` evaluates, on what, and where its evaluation goes."""

    model: str | None = setting(
        None,
        "evaluate this model instead of run directories: a TorchScript or torch.export file, a state dict "
        "(with --arch), or robustbench:NAME / robustbench:DATASET/THREAT/NAME",
    )
    dataset: str | None = setting(
        None, "--model: the dataset to evaluate it on (digits, cifar10, imagefolder:<path>...)"
    )
    arch: str | None = setting(
        None, "--model FILE as a state dict: its architecture (mmbench list; torchvision:NAME...)"
    )
    label: str | None = setting(None, "--model: how reports name it (default: the file's stem, robustbench:NAME)")
    out_dir: str = setting("runs", "--model: parent of the folder its evaluation is written to (<label>-s0)")
    robustbench_dir: str = setting("models", "robustbench:NAME: RobustBench's model folder (<dir>/<dataset>/<threat>)")

    def validate(self, cli: bool = False) -> ExternalModelOptions:
        check(self, cli)
        if self.model is not None and not self.dataset:
            raise UserError(("--dataset" if cli else "dataset") + " is needed with --model (the data to evaluate on)")
        return self

"""What the attacks of one evaluation share: the model's fast copies, its clean verdicts, the shard.

An evaluation makes many :func:`~.driver.attack` calls on the same model and the same images
(every attack at every radius, plus the diagnostics). An :class:`AttackSession` holds what those
calls would otherwise each rebuild: the model's attack and verdict copies (per precision) and
the clean verdict of each batch. It also holds the shard: under ``torchrun ... evaluate`` each
process attacks every N-th batch and all processes receive the whole result.

The session belongs to one model; whoever creates it promises not to change that model's
weights, nor the images it is asked about, while the session is in use. ``evaluate()`` creates
one per evaluation; an :func:`~.driver.attack` call without one gets a fresh one-process session
(no reuse across calls).
"""

from __future__ import annotations

import torch
from torch import nn

from robustbench_mm.attacks.fastcopy import attack_copy, layout_copy
from robustbench_mm.core import distributed


class AttackSession:
    def __init__(self, model: nn.Module, shard: distributed.Dist | None = None) -> None:
        self.model = model
        self.shard = shard if shard is not None else distributed.Dist()
        self._copies: dict[str, tuple[nn.Module, nn.Module]] = {}  # by precision
        # key -> (images, labels, verdict): the tensors are kept alive so that their addresses
        # in the key cannot be reused by other tensors while the session lives
        self._clean: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __repr__(self) -> str:
        return f"AttackSession({type(self.model).__name__}, rank {self.shard.rank} of {self.shard.world})"

    def model_copies(self, use_attack_copy: bool, precision: str) -> tuple[nn.Module, nn.Module]:
        """(model for the attack's steps, model for the verdicts), built once per precision."""
        if not use_attack_copy:
            return self.model, self.model
        if precision not in self._copies:
            self._copies[precision] = attack_copy(self.model), layout_copy(self.model)
        return self._copies[precision]

    def clean_verdict(
        self, verdict_model: nn.Module, x: torch.Tensor, y: torch.Tensor, sl: slice, xb: torch.Tensor, yb: torch.Tensor
    ) -> torch.Tensor:
        """Bool per example of batch ``sl`` (``xb``, ``yb`` on the device): classified correctly
        on the clean input, in fp32 -- the verdict every attack of the evaluation shares."""
        key = (x.data_ptr(), tuple(x.shape), y.data_ptr(), sl.start, sl.stop, id(verdict_model))
        if key not in self._clean:
            with torch.no_grad():
                self._clean[key] = (x, y, verdict_model(xb).argmax(1) == yb)
        return self._clean[key][2]

    def owns(self, batch_index: int) -> bool:
        """Whether this process attacks batch ``batch_index`` (batch b goes to rank b % world)."""
        return batch_index % self.shard.world == self.shard.rank

    def agree_on_batch_size(self, batch_size: int) -> int:
        """The smallest of the processes' batch sizes (free memory differs between GPUs)."""
        return int(distributed.all_reduce_min(torch.tensor([batch_size]), self.shard))

    def gather(self, tensors: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """Sum the processes' results: each process filled its own batches' rows and left zeros
        (bools: one process owns each row, so the sum is an OR)."""
        return [None if t is None else distributed.all_reduce_sum(t, self.shard) for t in tensors]

"""The suite runner: any [0, 1]-input model + a dataset -> one DataFrame in the results schema.

``evaluate(model, dataset)`` works for a user's own ``nn.Module``; ``evaluate_run(run_dir)``
does the same for a run directory and writes ``metrics.csv`` (atomically), the per-example
correctness (``per_example.npz``) and the clean reliability bins (``reliability.csv``).

The runner knows no suite by name: it runs the chosen suites in their registered order
(``suites.register_suite(..., order=...)``), handing each the same :class:`SuiteContext`, and
adds the logits every finished suite left behind to ``ctx.shifted_logits`` for the suites after
it (calibration).

Under ``torchrun --nproc_per_node N -m robustbench_mm evaluate RUN``, each process attacks
every N-th batch of every attack (the attacks are nearly all of an evaluation's time), the
per-example results are gathered on every process, the other suites run in each process, and
rank 0 writes. The numbers are those of one process (see ``attacks.driver.batch_generator``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from robustbench_mm.core import distributed
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.inference import evaluating, model_device, predict_logits, resolve_device, torch_threads
from robustbench_mm.core.results import Evaluation, frame
from robustbench_mm.data.cards import card_for, threat_of
from robustbench_mm.data.datasets import DatasetSplits, load_dataset, stratified_subset, to_float
from robustbench_mm.data.splits import training_split
from robustbench_mm.evaluation.catalog import default_suites, ordered_suites
from robustbench_mm.evaluation.interface import Suite, SuiteContext, derived, refreshed
from robustbench_mm.evaluation.modelcheck import check_arguments, check_output
from robustbench_mm.settings import EvalConfig, TrainConfig
from robustbench_mm.store.rundir import RunDir, model_digest


def check_suites(suites: Sequence[str]) -> list[str]:
    """The named suites in running order, duplicates dropped (one-line UserError for an unknown
    name or an empty selection)."""
    return [suite.name for suite in ordered_suites(suites)]


def evaluate_details(
    model: nn.Module,
    dataset: str | DatasetSplits,
    suites: Sequence[str] | None = None,
    config: EvalConfig | None = None,
    *,
    identity: dict[str, Any] | None = None,
    holdout: tuple[torch.Tensor, torch.Tensor] | None = None,
    shard: distributed.Dist | None = None,
    progress: str = "off",
    **overrides: Any,
) -> Evaluation:
    """Evaluate any model that takes [0, 1] NCHW images on ``dataset``'s test split.

    ``suites`` defaults to every default suite (``catalog.default_suites()``: clean, adversarial,
    deformation, corruption, representation, ood and calibration). Keyword ``overrides`` set
    :class:`EvalConfig` fields (``eps=[...]``, ``pgd_steps=20``, ...). ``holdout`` (images,
    labels) is used to fit the calibration temperature. Returns an :class:`Evaluation`: the
    results frame (``.metrics``), per-example results and reliability bins (:func:`evaluate`:
    the frame only). ``shard`` (every process of a torchrun job passes its own) splits the
    attacks' batches between the processes; every process gets the whole result.
    ``progress``: "bar", "lines" or "off" (see :mod:`.progress`).

    ``dataset`` is a name (``"mnist"``, ``"imagefolder:<path>"``: ``data_root=`` and
    ``download=`` say where its files are) or a loaded :class:`~robustbench_mm.data.datasets.DatasetSplits`.
    """
    check_arguments(model, dataset, DatasetSplits)
    config = _settings(config, suites, overrides)
    chosen = ordered_suites(config.suites or [])  # _settings fills in the default suites
    data = dataset if isinstance(dataset, DatasetSplits) else load_dataset(dataset, config.data_root, config.download)
    started = time.perf_counter()
    device = _device(config, model)
    with torch_threads(config.cpu_threads if device.type == "cpu" else None):
        evaluation = _evaluate(model, data, config, chosen, device, identity, holdout, shard, progress)
    evaluation.seconds = time.perf_counter() - started
    return evaluation


def evaluate(
    model: nn.Module,
    dataset: str | DatasetSplits,
    suites: Sequence[str] | None = None,
    config: EvalConfig | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """The results frame of :func:`evaluate_details` (same arguments): one row per
    (suite, test, severity, metric), the results schema."""
    return evaluate_details(model, dataset, suites, config, **kwargs).metrics


def _evaluate(model, data, config, chosen, device, identity, holdout, shard, progress) -> Evaluation:
    from robustbench_mm.attacks.session import AttackSession

    indices = test_indices(data, config)
    x, y = to_float(data.test_x[indices]), data.test_y[indices]
    identity = identity or {"run": "model", "dataset": data.name, "arch": type(model).__name__, "method": "", "seed": 0}

    model.to(device)
    with evaluating(model):
        with torch.no_grad():  # a tuple or dict output: one line, not an AttributeError deep in torch
            check_output(model(x[:2].to(device)))
        clean_logits = predict_logits(model, x, batch_size=config.batch_size or 1000)
        if clean_logits.ndim != 2 or clean_logits.shape[1] != data.num_classes:
            raise UserError(
                f"the model outputs shape {tuple(clean_logits.shape)}, expected (N, {data.num_classes}) for {data.name}"
            )
        if holdout is not None:
            holdout = (to_float(holdout[0]), holdout[1])
        ctx = SuiteContext(
            model=model,
            x=x,
            y=y,
            num_classes=data.num_classes,
            dataset=data.name,
            config=config,
            device=device,
            clean_logits=clean_logits,
            holdout=holdout,
            attacks=AttackSession(model, shard or distributed.Dist()),  # one per evaluation
            progress_mode=progress if shard is None or shard.main else "off",
            indices=indices,
            threat=threat_of(data),
        )
        evaluation = _run_suites(ctx, chosen, identity)
    evaluation.indices, evaluation.total, evaluation.threat = indices.numpy(), len(data.test_y), ctx.threat
    return evaluation


def _settings(config: EvalConfig | None, suites: Sequence[str] | None, overrides: dict[str, Any]) -> EvalConfig:
    """The evaluation settings: ``config`` (or the defaults) with the API's overrides, validated."""
    config = dataclasses.replace(config) if config is not None else EvalConfig()
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise UserError(f"unknown evaluation setting {key!r}")
        setattr(config, key, value)
    if suites is not None:
        config.suites = [suites] if isinstance(suites, str) else list(suites)
    config.validate()
    if config.suites is None:
        config.suites = default_suites()
    return config


def _device(config: EvalConfig, model: nn.Module) -> torch.device:
    """The configured device; ``auto``: the model's, or CUDA when the model is on the CPU and a GPU exists."""
    device = resolve_device(config.device) if config.device != "auto" else model_device(model)
    if config.device == "auto" and device.type == "cpu" and torch.cuda.is_available():
        device = torch.device("cuda")
    return device


def test_indices(data: DatasetSplits, config: EvalConfig) -> torch.Tensor:
    """Which test examples an evaluation uses: all, or ``n_test`` of them, class-stratified and
    drawn with the evaluation's seed (the dataset's default count when ``n_test`` is None)."""
    n = len(data.test_y)
    if n == 0:
        raise UserError(f"dataset {data.name} has an empty test split")
    wanted = card_for(data.profile).n_test if config.n_test is None else config.n_test
    if not wanted or wanted >= n:
        return torch.arange(n)
    return stratified_subset(data.test_y, wanted, config.seed)


def _run_suites(ctx: SuiteContext, suites: list[Suite], identity: dict[str, Any]) -> Evaluation:
    """Run ``suites`` in order; each later suite sees the logits the earlier ones left behind."""
    rows: list[dict] = []
    per_example: dict = {}
    reliability = None
    tables: dict[str, pd.DataFrame] = {}
    overall = (
        ctx.progress(len(suites), "suites", unit="suite") if len(suites) > 1 and ctx.progress_mode == "lines" else None
    )
    seconds: dict[str, float] = {}
    for suite in suites:
        started = time.perf_counter()
        output = suite.run(ctx)
        seconds[suite.name] = round(time.perf_counter() - started, 2)
        if overall is not None:
            overall.update(1, f"{suite.name} done")
        rows += output.rows
        per_example.update(output.per_example)
        ctx.shifted_logits.update(output.logits)
        if output.reliability is not None:
            reliability = _with_identity(output.reliability, identity)
        tables.update({name: _with_identity(table, identity) for name, table in output.tables.items()})
    return Evaluation(frame(rows, identity), per_example, reliability, tables=tables, suite_seconds=seconds)


def _with_identity(table: pd.DataFrame, identity: dict[str, Any]) -> pd.DataFrame:
    table = table.copy()
    for key in ("run", "method", "seed"):
        table.insert(0, key, identity[key])
    return table


def check_run(run_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The run directory's model and its metadata, loaded and checked against config.toml
    (one-line UserError otherwise): ``mmbench evaluate A B`` loads every run before writing to
    any, and hands each loaded model to :func:`evaluate_run` (``loaded``), so it is read once."""
    return RunDir(run_dir).load_model()


def evaluate_run(
    run_dir: str | Path,
    suites: Sequence[str] | None = None,
    config: EvalConfig | None = None,
    *,
    data: DatasetSplits | None = None,
    write: bool = True,
    fresh: bool = False,
    reuse: bool = False,
    shard: distributed.Dist | None = None,
    progress: str = "off",
    loaded: tuple[torch.nn.Module, dict[str, Any]] | None = None,
) -> Evaluation:
    """Evaluate a run directory's model and publish the result into the run (under ``shard``:
    rank 0 writes). ``loaded``: the run's model and metadata as :func:`check_run` loaded them
    (then checked against the data here, not read again).

    Evaluations accumulate: the new rows replace the rows of the same (suite, test, severity,
    metric) and every other row stays (``fresh`` starts over). ``reuse``: when the run's stored
    evaluation already holds these settings' results for this very model, nothing is computed.
    Returns the run's evaluation as it now stands.
    """
    from robustbench_mm.store import accumulate

    run = RunDir(run_dir)
    train_cfg = run.trained_config()  # the model itself is loaded once, below, against the data
    config = _settings(config, suites, {})
    if data is None:
        data = load_dataset(train_cfg.dataset, config.data_root or train_cfg.data_root, config.download)
    if loaded is None:
        model, meta = run.load_model(data=data)
    else:
        model, meta = loaded
        run.check_model_fits(meta, data)
    holding = write and (shard is None or shard.main)
    with run.locked("mmbench evaluate") if holding else contextlib.nullcontext():
        stored = None if fresh else run.evaluation(same_model=False)  # another model's is dropped below
        done = accumulate.already_done(stored, run, config) if reuse else None
        if done is not None:
            return done
        evaluation = evaluate_details(
            model,
            data,
            None,
            config,
            identity=_identity(run, data, train_cfg),
            holdout=_holdout(data, train_cfg),
            shard=shard,
            progress=progress,
        )
        merged = accumulate.merge(stored, evaluation, model_digest(run.model_path), derive=derived, refresh=refreshed)
        if holding:
            accumulate.publish(run, merged, config)
    return merged


def _identity(run: RunDir, data: DatasetSplits, cfg: TrainConfig) -> dict[str, Any]:
    """Which run: config.toml's arch and method (its model.pt's too: :meth:`RunDir.load_model` checks)."""
    return {"run": run.name, "dataset": data.name, "arch": cfg.arch, "method": cfg.method, "seed": cfg.seed}


def _holdout(data: DatasetSplits, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The training examples the run held out for fitting the calibration temperature: drawn as
    training drew them, from config.toml's holdout fraction and seed."""
    _, holdout_idx = training_split(len(data.train_y), cfg.holdout_fraction, cfg.seed)
    return data.train_x[holdout_idx], data.train_y[holdout_idx]

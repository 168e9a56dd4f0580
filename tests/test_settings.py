"""Settings declared once: every setting reaches the flags, config.toml and --plan lines, and
comes back unchanged; validation gives one line naming the flag."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest

from robustbench_mm import cli
from robustbench_mm.app.pipeline import plan_commands
from robustbench_mm.core.errors import UserError
from robustbench_mm.methods import method_settings
from robustbench_mm.settings import EvalConfig, RunPlan, TrainConfig, settings_of
from robustbench_mm.store.rundir import RunDir

# A value other than the default for every setting a plan line must carry. A setting added
# without a value here fails test_every_setting_has_a_test_value: the plan test covers it then.
TRAIN_VALUES = dict(
    data_root="/tmp/nowhere",
    download=True,
    arch="torchvision:resnet18",
    mix_modules=["layer1", "layer2"],
    mix_loss="bce",
    epochs=3,
    batch_size=16,
    lr=0.02,
    weight_decay=0.001,
    momentum=0.8,
    nesterov=False,
    schedule="cosine",
    milestones=[1, 2],
    holdout_fraction=0.2,
    device="cpu",
    cpu_threads=2,
    amp="off",
    compile=True,
)
PLANNED = ("dataset", "method", "seed")  # the dataset is a fixture folder; method and seed come from the plan
METHOD_VALUES = dict(alpha=0.7, pairing="permute", mix_layers=[0, 1])
EVAL_VALUES = dict(
    suites=["clean", "adversarial", "corruption", "ood", "calibration"],
    attacks=["fgsm"],
    eps=[0.05],
    eps_l2=[0.5],
    pgd_steps=3,
    pgd_restarts=2,
    pgd_step_size=0.01,
    attack_precision="fp32",
    deformations="paper-full",
    corruptions=["fog"],
    severities=[2],
    cifar_c_root="/tmp/cifar-c",
    batch_size=7,
    seed=5,
    device="cpu",
    cpu_threads=2,
    data_root="/tmp/nowhere",
    download=True,
    n_test=9,
    n_bins=5,
    ood=["uniform"],
    ood_data_root="/tmp/outliers",
)


def test_every_setting_has_a_test_value():
    assert {s.name for s in settings_of(TrainConfig)} == set(TRAIN_VALUES) | set(PLANNED)
    assert {s.name for s in method_settings()} <= set(METHOD_VALUES) | {
        "prob",
        "smoothing",
        "at_eps",
        "at_steps",
        "beta",
    } | {
        "add_noise",
        "mult_noise",
        "augmix_width",
        "augmix_depth",
        "augmix_severity",
        "augmix_alpha",
        "augmix_ops",
        "jsd_weight",
    }
    assert {s.name for s in settings_of(EvalConfig)} == set(EVAL_VALUES)


def _folder(root: Path) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(4):
                Image.new("L", (8, 8), 30 * i + (100 if label == "b" else 0)).save(root / split / label / f"{i}.png")
    return root


def test_every_setting_survives_a_plan_line(tmp_path):
    """A --plan line, parsed back by the CLI, gives exactly the planned settings."""
    folder = _folder(tmp_path / "pets")
    train = TrainConfig(dataset=f"imagefolder:{folder}", **TRAIN_VALUES)
    train.method_options = dict(METHOD_VALUES)
    evaluate = EvalConfig(**EVAL_VALUES)
    plan = RunPlan(methods=["manifold-mixup"], seeds=[3], runs_dir=str(tmp_path / "my runs"), force=True)
    (line,) = plan_commands(plan, train, evaluate)
    train_part, evaluate_part = line.split(" && ")
    args = cli.build_parser().parse_args(shlex.split(train_part)[1:])
    options, parsed, _ = cli._settings(args)
    expected = dataclasses.replace(train, method="manifold-mixup", seed=3)
    expected.dataset = f"imagefolder:{folder.resolve()}"
    assert parsed == dataclasses.replace(expected, method_options=parsed.method_options)
    assert parsed.method_options == METHOD_VALUES
    assert options.out_dir == plan.runs_dir and options.force
    eval_args = cli.build_parser().parse_args(shlex.split(evaluate_part)[1:])
    assert cli.eval_config(eval_args) == evaluate
    assert eval_args.run_dirs == [str(Path(plan.runs_dir) / "imagefolder-pets-torchvision_resnet18-manifold-mixup-s3")]


def test_config_toml_round_trip(tmp_path):
    cfg = TrainConfig(dataset="digits", method="manifold-mixup", seed=7, **TRAIN_VALUES)
    cfg.method_options = dict(METHOD_VALUES)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config(cfg, {"train_images": 10})
    assert run.read_config() == cfg
    assert run.facts() == {"train_images": 10}


def test_old_config_layout_is_read(tmp_path):
    """config.toml of the first releases kept alpha/mix_layers/pairing and out_dir in [train]."""
    run = RunDir(tmp_path)
    run.config_path.write_text(
        '[train]\ndataset = "digits"\nmethod = "mixup"\nalpha = 1.0\npairing = "flip"\nout_dir = "runs"\nepochs = 3\n'
    )
    cfg = run.read_config()
    assert cfg.method == "mixup" and cfg.epochs == 3 and cfg.method_options == {"alpha": 1.0, "pairing": "flip"}


@pytest.mark.parametrize(
    "argv, phrase",
    [
        (["--seed", "4294967296"], "--seed must be <= 4294967295"),
        (["--seed", str(2**64)], "--seed must be <= 4294967295"),
        (["--seed", "1e23"], "--seed must be an integer, got '1e23'"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--holdout-fraction", "0.5"], "--holdout-fraction must be < 0.5"),
        (["--milestones", "5,2"], "--milestones must be increasing"),
        (["--mix-loss", "mse"], "unknown --mix-loss 'mse'; valid: ce, bce"),
        (["--alpha", "1"], "--alpha does not apply to method erm"),
        (["--method", "mixup", "--mix-layers", "1"], "--mix-layers does not apply to method mixup"),
    ],
)
def test_train_flags_are_validated_in_one_line(argv, phrase):
    with pytest.raises(UserError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        args = cli.build_parser().parse_args(["train", *argv])
        _, train, _ = cli._settings(args)
        from robustbench_mm.methods import create_method

        create_method(train.method, train.method_options, cli=True)


@pytest.mark.parametrize(
    "argv, phrase",
    [
        (["--bins", "1000000000"], "--bins must be <= 1000"),
        (["--eval-batch-size", "-1"], "--eval-batch-size must be >= 0"),
        (["--eps", "2"], "--eps must be <= 1"),
        (["--severities", "6"], "--severities must be <= 5"),
        (["--suite", ","], "--suite is empty"),
    ],
)
def test_eval_flags_are_validated_in_one_line(argv, phrase):
    with pytest.raises(UserError, match=phrase):
        cli.eval_config(cli.build_parser().parse_args(["evaluate", "runs/x", *argv]))


def test_repeated_values_are_dropped():
    args = cli.build_parser().parse_args(
        [
            "evaluate",
            "r",
            "--severities",
            "3,3",
            "--corruptions",
            "fog,fog",
            "--corruptions",
            "fog",
            "--eps",
            "0.1,0.05,0.1",
        ]
    )
    cfg = cli.eval_config(args)
    assert cfg.severities == [3] and cfg.corruptions == ["fog"] and cfg.eps == [0.05, 0.1]


def test_python_callers_get_python_names():
    with pytest.raises(UserError, match=r"^pgd_steps must be >= 1"):
        EvalConfig(pgd_steps=0).validate()
    with pytest.raises(UserError, match=r"^--pgd-steps must be >= 1"):
        EvalConfig(pgd_steps=0).validate(cli=True)


def test_presets_layer_under_flags():
    args = cli.build_parser().parse_args(
        ["run", "--preset", "table1-cifar10-preactresnet18", "--epochs", "30", "--alpha", "0.5", "--suite", "clean"]
    )
    plan, train, evaluate = cli._settings(args)
    assert train.epochs == 30 and train.milestones == [10, 20] and train.mix_loss == "bce"
    assert plan.seeds == [0, 1, 2, 3, 4] and plan.per_method["manifold-mixup"] == {"alpha": 2.0}
    assert train.method_options == {"alpha": 0.5} and evaluate.suites == ["clean"]

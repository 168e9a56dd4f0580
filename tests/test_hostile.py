"""Crafted files: model.pt metadata, checkpoint.pt contents, hostile text in reports.

The model.pt cases follow tests/test_bad_input.py's contract through the CLI (``cli.main``
in-process): exit status 2, one line on stderr, no traceback, no file changed. checkpoint.pt
is checked by :func:`checkpoint.validate_checkpoint` directly (the train loop calls it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_bad_input import AnyOf, check_bad_input

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip, clip_path
from robustbench_mm.store.checkpoint import read_model_file, restore_state, validate_checkpoint
from robustbench_mm.store.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
R = "runs/digits-cnn-erm-s0"
HOSTILE = "imagefolder:/tmp/<img src=x onerror=alert(1)>"


def _nested(depth: int) -> list:
    """A list nested ``depth`` deep whose two halves are the same object at every level:
    a few hundred bytes pickled, 2**depth leaves when printed."""
    level: list = ["leaf"]
    for _ in range(depth):
        level = [level, level]
    return level


@pytest.fixture
def ws(trained_runs, tmp_path, monkeypatch) -> Path:
    """A workspace with a copy of the trained erm run; the current directory for the command."""
    shutil.copytree(trained_runs["erm"], tmp_path / R)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _resave(ws: Path, drop: tuple[str, ...] = (), **changes) -> None:
    path = ws / R / "model.pt"
    payload = torch.load(path, weights_only=True)
    for key in drop:
        del payload[key]
    payload.update(changes)
    torch.save(payload, path)


MODEL_CASES = [
    # (id, changes, dropped keys, phrases)
    ("in-channels-text", {"in_channels": "3"}, (), ("in_channels must be an integer in [1, 4]", "'3'")),
    ("in-channels-zero", {"in_channels": 0}, (), ("in_channels must be an integer in [1, 4]",)),
    ("in-channels-bool", {"in_channels": True}, (), ("in_channels must be an integer",)),
    ("image-size-huge", {"image_size": 10**9}, (), ("image_size must be an integer in [1, 4096]",)),
    ("classes-text", {"classes": "0123456789"}, (), ("classes must be a list of 1 to",)),
    ("classes-ints", {"classes": list(range(10))}, (), ("classes[0] must be a text",)),
    ("classes-nested-60", {"classes": _nested(60)}, (), ("classes[0] must be a text", "[[[…]")),
    ("classes-empty", {"classes": []}, (), ("classes must be a list of 1 to",)),
    ("mean-text", {"mean": "0.3"}, (), ("mean must be a list",)),
    ("mean-nan", {"mean": [math.nan]}, (), ("mean[0] must be a number in [0, 1]", "nan")),
    ("mean-too-many", {"mean": [0.1, 0.2, 0.3]}, (), ("mean has 3 values for 1 channel",)),
    ("std-zero", {"std": [0.0]}, (), ("std[0] must be a number in (0, 1]",)),
    ("std-inf", {"std": [math.inf]}, (), ("std[0] must be a number",)),
    ("seed-text", {"seed": "0"}, (), ("seed must be an integer in [0, 4294967295]",)),
    ("seed-2-64", {"seed": 2**64}, (), ("seed must be an integer in [0, 4294967295]", "18446744073709551616")),
    ("seed-negative", {"seed": -1}, (), ("seed must be an integer",)),
    ("seed-huge-int", {"seed": 2**1000}, (), ("seed must be an integer", "<int of 1001 bits>")),
    ("holdout-text", {"holdout_fraction": "0.1"}, (), ("holdout_fraction must be a number in [0, 0.5)",)),
    ("holdout-too-big", {"holdout_fraction": 0.7}, (), ("holdout_fraction must be a number in [0, 0.5)",)),
    ("holdout-nan", {"holdout_fraction": math.nan}, (), ("holdout_fraction must be",)),
    ("holdout-seed-float", {"holdout_seed": 1.5}, (), ("holdout_seed must be an integer",)),
    ("epoch-text", {"epoch": "30"}, (), ("epoch must be an integer",)),
    ("alpha-negative", {"alpha": -1.0}, (), ("alpha must be a number in (0, 1e+06] or None",)),
    ("mix-layers-text", {"mix_layers": "0,1"}, (), ("mix_layers must be a list",)),
    ("test-accuracy-5", {"test_accuracy": 5.0}, (), ("test_accuracy must be a number in [0, 1]",)),
    ("arch-huge", {"arch": "c" * 10**6}, (), ("arch must be a printable text of 1 to 64 characters",)),
    ("arch-newline", {"arch": "cnn\nrm -rf"}, (), ("arch must be a printable text", r"\n")),
    ("arch-other", {"arch": "resnet9000"}, (), ("holds a resnet9000 model, expected cnn",)),
    ("dataset-int", {"dataset": 7}, (), ("dataset must be a text",)),
    ("method-missing", {}, ("method",), ("lacks metadata: method",)),
    ("seed-missing", {}, ("seed",), ("lacks metadata: seed",)),
    ("state-dict-list", {"state_dict": [1, 2]}, (), ("state_dict must be a dict of named tensors",)),
    (
        "state-dict-text-value",
        {"state_dict": {"head.weight": "zeros"}},
        (),
        ("state_dict['head.weight'] must be a tensor",),
    ),
    ("state-dict-dtype", {}, (), ("weights do not fit a cnn model", "torch.float64")),
    ("std-buffer-zero", {}, (), ("the weights' std buffer differs from the metadata's std",)),
    (
        "newer-format",
        {"format": "robustbench_mm.model/3", "version": "9.1.0"},
        (),
        ("written by robustbench_mm 9.1.0", "robustbench_mm.model/3", "upgrade"),
    ),
    (
        "newer-format-bad-version",
        {"format": "robustbench_mm.model/4", "version": _nested(30)},
        (),
        ("written by a newer robustbench_mm", "robustbench_mm.model/4"),
    ),
    ("older-format", {"format": "robustbench_mm.model/0"}, (), ("not a robustbench_mm model file",)),
    ("format-nested", {"format": _nested(60)}, (), ("not a robustbench_mm model file",)),
]


@pytest.mark.parametrize("case_id, changes, drop, phrases", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_bad_model_metadata_is_one_line(ws, capsys, case_id, changes, drop, phrases):
    state = torch.load(ws / R / "model.pt", weights_only=True)["state_dict"]
    if case_id == "state-dict-dtype":
        changes = {"state_dict": {k: v.double() if v.is_floating_point() else v for k, v in state.items()}}
    if case_id == "std-buffer-zero":  # metadata fine, but the model would divide by zero
        changes = {"state_dict": {**state, "std": torch.zeros_like(state["std"])}}
    _resave(ws, drop, **changes)
    line = check_bad_input(ws, capsys, ["evaluate", R, "--suite", "clean"], *phrases, "model.pt")
    assert len(line) < 400, line  # bounded whatever the file holds


def test_model_for_other_input_or_unknown_arch_is_refused(ws):
    from robustbench_mm.store.checkpoint import load_model

    with pytest.raises(UserError, match=r"takes 1-channel 8x8 images, the dataset has 3-channel 32x32 ones"):
        load_model(ws / R / "model.pt", expect_input=(3, 32))
    _resave(ws, arch="resnet9000")
    with pytest.raises(UserError, match=r"model.pt holds an unknown architecture 'resnet9000'; valid: cnn"):
        load_model(ws / R / "model.pt")


def test_nested_classes_are_refused_in_bounded_memory(ws):
    """The 60-deep shared list in a real subprocess whose address space is capped 1 GB above
    what it holds after imports: building the list's repr would exceed it at once."""
    _resave(ws, classes=_nested(60))
    script = (
        "import resource, sys\n"
        "from robustbench_mm.store.checkpoint import read_model_file\n"
        "from robustbench_mm.core.errors import UserError\n"
        "size = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30), resource.RLIM_INFINITY))\n"
        "try:\n    read_model_file(sys.argv[1])\nexcept UserError as exc:\n    print(exc)\n"
    )
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", script, str(ws / R / "model.pt")], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "classes[0] must be a text" in proc.stdout and len(proc.stdout) < 400, proc.stdout


def test_read_model_file_returns_only_checked_fields(ws):
    _resave(ws, extra=_nested(60), holdout_fraction=0)
    meta = read_model_file(ws / R / "model.pt")
    assert "extra" not in meta
    assert meta["holdout_fraction"] == 0.0 and isinstance(meta["holdout_fraction"], float)
    assert meta["seed"] == 0 and meta["classes"] == [str(c) for c in range(10)]


# ------------------------------------------------------------------------------ clip


class _Boom:
    def __repr__(self) -> str:
        raise AssertionError("repr called")

    __str__ = __repr__


def test_clip_is_bounded_and_never_calls_repr_on_what_it_shows():
    assert clip(_nested(60), 80).startswith("[[[[…], […]], [[…], […]]]")
    assert len(clip(_nested(60), 80)) <= 80
    assert clip(10**5000) == "<int of 16610 bits>"
    assert clip("x" * 10**7, 20) == "'" + "x" * 18 + "…"
    assert clip([_Boom(), {"a": _Boom()}]) == "[<_Boom>, {'a': <_Boom>}]"
    assert clip({"w": torch.zeros(3, 4)}) == "{'w': <Tensor 3x4 torch.float32>}"
    assert clip("a\nb") == "'a\\nb'"  # one line
    assert clip(list(range(1000)), 30).endswith("…") and len(clip(list(range(1000)), 30)) == 30
    assert clip_path("/tmp/a\nb/model.pt") == "/tmp/a\\nb/model.pt"
    long = "/d" * 1000 + "/model.pt"
    assert clip_path(long, 40).endswith("/model.pt") and len(clip_path(long, 40)) == 40


# ------------------------------------------------------------------------------ checkpoint.pt


@pytest.fixture(scope="module")
def checkpoint(trained_runs) -> tuple[dict, int]:
    """A real checkpoint.pt written by training, and the epochs its run was configured for."""
    payload = torch.load(trained_runs["erm"] / "checkpoint.pt", weights_only=True)
    return payload, RunDir(trained_runs["erm"]).read_config().recipe.epochs


def _rng(payload: dict, **changes) -> dict:
    return {**payload, "rng": {**payload["rng"], **changes}}


def _numpy_state(payload: dict, **changes) -> str:
    state = json.loads(payload["rng"]["numpy_global"])
    for index, value in changes.items():
        state[int(index[1:])] = value
    return json.dumps(state)


CHECKPOINT_CASES = [
    # (id, edit(payload) -> payload, phrases)
    ("not-a-dict", lambda p: [p], ("is not a training checkpoint",)),
    (
        "no-model",
        lambda p: {k: v for k, v in p.items() if k != "model"},
        ("not a complete training checkpoint: no model",),
    ),
    ("no-rng-no-log", lambda p: {k: v for k, v in p.items() if k not in ("rng", "log")}, ("no rng, log",)),
    ("epoch-text", lambda p: {**p, "epoch": "3"}, ("epoch must be an integer in [1,", "'3'")),
    ("epoch-negative", lambda p: {**p, "epoch": -2}, ("epoch must be an integer in [1,", "-2")),
    ("epoch-zero", lambda p: {**p, "epoch": 0}, ("epoch must be an integer",)),
    ("epoch-huge", lambda p: {**p, "epoch": 10**12}, ("epoch must be an integer in [1,", "the run is configured for")),
    ("epoch-bool", lambda p: {**p, "epoch": True}, ("epoch must be an integer",)),
    ("model-list", lambda p: {**p, "model": [1]}, ("model must be a dict of named tensors",)),
    ("model-text-value", lambda p: {**p, "model": {"head.weight": "x"}}, ("model['head.weight'] must be a tensor",)),
    ("optimizer-text", lambda p: {**p, "optimizer": "sgd"}, ("optimizer must be an optimizer state",)),
    (
        "optimizer-groups",
        lambda p: {**p, "optimizer": {"state": {}, "param_groups": [{"lr": 1}]}},
        ("optimizer['param_groups'][0]",),
    ),
    ("rng-not-dict", lambda p: {**p, "rng": 5}, ("rng must be a dict of RNG states",)),
    (
        "rng-missing-mix",
        lambda p: {**p, "rng": {k: v for k, v in p["rng"].items() if k != "mix"}},
        ("rng must be a dict with every RNG state", "no mix"),
    ),
    ("rng-torch-float", lambda p: _rng(p, torch=torch.zeros(5056)), ("rng['torch'] must be a torch generator state",)),
    (
        "rng-data-short",
        lambda p: _rng(p, data=torch.zeros(16, dtype=torch.uint8)),
        ("rng['data'] must be a state its generator accepts",),
    ),
    (
        "rng-augment-2d",
        lambda p: _rng(p, augment=torch.zeros(2, 5056, dtype=torch.uint8)),
        ("rng['augment'] must be a torch generator state",),
    ),
    (
        "rng-cuda-2d",
        lambda p: _rng(p, cuda=[torch.zeros(2, 2, dtype=torch.uint8)]),
        ("rng['cuda'][0] must be a torch generator state",),
    ),
    ("rng-cuda-text", lambda p: _rng(p, cuda="none"), ("rng['cuda'] must be a list",)),
    (
        "rng-numpy-not-json",
        lambda p: _rng(p, numpy_global="[1, 2"),
        ("rng['numpy_global'] must be numpy's global RNG state as JSON text",),
    ),
    (
        "rng-numpy-short-key",
        lambda p: _rng(p, numpy_global=json.dumps(["MT19937", {"__ndarray__": [1, 2], "dtype": "uint32"}, 0, 0, 0.0])),
        ("rng['numpy_global'] must be a list of 624 to 624",),
    ),
    (
        "rng-numpy-name",
        lambda p: _rng(p, numpy_global=_numpy_state(p, s0="PCG64")),
        ("rng['numpy_global'] must be a state its generator accepts",),
    ),
    (
        "rng-numpy-pos",
        lambda p: _rng(p, numpy_global=_numpy_state(p, s2=10**6)),
        ("rng['numpy_global'] must be an integer in [0, 624]",),
    ),
    (
        "rng-python-wrong",
        lambda p: _rng(p, python=json.dumps([3, [0] * 10, None])),
        ("rng['python'] must be a list of 625 to 625",),
    ),
    (
        "rng-python-position",
        lambda p: _rng(p, python=json.dumps([3, [0] * 624 + [9999], None])),
        ("rng['python'] must be a state its generator accepts",),
    ),
    (
        "rng-mix-other-generator",
        lambda p: _rng(p, mix=json.dumps({"bit_generator": "MT19937", "state": {}})),
        ("rng['mix'] must be a state its generator accepts",),
    ),
    (
        "rng-mix-deep",
        lambda p: _rng(p, mix="[" * 100_000 + "]" * 100_000),
        ("rng['mix'] must be a numpy bit generator state as JSON text",),
    ),
    (
        "log-not-json",
        lambda p: {**p, "log": "epoch 1: fine"},
        ("log must be a list of one dict per epoch as JSON text",),
    ),
    ("log-dict", lambda p: {**p, "log": json.dumps({"epoch": 1})}, ("log must be a list of one dict per epoch",)),
    (
        "log-ints",
        lambda p: {**p, "log": json.dumps(list(range(p["epoch"])))},
        ("log[0] must be a dict of numbers and texts",),
    ),
    (
        "log-short",
        lambda p: {**p, "log": json.dumps(json.loads(p["log"])[:-1])},
        ("log must be one row per epoch done",),
    ),
    (
        "log-nested-value",
        lambda p: {**p, "log": json.dumps([{"epoch": [1]}] * p["epoch"])},
        ("log[0] must be a dict of numbers and texts",),
    ),
    ("log-tensor", lambda p: {**p, "log": torch.zeros(3)}, ("log must be a list of one dict per epoch as JSON text",)),
    ("config-list", lambda p: {**p, "config": "[1]"}, ("config must be a dict of settings as JSON text",)),
]


@pytest.mark.parametrize("case_id, edit, phrases", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_bad_checkpoint_is_one_line_naming_file_and_field(checkpoint, case_id, edit, phrases):
    payload, epochs = checkpoint
    path = Path("runs/x/checkpoint.pt")
    with pytest.raises(UserError) as info:
        validate_checkpoint(edit(payload), path, epochs)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message and len(message) < 400, message
    for phrase in phrases:
        assert phrase in message, (phrase, message)


def test_good_checkpoint_passes_and_fits_its_model(checkpoint, trained_runs):
    from robustbench_mm.store.checkpoint import load_model

    payload, epochs = checkpoint
    assert validate_checkpoint(payload, Path("c.pt"), epochs, device="cpu") is payload
    model, _ = load_model(trained_runs["erm"] / "model.pt")
    restore_state(model, payload["model"], Path("c.pt"), "weights do not fit")
    with pytest.raises(UserError, match=r"^c.pt: weights do not fit \(.*size mismatch"):
        restore_state(model, {**payload["model"], "head.weight": torch.zeros(3, 3)}, Path("c.pt"), "weights do not fit")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(UserError, match=r"^c.pt: optimizer state does not fit"):
        restore_state(
            optimizer, {**payload["optimizer"], "param_groups": []}, Path("c.pt"), "optimizer state does not fit"
        )


# ------------------------------------------------------------------------------ report.md


@pytest.fixture(scope="module")
def hostile_report(trained_runs, digits, tmp_path_factory) -> str:
    """report.md over a run whose dataset is a path holding HTML (and whose name holds some)."""
    from robustbench_mm.evaluation.runner import evaluate_run
    from robustbench_mm.report import write_report
    from robustbench_mm.settings import EvalConfig

    root = tmp_path_factory.mktemp("hostile_report")
    run = root / "runs" / "x|<b>y"
    shutil.copytree(trained_runs["erm"], run)
    evaluate_run(run, config=EvalConfig(suites=["clean", "calibration"]), data=digits)
    metrics = pd.read_csv(run / "eval" / "metrics.csv")
    metrics.assign(dataset=HOSTILE).to_csv(run / "eval" / "metrics.csv", index=False)
    config = run / "config.toml"  # the run's own record must say the same, or the report refuses it
    config.write_text(config.read_text().replace('dataset = "digits"', f'dataset = "{HOSTILE}"', 1))
    write_report([run], root / "rep", plots=False)
    return (root / "rep" / "report.md").read_text()


def test_report_markdown_escapes_a_hostile_dataset_path(hostile_report):
    """report.md carries no tag, and our own **bold** and `code` are intact."""
    text = hostile_report
    assert "<" not in text and ">" not in text, [line for line in text.splitlines() if "<" in line or ">" in line]
    assert "# Manifold Mixup robustness report — imagefolder:/tmp/&lt;img src=x onerror=alert(1)&gt;, cnn" in text
    assert "- **Data**: `imagefolder:/tmp/`&lt;`img src=x onerror=alert(1)`&gt;" in text
    assert "- **Model**: `cnn`" in text


def test_report_markdown_renders_without_html_from_the_data(hostile_report):
    """The same report through a CommonMark renderer with raw HTML enabled."""
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(hostile_report)
    assert "<img" not in html and "<b>" not in html
    assert "<strong>Data</strong>" in html and "<code>cnn</code>" in html and "<table>" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.parametrize(
    "raw, cell, expected",
    [
        (
            "- **Data**: `digits` (test examples per run: 360)",
            False,
            "- **Data**: `digits` (test examples per run: 360)",
        ),
        ("**99.6 ± 0.4**", True, "**99.6 ± 0.4**"),
        ("-0.3 [-0.9, +0.4]", True, "-0.3 [-0.9, +0.4]"),
        ("a|b\nc", True, "a\\|b c"),
        ("[click](javascript:alert(1))", False, "[click\\](javascript:alert(1))"),
        ("\\<b> and \\`x`", False, "\\\\&lt;b&gt; and \\\\`x`"),  # a backslash is text, `x` a span
        ("`a|b`", True, "`a\\|b`"),
        ("``x`<y``", False, "`` x` ``&lt;``y``"),
        (
            "one\n\n[x]: javascript:1",
            False,
            "one\n\n[x]: javascript:1",
        ),  # md_text keeps lines; to_markdown drops blank ones
    ],
)
def test_md_text_escapes_what_is_not_ours(raw, cell, expected):
    from robustbench_mm.report.markup import md_text

    assert md_text(raw, cell=cell) == expected


def test_markdown_paragraph_cannot_start_a_new_block():
    from robustbench_mm.report.markup import Block, to_markdown

    text = to_markdown([Block("p", "- **Data**: x\n\n[x]: javascript:alert(1)\n\n<script>")])
    assert text == "- **Data**: x\n[x]: javascript:alert(1)\n&lt;script&gt;\n"
    fenced = to_markdown([Block("code", "a\n```\n<img src=x>")])
    assert fenced.startswith("````\n") and fenced.endswith("\n````\n")


# ------------------------------------------------------------------------------ corruption grid


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_corruption_grid_gets_the_usual_mode_and_shows_each_name_once(tmp_path, digits):
    from robustbench_mm.corruptions import corruption_grid_png
    from robustbench_mm.data.datasets import to_float

    x = to_float(digits.test_x[:1])
    old = os.umask(0o022)
    try:
        twice = corruption_grid_png(x, tmp_path / "twice.png", names=["fog", "fog", "pixelate"], severities=[1, 1, 3])
        once = corruption_grid_png(x, tmp_path / "once.png", names=["fog", "pixelate"], severities=[1, 3])
    finally:
        os.umask(old)
    assert twice.stat().st_mode & 0o777 == 0o644
    assert np.array_equal(_pixels(twice), _pixels(once))  # duplicates are drawn once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["once.png", "twice.png"]


@pytest.mark.parametrize(
    "names, phrase",
    [
        ([], "--corruptions is empty"),
        (["fog", " "], "must not be blank"),
        (["fog", ""], "must not be blank"),
        (["lava"], "unknown corruption 'lava'"),
    ],
)
def test_corruption_grid_names_are_checked_before_any_folder(tmp_path, names, phrase):
    from robustbench_mm.corruptions import corruption_grid_png, grid_names

    with pytest.raises(UserError, match=phrase):
        grid_names(names)
    with pytest.raises(UserError, match=phrase):
        corruption_grid_png(torch.rand(1, 1, 8, 8), tmp_path / "new" / "g.png", names=names)
    assert not (tmp_path / "new").exists()


def test_show_corruptions_with_no_names_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    check_bad_input(
        tmp_path,
        capsys,
        ["show-corruptions", "--out", "pics", "--corruptions", ","],
        AnyOf("--corruptions is empty", "is empty"),
    )
    assert not (tmp_path / "pics").exists()

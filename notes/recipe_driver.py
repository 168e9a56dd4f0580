"""Recipe experiments: train one model with given settings and append the outcome to a JSON-lines log.

The settings are ``mmbench train``'s flags (after ``--``; ``robustbench_mm.cli.train_settings``
reads them), preceded by this script's own ``key=value`` words:

  PYTHONPATH=$PWD OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python notes/recipe_driver.py tag=t1 -- \\
      --dataset imagefolder:/work/data/cifar10 --arch fast32 --method erm --epochs 10 --batch-size 256 --lr 0.2

``net=stem=32,w=64-128-256,res=101,scale=0.125`` registers a variant of the fast family under a new
name; ``crop=N`` / ``flip=0|1`` change the loader's augmentation; ``train_limit=N`` trains on the
first N images after a seeded shuffle; ``log=PATH`` (default notes/experiments.jsonl).
CPU time (process time: what the run would take on an idle core) and wall time are both logged.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time

import torch

from robustbench_mm.cli import train_settings
from robustbench_mm.data.datasets import load_dataset
from robustbench_mm.models.fast import fast_net
from robustbench_mm.models.registry import ARCHS
from robustbench_mm.store.rundir import RunDir
from robustbench_mm.training.loop import train

EXTRAS = {"net": None, "crop": None, "flip": None, "train_limit": None, "log": "notes/experiments.jsonl", "tag": ""}


def register_net(text: str) -> str:
    opts = dict(part.split("=") for part in text.split(","))
    widths = tuple(int(w) for w in opts["w"].split("-"))
    residual = tuple(c == "1" for c in opts.get("res", "000"))
    double = tuple(c == "1" for c in opts.get("dbl", "000"))
    stem, scale = int(opts.get("stem", 32)), float(opts.get("scale", 0.125))
    name = "x-" + text.replace(",", "_").replace("=", "").replace(".", "p")
    if name not in ARCHS:
        ARCHS.register(name)(
            lambda spec: fast_net(spec, stem=stem, widths=widths, double=double, residual=residual, head_scale=scale)
        )
    return name


def split_argv(argv: list[str]) -> tuple[dict, list[str]]:
    """(this script's key=value words, mmbench train's flags after ``--``)."""
    cut = argv.index("--") if "--" in argv else len(argv)
    extras = dict(EXTRAS)
    for word in argv[:cut]:
        key, _, value = word.partition("=")
        if key not in EXTRAS or not value:
            raise SystemExit(f"recipe_driver: expected key=value with key in {', '.join(EXTRAS)}, got {word[:60]!r}")
        extras[key] = value
    return extras, argv[cut + 1 :]


def main(argv: list[str]) -> None:
    extras, flags = split_argv(argv)
    _, cfg = train_settings(flags)
    torch.set_num_threads(1)
    data = load_dataset(cfg.dataset, cfg.data_root, progress=False)
    if extras["crop"] is not None:
        data = dataclasses.replace(data, crop_padding=int(extras["crop"]))
    if extras["flip"] is not None:
        data = dataclasses.replace(data, flip=bool(int(extras["flip"])))
    if extras["train_limit"]:
        keep = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(123))
        keep = keep[: int(extras["train_limit"])]
        data = dataclasses.replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep])
    if extras["net"]:
        cfg.arch = register_net(extras["net"])
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(
        cfg, out_dir=tempfile.mkdtemp(prefix="recipe-"), force=True, progress=False, data=data, log=lambda s: None
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    import pandas as pd

    log = pd.read_csv(result.run_dir / "train_log.csv")
    resolved = RunDir(result.run_dir).read_config()  # every per-dataset default filled in
    record = {
        "tag": extras["tag"],
        "dataset": cfg.dataset,
        "arch": extras["net"] or resolved.arch,
        **{
            k: getattr(resolved, k)
            for k in ("method", "epochs", "batch_size", "lr", "weight_decay", "schedule", "seed")
        },
        "crop": data.crop_padding,
        "flip": data.flip,
        "train_images": int(log.shape[0] and len(data.train_y)),
        "test_accuracy": round(result.test_accuracy, 4),
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
        "train_loss": log["loss"].round(4).tolist(),
        "train_acc": log["train_accuracy"].round(4).tolist(),
        "run_dir": str(result.run_dir),
    }
    with open(extras["log"], "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k not in ("train_loss",)}))


if __name__ == "__main__":
    main(sys.argv[1:])

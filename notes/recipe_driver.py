"""Recipe experiments: train one model with given settings and append the outcome to a JSON-lines log.

Run from the worktree root, one core, one thread, e.g.
  PYTHONPATH=$PWD OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python notes/recipe_driver.py \
      --dataset imagefolder:/work/data/cifar10 --arch fast32 --method erm --epochs 10 --batch-size 256 --lr 0.2
``--net stem=32,w=64-128-256,res=101,scale=0.125`` registers a variant of the fast family under a new name.
CPU time (process time: what the run would take on an idle core) and wall time are both logged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time

import torch

from robustbench_mm.data.datasets import load_dataset
from robustbench_mm.models.fast import fast_net
from robustbench_mm.models.registry import ARCHS
from robustbench_mm.settings import TrainConfig
from robustbench_mm.training.loop import train


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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root")
    p.add_argument("--arch")
    p.add_argument("--net")
    p.add_argument("--method", default="erm")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", default="trapezoid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop", type=int, default=None)
    p.add_argument("--flip", type=int, default=None)
    p.add_argument(
        "--train-limit", type=int, default=None, help="use the first N training images (after a seeded shuffle)"
    )
    p.add_argument("--log", default="notes/experiments.jsonl")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(args.dataset, args.data_root, progress=False)
    if args.crop is not None:
        data = dataclasses.replace(data, crop_padding=args.crop)
    if args.flip is not None:
        data = dataclasses.replace(data, flip=bool(args.flip))
    if args.train_limit:
        keep = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(123))[: args.train_limit]
        data = dataclasses.replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep])
    arch = register_net(args.net) if args.net else args.arch
    cfg = TrainConfig(
        dataset=args.dataset,
        data_root=args.data_root,
        arch=arch,
        method=args.method,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        seed=args.seed,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(
        cfg, out_dir=tempfile.mkdtemp(prefix="recipe-"), force=True, progress=False, data=data, log=lambda s: None
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    import pandas as pd

    log = pd.read_csv(result.run_dir / "train_log.csv")
    record = {
        "tag": args.tag,
        "dataset": args.dataset,
        "arch": args.net or arch,
        "method": args.method,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "schedule": args.schedule,
        "seed": args.seed,
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
    with open(args.log, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k not in ("train_loss",)}))


if __name__ == "__main__":
    sys.exit(main())

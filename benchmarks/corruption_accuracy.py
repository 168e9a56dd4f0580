"""Accuracy parity of our corruptions against make_cifar_c.py on real CIFAR-10 test images.

Used by ``compare_corruptions_reference.py --accuracy-run RUN --images DIR`` (see there and
``benchmarks/corruptions_reference.md``). For the 15 CIFAR-10-C corruptions and severities 1-5,
a trained model classifies the same clean test images corrupted (a) by ours and (b) by the
reference's functions (``--cifar-ref``), run in the reference venv with NumPy's global seed.
Both sides are quantised as the published CIFAR-10-C arrays (``np.uint8(float * 255)``).

Each corruption's random draws differ between the two sides, so even identical laws give
different per-image outcomes: the reference is run a second time with another seed, and the
"ref vs ref" column is the noise floor of the comparison at this number of images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from robustbench_mm.corruptions.common import CIFAR10_C

CIFAR_C_15 = list(CIFAR10_C[:15])  # the 15 benchmark corruptions (the published files' order)
TOLERANCE = 1.5  # accuracy points, mean over the five severities

ACC_HELPER = textwrap.dedent(
    r"""
    import importlib.util, json, os, sys, warnings
    warnings.simplefilter("ignore")
    import numpy as np
    import cv2
    cv2.setNumThreads(1)

    args = json.loads(sys.argv[1])
    spec = importlib.util.spec_from_file_location("make_cifar_c_ref", args["cifar_ref"])
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(args["cifar_ref"])))
    spec.loader.exec_module(mod)
    imgs = np.load(args["images"])
    for name in args["names"]:
        k = args["all_names"].index(name)
        out = np.empty((5,) + imgs.shape, np.uint8)
        for s in range(1, 6):
            np.random.seed(args["seed"] * 1000 + k * 10 + s)
            for i, im in enumerate(imgs):
                out[s - 1, i] = mod.corrupt(im, name, s)
        np.save(os.path.join(args["out"], name + ".npy"), out)
        print(f"[make_cifar_c seed {args['seed']}] {name}", file=sys.stderr, flush=True)
    """
)


def load_test_images(root: Path, n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The first n / #classes images (sorted names) of every class folder of ``root``."""
    from PIL import Image

    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    per = n // len(classes)
    imgs, labels = [], []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir())[:per]:
            imgs.append(np.asarray(Image.open(f).convert("RGB")))
            labels.append(label)
    return np.stack(imgs), np.array(labels), classes


def reference_outputs(python: str, cifar_ref: str, images: Path, names: list[str], seed: int, out: Path) -> None:
    helper = out / "acc_helper.py"
    helper.write_text(ACC_HELPER)
    args = {"cifar_ref": cifar_ref, "images": str(images), "names": names, "seed": seed, "out": str(out)}
    args["all_names"] = CIFAR_C_15  # a corruption's seed does not depend on which others run
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([python, str(helper), json.dumps(args)], env=env)
    if proc.returncode != 0:
        raise SystemExit(f"reference helper failed (exit {proc.returncode}); see stderr above")


def correct(model: torch.nn.Module, u8: np.ndarray, labels: torch.Tensor) -> np.ndarray:
    """Per-image 0/1 correctness of the model on uint8 (N, H, W, C) images."""
    from robustbench_mm.core.inference import predict_logits

    x = torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2).float().div(255)
    return (predict_logits(model, x, batch_size=500).argmax(1) == labels).numpy().astype(np.float64)


def run_parity(a, work: Path) -> dict:
    """Accuracy (%) per corruption and severity for ours, the reference and the reference again."""
    from robustbench_mm.store.checkpoint import load_model
    from robustbench_mm.store.rundir import RunDir

    torch.set_num_threads(1)
    imgs, labels_np, classes = load_test_images(Path(a.images), a.n_acc)
    if a.ref_cache:  # reference outputs kept between runs (same images, seed and reference file)
        work = Path(a.ref_cache) / f"n{len(imgs)}-seed{a.seed}"
        work.mkdir(parents=True, exist_ok=True)
    img_path = work / "clean.npy"
    if img_path.exists() and not np.array_equal(np.load(img_path), imgs):
        raise SystemExit(f"{work} holds reference outputs of other images")
    np.save(img_path, imgs)
    names = [n for n in CIFAR_C_15 if n in a.names] if a.names else CIFAR_C_15
    dirs = {"ref": work / "ref", "ref2": work / "ref2"}
    for i, d in enumerate(dirs.values()):
        d.mkdir(exist_ok=True)
        todo = [n for n in names if not (d / f"{n}.npy").exists()]
        if todo:
            reference_outputs(a.ref_python, a.cifar_ref, img_path, todo, a.seed + i, d)
    model, meta = load_model(RunDir(a.accuracy_run).model_path)
    if meta["classes"] != classes:
        raise SystemExit(f"the model's classes {meta['classes']} are not the image folder's {classes}")
    labels = torch.from_numpy(labels_np)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255)
    res: dict = {"n": len(imgs), "clean": 100 * correct(model, imgs, labels).mean(), "rows": {}}
    res["our_seeds"] = a.our_seeds
    gens = [torch.Generator().manual_seed(a.seed + 1000 * k) for k in range(a.our_seeds)]
    for name in names:
        ref_u8 = [np.load(d / f"{name}.npy") for d in dirs.values()]
        res["rows"][name] = _parity_row(model, x, imgs, labels, name, gens, ref_u8)
        print(f"[accuracy] {name}", file=sys.stderr, flush=True)
    res["meta"] = {k: meta.get(k) for k in ("arch", "dataset", "method")}
    return res


def _parity_row(model, x, imgs, labels, name: str, gens: list, ref_u8: list[np.ndarray]) -> dict:
    """One corruption: accuracies (%) averaged over our draws (``gens``) and the reference's two
    seeds, the reference's seeds separately, the paired standard error of the mean difference
    over severities, and mean |corrupted - clean| in uint8 levels."""
    from robustbench_mm.corruptions import corrupt

    row: dict = {k: [] for k in ("ours", "ref", "ref_seeds", "mad_ours", "mad_ref")}
    per_image = np.zeros(len(imgs))
    for s in range(1, 6):
        c_ours, mad = np.zeros(len(imgs)), 0.0
        for g in gens:
            y = corrupt(x, name, s, g).permute(0, 2, 3, 1).double().numpy()
            ours_u8 = np.floor(np.clip(y, 0, 1) * 255 + 1e-3).astype(np.uint8)  # np.uint8(float * 255)
            c_ours += correct(model, ours_u8, labels) / len(gens)
            mad += float(np.abs(ours_u8.astype(np.float64) - imgs).mean()) / len(gens)
        c_refs = [correct(model, r[s - 1], labels) for r in ref_u8]
        c_ref = np.mean(c_refs, 0)
        row["ours"].append(100 * c_ours.mean())
        row["ref"].append(100 * c_ref.mean())
        row["ref_seeds"].append([100 * c.mean() for c in c_refs])
        per_image += (c_ours - c_ref) / 5
        row["mad_ours"].append(mad)
        row["mad_ref"].append(float(np.mean([np.abs(r[s - 1].astype(np.float64) - imgs).mean() for r in ref_u8])))
    row["se"] = 100 * per_image.std() / len(imgs) ** 0.5  # standard error of the mean diff (paired)
    return row


def print_table(res: dict) -> None:
    print(
        f"\n## Accuracy parity vs make_cifar_c: {res['n']} CIFAR-10 test images, clean accuracy {res['clean']:.1f}%\n"
    )
    print(
        f"Cells: accuracy (%) ours (mean of {res['our_seeds']} draws) / make_cifar_c (mean of its 2 seeds); diff = ours"
    )
    print("- make_cifar_c (points); mean diff over severities 1-5 with its paired standard error; ref vs ref =")
    print("make_cifar_c seed 1 - seed 0, mean over severities (the scatter of single draws).\n")
    print("| corruption | s1 | s2 | s3 | s4 | s5 | diff s1..s5 | mean diff (s.e.) | ref vs ref | within +-1.5 |")
    print("|---|" + "---|" * 9)
    within = 0
    for name, r in res["rows"].items():
        diffs = [o - c for o, c in zip(r["ours"], r["ref"], strict=True)]
        mean = float(np.mean(diffs))
        noise = float(np.mean([b - a for a, b in r["ref_seeds"]]))
        ok = abs(mean) <= TOLERANCE
        within += ok
        cells = [f"{o:.1f} / {c:.1f}" for o, c in zip(r["ours"], r["ref"], strict=True)]
        cells += [" ".join(f"{d:+.1f}" for d in diffs), f"**{mean:+.2f}** ({r['se']:.2f})", f"{noise:+.2f}"]
        print(f"| {name} | " + " | ".join(cells) + f" | {'yes' if ok else 'NO'} |")
    means = [np.mean(r["ours"]) - np.mean(r["ref"]) for r in res["rows"].values()]
    print(f"\n{within} of {len(res['rows'])} within +-{TOLERANCE} points (mean over severities).")
    print(
        f"Mean corruption accuracy: ours {np.mean([np.mean(r['ours']) for r in res['rows'].values()]):.2f}%, ", end=""
    )
    print(
        f"make_cifar_c {np.mean([np.mean(r['ref']) for r in res['rows'].values()]):.2f}% (diff {np.mean(means):+.2f})."
    )
    print("\nMean |corrupted - clean| (uint8 levels) on the same images, ours / make_cifar_c:\n")
    print("| corruption | s1 | s2 | s3 | s4 | s5 |\n|---|---|---|---|---|---|")
    for name, r in res["rows"].items():
        pairs = zip(r["mad_ours"], r["mad_ref"], strict=True)
        print(f"| {name} | " + " | ".join(f"{o:.2f} / {c:.2f}" for o, c in pairs) + " |")

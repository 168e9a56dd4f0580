"""Compare ``robustbench_mm.corruptions`` with the reference implementations (speed + statistics).

Not a test and not a project dependency: the references run in a separate, throwaway virtual
environment through a subprocess, fed ``.npy`` files. Results: ``benchmarks/corruptions_reference.md``.

References
----------
* ``imagecorruptions`` (PyPI; the per-image ``corrupt(image, corruption_name=..., severity=s)``
  that users know). It uses ImageNet-sized parameter tables, so its statistics are *not*
  expected to match our CIFAR tables; it is the speed reference.
* Optional, ``--cifar-ref FILE``: a local copy of the corruption functions of
  hendrycks/robustness ``ImageNet-C/create_c/make_cifar_c.py`` (the code that made CIFAR-10-C,
  and the source of our tables) exposing ``corrupt(uint8 HxWx3, corruption_name, severity)``.
  It cannot be shipped here; see the .md for how it was made.

Making the reference environment (imagecorruptions 1.1.2 no longer imports on a current stack)::

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install 'numpy<2' 'setuptools<70' 'scikit-image<0.22' scipy \
        opencv-python-headless Pillow imagecorruptions Wand   # Wand only for --cifar-ref
    apt-get install libmagickwand-6.q16-6                     # ImageMagick, only for --cifar-ref

``pkg_resources`` comes from setuptools<70, NumPy<2 keeps ``np.float_``; the last breakage,
``skimage.filters.gaussian(multichannel=True)`` (removed in scikit-image 0.19), is shimmed at
run time by the helper (``multichannel=True`` -> ``channel_axis=-1``), so no source is patched.

Run (about 1-3 minutes on a 2-core CPU, depending on load)::

    .venv/bin/python benchmarks/compare_corruptions_reference.py --ref-python /tmp/refvenv/bin/python \
        [--cifar-ref /tmp/cifarref/make_cifar_c_ref.py] [--json out.json]

What is measured
----------------
(a) Speed at severity ``--severity`` (3): each reference called image by image on
    ``--n-loop`` (100) images per corruption, extrapolated to ``--n-batch`` (10,000), against
    our ``corrupt`` on one ``--n-batch`` x 3x32x32 batch. Both sides on one thread
    (torch.set_num_threads(1); OMP/OpenBLAS/MKL/OpenCV threads = 1 in the reference), each
    the best of ``--repeats`` (3) runs, after a warm-up call per corruption.
(b) Statistics for every corruption and severity 1..5 on the same ``--n-stats`` (256) clean
    images: the mean absolute pixel difference |corrupted - clean|, averaged over images,
    pixels and channels, in uint8 levels (0..255). Every output is quantised the way the
    references (and the published CIFAR-10-C arrays) store it, ``np.uint8(float * 255)``,
    i.e. truncation; ours gets +1e-3 level before truncating so float32 rounding of untouched
    pixels does not count as a change. Pixels cannot be compared (no shared random stream).

(c) Accuracy parity, ``--accuracy-run RUN --images DIR --cifar-ref FILE`` (only this part runs):
    a trained CIFAR-10 model (``RUN/model.pt``) classifies ``--n-acc`` (1000) real CIFAR-10 test
    images (the first of every class folder of ``DIR``, sorted) corrupted by ours and by
    make_cifar_c, for the 15 CIFAR-10-C corruptions and severities 1-5; the reference runs twice
    with different seeds to show the noise floor. See ``corruption_accuracy.py``.

Clean images: 32x32 crops of the colour photographs bundled with scikit-image (astronaut,
chelsea, coffee, rocket, ...), each photo first downscaled so its short side is 40..160 px:
CIFAR-like natural images available offline. Falls back to smooth random colour fields if the
photos are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
for _v in THREAD_VARS:
    os.environ.setdefault(_v, "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from robustbench_mm.corruptions import corrupt, corruption_names  # noqa: E402

# ----------------------------------------------------------------------------------------------
# The helper that runs inside the reference venv (written to a temp dir, run by its python).
# ----------------------------------------------------------------------------------------------
HELPER = textwrap.dedent(
    r'''
    import importlib.util, json, os, sys, time, warnings
    warnings.simplefilter("ignore")
    import numpy as np

    def shim_skimage():
        """imagecorruptions 1.1.2 calls gaussian(..., multichannel=True), removed in skimage 0.19."""
        import skimage.filters
        orig = skimage.filters.gaussian
        if getattr(orig, "_shimmed", False):
            return
        def gaussian(*a, **k):
            if "multichannel" in k:
                k["channel_axis"] = -1 if k.pop("multichannel") else None
            return orig(*a, **k)
        gaussian._shimmed = True
        skimage.filters.gaussian = gaussian

    def make_images(n, seed, out):
        from PIL import Image
        rng = np.random.default_rng(seed)
        photos = []
        try:
            import skimage
            d = os.path.join(os.path.dirname(skimage.__file__), "data")
            for f in ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                      "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "color.png", "logo.png"]:
                p = os.path.join(d, f)
                if os.path.exists(p):
                    im = Image.open(p).convert("RGB")
                    photos.append(im)
        except Exception as e:  # noqa: BLE001
            print("no skimage photos:", e, file=sys.stderr)
        imgs = np.empty((n, 32, 32, 3), np.uint8)
        if not photos:  # smooth random colour fields
            for i in range(n):
                small = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
                imgs[i] = np.asarray(Image.fromarray(small).resize((32, 32), Image.BILINEAR))
            np.save(out, imgs)
            return "smooth random colour fields"
        # a few fixed scales per photo, random crops of each
        scaled = []
        for im in photos:
            for short in (40, 56, 80, 112, 160):
                f = short / min(im.size)
                scaled.append(np.asarray(im.resize((max(32, round(im.size[0] * f)), max(32, round(im.size[1] * f))),
                                                   Image.LANCZOS)))
        for i in range(n):
            a = scaled[rng.integers(len(scaled))]
            y, x = rng.integers(a.shape[0] - 31), rng.integers(a.shape[1] - 31)
            imgs[i] = a[y:y + 32, x:x + 32]
        np.save(out, imgs)
        return f"32x32 crops of {len(photos)} scikit-image photos at 5 scales (short side 40..160 px)"

    def load_refs(cifar_ref):
        import cv2
        cv2.setNumThreads(1)
        refs, versions = {}, {}
        shim_skimage()
        import imagecorruptions
        from imagecorruptions import corrupt as ic_corrupt
        refs["imagecorruptions"] = lambda img, name, s: ic_corrupt(img, corruption_name=name, severity=s)
        if cifar_ref:
            spec = importlib.util.spec_from_file_location("make_cifar_c_ref", cifar_ref)
            mod = importlib.util.module_from_spec(spec)
            sys.path.insert(0, os.path.dirname(os.path.abspath(cifar_ref)))
            spec.loader.exec_module(mod)
            refs["make_cifar_c"] = lambda img, name, s: mod.corrupt(img, name, s)
        from importlib.metadata import version
        for pkg in ["imagecorruptions", "numpy", "scipy", "scikit-image", "opencv-python-headless",
                    "opencv-python", "Pillow", "setuptools", "Wand"]:
            try:
                versions[pkg] = version(pkg)
            except Exception:  # noqa: BLE001
                pass
        try:
            import wand.version
            versions["ImageMagick"] = wand.version.MAGICK_VERSION
        except Exception:  # noqa: BLE001
            pass
        versions["python"] = sys.version.split()[0]
        return refs, versions

    def run(args):
        imgs = np.load(args["images"])
        names = args["names"]
        refs, versions = load_refs(args.get("cifar_ref"))
        np.random.seed(args["seed"])
        out = {"versions": versions, "speed": {}, "stats": {}}
        for ref, fn in refs.items():
            speed, stats = {}, {}
            for name in names:
                fn(imgs[0], name, args["severity"]); fn(imgs[1], name, args["severity"])  # warm-up
                best = float("inf")
                for _ in range(args["repeats"]):
                    t0 = time.perf_counter()
                    for i in range(args["n_loop"]):
                        fn(imgs[i], name, args["severity"])
                    best = min(best, time.perf_counter() - t0)
                speed[name] = best / args["n_loop"]  # seconds per image
                clean = imgs[: args["n_stats"]].astype(np.float64)
                row = []
                for s in range(1, 6):
                    outs = np.stack([np.asarray(fn(im, name, s)) for im in imgs[: args["n_stats"]]])
                    row.append(float(np.abs(outs.astype(np.float64) - clean).mean()))
                stats[name] = row
                print(f"[{ref}] {name:18s} {speed[name] * 1e3:7.3f} ms/img  MAD " +
                      " ".join(f"{v:6.2f}" for v in row), file=sys.stderr, flush=True)
            out["speed"][ref], out["stats"][ref] = speed, stats
        return out

    if __name__ == "__main__":
        args = json.loads(sys.argv[1])
        if args["mode"] == "images":
            res = {"source": make_images(args["n"], args["seed"], args["out"])}
        else:
            res = run(args)
        with open(args["result"], "w") as fh:
            json.dump(res, fh)
    '''
)


def call_helper(python: str, helper: Path, args: dict, workdir: Path) -> dict:
    result = workdir / f"result_{args['mode']}.json"
    env = dict(os.environ, **{v: "1" for v in THREAD_VARS})
    proc = subprocess.run([python, str(helper), json.dumps({**args, "result": str(result)})], env=env)
    if proc.returncode != 0:
        raise SystemExit(f"reference helper failed (exit {proc.returncode}); see stderr above")
    return json.loads(result.read_text())


def ours(
    images_u8: np.ndarray, names: list[str], n_batch: int, n_stats: int, severity: int, repeats: int, seed: int
) -> tuple[dict, dict]:
    torch.set_num_threads(1)
    x_all = torch.from_numpy(images_u8).permute(0, 3, 1, 2).float().div(255).contiguous()
    x = x_all[:n_batch]
    speed: dict[str, float] = {}
    for name in names:
        corrupt(x[:2], name, severity, torch.Generator().manual_seed(seed))  # warm-up, caches
        best = float("inf")
        for r in range(repeats):
            g = torch.Generator().manual_seed(seed + r)
            t0 = time.perf_counter()
            corrupt(x, name, severity, g)
            best = min(best, time.perf_counter() - t0)
        speed[name] = best
        print(f"[ours] {name:18s} {best:7.3f} s for {n_batch} images", file=sys.stderr, flush=True)
    clean = x_all[:n_stats]
    clean_u8 = images_u8[:n_stats].astype(np.float64)
    stats: dict[str, list[float]] = {}
    g = torch.Generator().manual_seed(seed)
    for name in names:
        row = []
        for s in range(1, 6):
            y = corrupt(clean, name, s, g).permute(0, 2, 3, 1).double().numpy()
            y_u8 = np.floor(np.clip(y, 0, 1) * 255 + 1e-3)  # np.uint8(float * 255), as the references
            row.append(float(np.abs(y_u8 - clean_u8).mean()))
        stats[name] = row
    return speed, stats


def accuracy_parity(a: argparse.Namespace) -> None:
    """Accuracy of a trained model on ours vs make_cifar_c's corruptions (corruption_accuracy.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from corruption_accuracy import print_table, run_parity

    if not (a.cifar_ref and Path(a.cifar_ref).is_file() and a.images and Path(a.images).is_dir()):
        raise SystemExit("--accuracy-run needs --cifar-ref FILE and --images DIR")
    started, load = time.perf_counter(), {"start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="corrupt_acc_") as tmp:
        res = run_parity(a, Path(tmp))
    load["end"] = os.getloadavg()
    print_table(res)
    print(f"\nModel: {a.accuracy_run} {res['meta']}; torch {torch.__version__}, 1 thread")
    print(f"Wall time: {time.perf_counter() - started:.0f} s")
    print("Load average (1/5/15 min): " + "; ".join(f"{k} {v[0]:.2f} {v[1]:.2f} {v[2]:.2f}" for k, v in load.items()))
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "accuracy": res, "load_average": load}, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref-python", required=True, help="python of the venv with imagecorruptions")
    p.add_argument("--cifar-ref", default=None, help="local copy of make_cifar_c.py's functions (optional)")
    p.add_argument("--n-batch", type=int, default=10_000)
    p.add_argument("--n-loop", type=int, default=100)
    p.add_argument("--n-stats", type=int, default=256)
    p.add_argument("--severity", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write all numbers here")
    p.add_argument("--accuracy-run", default=None, help="run folder of a CIFAR-10 model: accuracy parity only")
    p.add_argument("--images", default=None, help="accuracy parity: CIFAR-10 test image folder (class sub-folders)")
    p.add_argument("--n-acc", type=int, default=1000, help="accuracy parity: test images (balanced over classes)")
    p.add_argument("--names", nargs="*", default=None, help="accuracy parity: only these corruptions")
    p.add_argument("--our-seeds", type=int, default=4, help="accuracy parity: our draws averaged per cell")
    p.add_argument("--ref-cache", default=None, help="accuracy parity: keep/reuse the reference outputs here")
    a = p.parse_args()
    if a.accuracy_run:
        accuracy_parity(a)
        return
    if a.cifar_ref and not Path(a.cifar_ref).is_file():
        print(f"--cifar-ref {a.cifar_ref} not found: skipping the make_cifar_c reference", file=sys.stderr)
        a.cifar_ref = None

    names = corruption_names()
    started = time.perf_counter()
    load = {"start": os.getloadavg()}  # other jobs on the machine slow both sides down
    with tempfile.TemporaryDirectory(prefix="corrupt_ref_") as tmp:
        work = Path(tmp)
        helper = work / "ref_helper.py"
        helper.write_text(HELPER)
        img_path = work / "clean.npy"
        n_img = max(a.n_batch, a.n_loop, a.n_stats)
        src = call_helper(
            a.ref_python, helper, {"mode": "images", "n": n_img, "seed": a.seed, "out": str(img_path)}, work
        )["source"]
        images = np.load(img_path)
        ref = call_helper(
            a.ref_python,
            helper,
            {
                "mode": "run",
                "images": str(img_path),
                "names": names,
                "severity": a.severity,
                "n_loop": a.n_loop,
                "n_stats": a.n_stats,
                "repeats": a.repeats,
                "seed": a.seed,
                "cifar_ref": a.cifar_ref,
            },
            work,
        )
    load["after references"] = os.getloadavg()
    our_speed, our_stats = ours(images, names, a.n_batch, a.n_stats, a.severity, a.repeats, a.seed)
    load["end"] = os.getloadavg()
    refs = list(ref["speed"])

    # ---- (a) speed ----
    print(f"\nClean images: {src}; {n_img} generated.")
    print(
        f"\n## Speed: severity {a.severity}, {a.n_batch} images 3x32x32, 1 thread "
        f"(reference: {a.n_loop} images/corruption, extrapolated; best of {a.repeats})\n"
    )
    head = "| corruption | ours batched (s) | " + " | ".join(f"{r} loop (s) | ratio" for r in refs) + " |"
    print(head)
    print("|" + "---|" * (2 + 2 * len(refs)))
    totals = {r: 0.0 for r in refs}
    for name in names:
        cells = [f"{our_speed[name]:.3f}"]
        for r in refs:
            t = ref["speed"][r][name] * a.n_batch
            totals[r] += t
            cells += [f"{t:.2f}", f"{t / our_speed[name]:.0f}x"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    our_total = sum(our_speed.values())
    cells = [f"**{our_total:.2f}**"]
    for r in refs:
        cells += [f"**{totals[r]:.1f}**", f"**{totals[r] / our_total:.1f}x**"]
    print("| **total (19)** | " + " | ".join(cells) + " |")
    for r in refs:
        ratio = totals[r] / our_total
        print(
            f"\nTotal: ours {our_total:.2f} s vs {r} per-image loop {totals[r]:.1f} s -> {ratio:.1f}x "
            f"({'meets' if ratio >= 50 else 'BELOW'} the 50x target)"
        )

    # ---- (b) statistics ----
    print(f"\n## Mean |corrupted - clean| in uint8 levels, {a.n_stats} images, severities 1..5\n")
    order = ["ours"] + ([r for r in ("make_cifar_c",) if r in refs]) + [r for r in refs if r != "make_cifar_c"]
    print(
        "cells: "
        + " / ".join(order)
        + ("; '!' = ours and make_cifar_c differ by more than 25% and 1 level" if "make_cifar_c" in refs else "")
    )
    print("\n| corruption | " + " | ".join(f"s{s}" for s in range(1, 6)) + " |")
    print("|---|" + "---|" * 5)
    all_stats = {"ours": our_stats, **ref["stats"]}
    for name in names:
        cells = []
        for s in range(5):
            vals = [all_stats[k][name][s] for k in order]
            flag = ""
            if "make_cifar_c" in refs:
                o, c = our_stats[name][s], ref["stats"]["make_cifar_c"][name][s]
                if abs(o - c) > max(1.0, 0.25 * max(o, c)):
                    flag = " !"
            cells.append(" / ".join(f"{v:.2f}" for v in vals) + flag)
        print(f"| {name} | " + " | ".join(cells) + " |")

    print(f"\nReference environment: {json.dumps(ref['versions'])}")
    print(
        f"Ours: torch {torch.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}, "
        f"{torch.get_num_threads()} torch thread(s), {os.cpu_count()} CPUs"
    )
    print(f"Wall time: {time.perf_counter() - started:.0f} s")
    print("Load average (1/5/15 min): " + "; ".join(f"{k} {v[0]:.2f} {v[1]:.2f} {v[2]:.2f}" for k, v in load.items()))
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {
                    "images": src,
                    "args": vars(a),
                    "versions_ref": ref["versions"],
                    "torch": torch.__version__,
                    "speed_ours_s": our_speed,
                    "speed_ref_s_per_image": ref["speed"],
                    "stats": all_stats,
                    "load_average": load,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()

"""How long ``cifar10_run.py`` should take on one H100/H200, written out as arithmetic.

Every rate below was measured on an NVIDIA H200 (torch 2.11) by ``run_all.py`` and is kept in
``results/h200-2026-11-26.json``, or is an assumption named as such. The estimate is for
the default work: PreActResNet18, 30 epochs, 3 methods x 2 seeds, bf16 training at batch 512,
every default suite on the 10,000 test images.

Evaluation is the uncertain part: no trained CIFAR-10 model had been evaluated on a GPU when
this was written, so its cost is built from pass counts (how many forward+backward passes of
the test set each attack makes once fooled examples leave the batch) and the measured
per-step attack rate. The script measures every phase and its ``--max-minutes`` stop keeps the
whole run inside the budget whatever the estimate says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# measured (run_all.py, H200, bf16 + channels_last, batch 512, data resident as uint8)
TRAIN_IMAGES_PER_S = {"erm": 44_421, "mixup": 46_157, "manifold-mixup": 42_548}
# measured: ours, PGD-10 with every example attacked at every step ("all rows"): 3,607 images/s
# x 10 steps, fp32, batch 1024
ATTACK_IMAGE_STEPS_PER_S = 36_070
# assumptions (not measured on a GPU yet)
INFER_IMAGES_PER_S = 80_000  # fp32 forward (TF32 convolutions): ~3x the fp32 training step's 22.7k
CHECKPOINT_S = 0.1  # per epoch: ~90 MB (weights + momentum) saved atomically, on tmpfs
RUN_FIXED_S = 3.0  # per training: model, placing data, test accuracy, model.pt
# Attack work per model in passes of the test set (forward + backward per example per step),
# once fooled examples leave the batch, for a ~93% clean non-robust model at 1, 2, 4, 8/255:
# FGSM 4 radii x 1.33 (step + verdict) = 5.3; PGD-L∞-10 at 4 radii ≈ 5.5 + 2.6 + 1.4 + 1.1;
# PGD-L2-10 at 0.25, 0.5 ≈ 5 + 3; Square, 50 forward-only queries on survivors ≈ 10;
# APGD-T (9 targets x 10 steps; the first target fools nearly all) ≈ 12; diagnostics ≈ 4.
ATTACK_PASSES = 50.0
ATTACK_LAUNCH_FLOOR_S = 6.0  # ~1,100 attack steps and ~500 Square queries at a few ms each
CORRUPTION_SETS = 19 * 5
CORRUPTION_OVERHEAD_S = 0.05  # per set: generating it on the GPU, copies to and from the host
OTHER_SUITES_S = 7.0  # clean, deformations (8 sets), calibration (~105 sets), representation, ood
EVAL_GPU_SHARE = 0.5  # assumption: half of an evaluation keeps the GPU busy; the rest is host work
STARTUP_S = 10.0  # imports, CUDA context, the evaluation worker
UNPACK_S = 8.0  # 60,000 JPEGs out of the tarball
DECODE_S = 15.0  # 60,000 JPEGs decoded (36 s on one core of the 2-core development VM)
REPORT_S = 15.0  # tables, figures, HTML


@dataclass
class Estimate:
    lines: list[str] = field(default_factory=list)
    train_s: dict[str, float] = field(default_factory=dict)  # per method, one training
    eval_s: float = 0.0  # one evaluation
    overlapped_s: float = 0.0  # evaluation in a second process while the next model trains
    sequential_s: float = 0.0  # run_benchmark: train, evaluate, train, ...

    def text(self) -> str:
        return "\n".join(self.lines)


def estimate(
    methods: list[str], seeds: list[int], epochs: int, batch: int, n_train: int, n_test: int, holdout: float = 0.1
) -> Estimate:
    """The expected wall time of the whole script on an H200, phase by phase, with the sums shown."""
    est = Estimate()
    say = est.lines.append
    kept = int(n_train * (1 - holdout))
    per_epoch = (kept // batch) * batch  # the training loop drops the last partial batch
    say("estimate for one H200 (rates measured by run_all.py; see cifar10_budget.py for each):")
    say(f"  training: {epochs} epochs x {per_epoch:,} images (of {kept:,}; batch {batch}) per run")
    for method in methods:
        rate = TRAIN_IMAGES_PER_S.get(method, min(TRAIN_IMAGES_PER_S.values()))
        steps = epochs * per_epoch / rate
        est.train_s[method] = steps + epochs * CHECKPOINT_S + RUN_FIXED_S
        say(
            f"    {method}: {epochs} x {per_epoch:,} / {rate:,} img/s = {steps:.1f} s + {epochs} x "
            f"{CHECKPOINT_S} s checkpoints + {RUN_FIXED_S:.0f} s = {est.train_s[method]:.1f} s"
        )
    train_total = len(seeds) * sum(est.train_s.values())
    say(
        f"    all {len(methods) * len(seeds)} trainings: {len(seeds)} x {sum(est.train_s.values()):.1f} = "
        f"{train_total:.0f} s"
    )
    attack = ATTACK_PASSES * n_test / ATTACK_IMAGE_STEPS_PER_S + ATTACK_LAUNCH_FLOOR_S
    corruption = CORRUPTION_SETS * (n_test / INFER_IMAGES_PER_S + CORRUPTION_OVERHEAD_S)
    est.eval_s = attack + corruption + OTHER_SUITES_S
    say(
        f"  evaluation per run ({n_test:,} test images): attacks {ATTACK_PASSES:.0f} passes x {n_test:,} / "
        f"{ATTACK_IMAGE_STEPS_PER_S:,} steps/s + {ATTACK_LAUNCH_FLOOR_S:.0f} s = {attack:.1f} s; corruptions "
        f"{CORRUPTION_SETS} x ({n_test:,} / {INFER_IMAGES_PER_S:,} + {CORRUPTION_OVERHEAD_S}) = {corruption:.1f} s; "
        f"other suites {OTHER_SUITES_S:.0f} s -> {est.eval_s:.1f} s"
    )
    runs = len(methods) * len(seeds)
    fixed = STARTUP_S + UNPACK_S + DECODE_S + REPORT_S
    say(
        f"  fixed: start {STARTUP_S:.0f} + unpack {UNPACK_S:.0f} + decode {DECODE_S:.0f} + report "
        f"{REPORT_S:.0f} = {fixed:.0f} s"
    )
    contention = (runs - 1) * EVAL_GPU_SHARE * est.eval_s
    est.overlapped_s = fixed + train_total + contention + est.eval_s
    est.sequential_s = fixed + train_total + runs * est.eval_s
    say(
        f"  overlapped (default; evaluation in a second process): {fixed:.0f} + {train_total:.0f} + "
        f"{runs - 1} x {EVAL_GPU_SHARE} x {est.eval_s:.1f} (GPU shared) + {est.eval_s:.1f} (last) = "
        f"{est.overlapped_s:.0f} s = {est.overlapped_s / 60:.1f} min"
    )
    say(
        f"  sequential (--sequential, run_benchmark): {fixed:.0f} + {train_total:.0f} + {runs} x "
        f"{est.eval_s:.1f} = {est.sequential_s:.0f} s = {est.sequential_s / 60:.1f} min"
    )
    return est

"""Common corruptions: contracts, defining properties, reference cross-checks, CIFAR-C loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustbench_mm.core.errors import UserError
from robustbench_mm.corruptions import (
    CORRUPTIONS,
    corrupt,
    corruption_grid_png,
    corruption_names,
    load_cifar_c,
)
from robustbench_mm.corruptions.common import CIFAR10_C

NAMES = corruption_names()
DETERMINISTIC = {
    "brightness",
    "contrast",
    "saturate",
    "pixelate",
    "jpeg_compression",
    "defocus_blur",
    "gaussian_blur",
    "zoom_blur",
}
BLURS = ["gaussian_blur", "defocus_blur", "zoom_blur", "motion_blur", "glass_blur"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These batches are tiny; on a busy 2-core machine OpenMP wake-ups cost more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int = 4, c: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Natural-ish test images: smooth colour gradients plus sharp rectangles, uint8-exact."""
    g = _gen(seed)
    x = F.interpolate(torch.rand(n, c, 4, 4, generator=g), size=(size, size), mode="bilinear", align_corners=False)
    for _ in range(3):
        r0, c0 = torch.randint(0, size - size // 4, (2,), generator=g).tolist()
        x[:, :, r0 : r0 + size // 4, c0 : c0 + size // 4] = torch.rand(n, c, 1, 1, generator=g)
    return (x * 255).round() / 255


def _hf_energy(x: torch.Tensor) -> float:
    """Mean squared response to a Laplacian: the high-frequency content a blur removes."""
    lap = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    return float(F.conv2d(x, lap, groups=x.shape[1]).pow(2).mean())


def test_names_and_registry() -> None:
    assert len(NAMES) == len(set(NAMES)) and set(NAMES) == set(CORRUPTIONS.names()) >= set(CIFAR10_C)
    # CIFAR-10-C's order first (15 benchmark corruptions, then its 4 extras), then any other
    assert NAMES[: len(CIFAR10_C)] == list(CIFAR10_C) and len(CIFAR10_C) == 19
    assert NAMES[:3] == ["gaussian_noise", "shot_noise", "impulse_noise"]
    assert NAMES[15:19] == ["speckle_noise", "gaussian_blur", "spatter", "saturate"]


@pytest.mark.parametrize("name", NAMES)
def test_contract_rgb_and_grey(name: str) -> None:
    for x in (_images(3, 3, 32), _images(3, 1, 8)):
        for severity in range(1, 6):
            y = corrupt(x, name, severity, _gen(7))
            assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
            assert float(y.min()) >= 0 and float(y.max()) <= 1 and torch.isfinite(y).all()
            assert torch.equal(y, corrupt(x, name, severity, _gen(7))), "same seed, same output"
    if name not in DETERMINISTIC:
        x = _images(3, 3, 32)
        assert not torch.equal(corrupt(x, name, 3, _gen(1)), corrupt(x, name, 3, _gen(2)))


@pytest.mark.parametrize("name", NAMES)
def test_the_input_is_never_modified(name: str) -> None:
    # off the 8-bit grid, so that an in-place x * 255 / 255 round trip would show
    for x in (torch.rand(2, 3, 16, 16, generator=_gen(1)), torch.rand(2, 1, 8, 8, generator=_gen(2))):
        before = x.clone()
        for severity in range(1, 6):
            corrupt(x, name, severity, _gen())
            assert torch.equal(x, before), severity


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_dtype_is_kept(dtype: torch.dtype) -> None:
    x = _images(2).to(dtype)
    for name in NAMES:
        y = corrupt(x, name, 4, _gen())
        assert y.dtype == dtype and float(y.min()) >= 0 and float(y.max()) <= 1, name


def test_gaussian_and_speckle_noise_std() -> None:
    x = torch.full((8, 3, 32, 32), 0.5)  # far from the clip at 0 and 1
    for severity, c in enumerate([0.04, 0.06, 0.08, 0.09, 0.10], start=1):
        assert float((corrupt(x, "gaussian_noise", severity, _gen()) - x).std()) == pytest.approx(c, rel=0.05)
    for severity, c in enumerate([0.06, 0.1, 0.12, 0.16, 0.2], start=1):
        assert float((corrupt(x, "speckle_noise", severity, _gen()) - x).std()) == pytest.approx(0.5 * c, rel=0.05)


def test_shot_and_impulse_noise_statistics() -> None:
    x = torch.full((8, 3, 32, 32), 0.5)
    for severity, c in enumerate([500, 250, 100, 75, 50], start=1):
        noise = corrupt(x, "shot_noise", severity, _gen()) - x
        assert float(noise.std()) == pytest.approx((0.5 / c) ** 0.5, rel=0.05)
    for severity, c in enumerate([0.01, 0.02, 0.03, 0.05, 0.07], start=1):
        y = corrupt(x, "impulse_noise", severity, _gen())
        hit = y != x
        assert float(hit.float().mean()) == pytest.approx(c, rel=0.15)
        assert set(y[hit].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("c", [500, 100, 50])
def test_poisson_sampler_matches_the_poisson_law(c: int) -> None:
    """shot_noise's table sampler: on the 8-bit grid (tables only), off it (plus the residual
    draw) and at the ends; counts are integers with Poisson's mean, variance and pmf."""
    from math import exp, lgamma, log

    from robustbench_mm.corruptions.noise import poisson_counts

    values = [0.0, 1 / 255, 0.3, 128 / 255, 77 * (1 / 255), 0.5, 200 / 255 + 1e-3, 1.0]
    x = torch.tensor(values).repeat_interleave(40_000)
    k = poisson_counts(x, c, _gen(5)).view(len(values), -1).double()
    assert torch.equal(k, k.round()) and float(k.min()) >= 0
    for v, row in zip(values, k, strict=True):
        lam = c * float(torch.tensor(v))  # the float32 rate
        se = (lam / row.numel()) ** 0.5
        assert abs(float(row.mean()) - lam) <= 5 * se + 1e-9, (v, lam)
        assert float(row.var()) == pytest.approx(lam, rel=0.05, abs=1e-9), (v, lam)
        if lam == 0:
            continue
        freq = torch.bincount(row.long()).double() / row.numel()
        pmf = torch.tensor([exp(j * log(lam) - lam - lgamma(j + 1)) for j in range(freq.numel())]).double()
        tol = 5 * (pmf * (1 - pmf) / row.numel()).sqrt() + 1e-4  # binomial error of each frequency
        assert bool(((freq - pmf).abs() <= tol).all()), (v, lam)


def test_poisson_sampler_grid_snapping_and_edges() -> None:
    """Rates that differ from an 8-bit level by float32 rounding use that level's table; rates
    that do not add a residual count; out-of-range values are clamped to [0, 1]."""
    from robustbench_mm.corruptions.noise import poisson_counts

    v = torch.arange(256, dtype=torch.float64)
    for x in ((v / 255).float(), (v.float() * (1 / 255)), v / 255):  # float32 two ways, float64
        a = poisson_counts(x.repeat(50), 100, _gen(3))
        b = poisson_counts((v / 255).float().repeat(50), 100, _gen(3))
        assert torch.equal(a.float(), b), "on-grid rates must not draw a residual"
    assert torch.equal(poisson_counts(torch.tensor([-0.5, 0.0]), 500, _gen()), torch.zeros(2))
    big = poisson_counts(torch.full((20_000,), 2.0), 50, _gen())
    assert float(big.mean()) == pytest.approx(50, abs=0.5)  # clamped to x = 1


def test_poisson_sampler_is_an_exact_inverse_cdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide table only picks where the search starts: any bin count gives the same draws."""
    import robustbench_mm.corruptions.noise as noise

    x = torch.rand(30_000, generator=_gen(9))
    x[:20_000] = (x[:20_000] * 255).round() / 255  # mostly on the 8-bit grid
    ref = noise.poisson_counts(x, 250, _gen(2))
    monkeypatch.setattr(noise, "_BINS", 8)
    noise._poisson_tables.cache_clear()
    try:
        assert torch.equal(noise.poisson_counts(x, 250, _gen(2)), ref)
    finally:
        noise._poisson_tables.cache_clear()


def _scipy_clipped_zoom(img: np.ndarray, zoom_factor: float) -> np.ndarray:
    """make_cifar_c.py's clipped_zoom, verbatim (square H x W x C images)."""
    from scipy.ndimage import zoom as scizoom

    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = scizoom(img[top : top + ch, top : top + ch], (zoom_factor, zoom_factor, 1), order=1)
    trim_top = (img.shape[0] - h) // 2
    return img[trim_top : trim_top + h, trim_top : trim_top + h]


def test_clipped_zoom_matrix_by_hand() -> None:
    """4 px zoomed by 1.25: crop ceil(4 / 1.25) = 4 px, resized corners-aligned to 5, first 4
    kept, so a ramp 0, 1, 2, 3 becomes 0, 0.75, 1.5, 2.25 (shifted, not centred); by 1.01 the
    crop is the whole axis and round(32 * 1.01) = 32, so 32 px are left untouched."""
    from robustbench_mm.corruptions import _util as U

    cpu = torch.device("cpu")
    ramp = torch.arange(4, dtype=torch.float64)
    torch.testing.assert_close(U.clipped_zoom_matrix(4, 1.25, cpu, torch.float64) @ ramp, ramp * 0.75)
    assert torch.equal(U.clipped_zoom_matrix(32, 1.01, cpu, torch.float64), torch.eye(32, dtype=torch.float64))


def test_clipped_zoom_matrix_matches_scipy() -> None:
    """Against the reference's scipy.ndimage.zoom code on random images of several sizes, for
    zoom blur's factors and snow's (1.25, 1.75, 2.25)."""
    pytest.importorskip("scipy")
    from robustbench_mm.corruptions import _util as U

    rng = np.random.default_rng(0)
    for n in (1, 3, 7, 32, 45):
        img = rng.random((n, n, 3))
        for z in [*np.arange(1, 1.26, 0.01), 1.25, 1.75, 2.25]:
            m = U.clipped_zoom_matrix(n, float(z), torch.device("cpu"), torch.float64).numpy()
            np.testing.assert_allclose(np.einsum("ij,jkc,lk->ilc", m, img, m), _scipy_clipped_zoom(img, z), atol=1e-12)


def test_zoom_blur_matches_the_reference_code() -> None:
    """zoom_blur = make_cifar_c.py's: the image plus its clipped zooms by np.arange(1, 1.06 ..
    1.26, 0.01) (7, 12, 16, 21, 26 of them: float rounding keeps the endpoint at severities
    1-2), averaged, in float32 as the reference."""
    pytest.importorskip("scipy")
    x = _images(2)
    for s, end in enumerate([1.06, 1.11, 1.16, 1.21, 1.26], start=1):
        zooms = np.arange(1, end, 0.01)
        assert len(zooms) == [7, 12, 16, 21, 26][s - 1]
        for i in range(2):
            img = x[i].permute(1, 2, 0).numpy().astype(np.float32)
            out = np.zeros_like(img)
            for z in zooms:
                out += _scipy_clipped_zoom(img, z)
            ref = np.clip((img + out) / (len(zooms) + 1), 0, 1)
            ours = corrupt(x[i : i + 1], "zoom_blur", s, _gen())[0].permute(1, 2, 0).numpy()
            np.testing.assert_allclose(ours, ref, atol=2e-6, rtol=0)


def test_frost_texture_has_the_reference_photos_statistics() -> None:
    """Crops of the reference's frost photographs (downscaled by 5) average (0.563, 0.647, 0.693)
    in RGB, vary by 0.088 within a crop and have a mean |neighbour difference| of 0.151 (both
    axes summed; measured over 10,000 crops). Our synthetic crops reproduce those numbers, and
    each photograph's colour appears."""
    from robustbench_mm.corruptions.weather import FROST_PHOTOS, frost_texture

    tex = frost_texture(2000, 3, 32, 32, _gen(), torch.empty(0, dtype=torch.float64))
    assert float(tex.min()) >= 0 and float(tex.max()) <= 1
    for got, want in zip(tex.mean((0, 2, 3)).tolist(), [0.563, 0.647, 0.693], strict=True):
        assert got == pytest.approx(want, abs=0.015)
    assert float(tex.std((2, 3)).mean()) == pytest.approx(0.088, abs=0.008)
    grad = (tex.diff(dim=2).abs().mean() + tex.diff(dim=3).abs().mean()).item()
    assert grad == pytest.approx(0.151, abs=0.012)
    means = tex.mean((2, 3))  # (n, 3): each crop's colour sits near one photograph's
    dist = torch.cdist(means, torch.tensor([p[0] for p in FROST_PHOTOS], dtype=means.dtype))
    counts = torch.bincount(dist.argmin(1), minlength=5)
    assert float(dist.min(1).values.max()) < 0.3 and int(counts[[0, 3, 4]].min()) > 250
    grey = frost_texture(64, 1, 8, 8, _gen(), torch.empty(0))
    assert grey.shape == (64, 1, 8, 8) and 0.5 < float(grey.mean()) < 0.8
    half = frost_texture(8, 3, 16, 16, _gen(), torch.empty(0), scale=0.5)
    torch.testing.assert_close(half, frost_texture(8, 3, 16, 16, _gen(), torch.empty(0)) * 0.5)


@pytest.mark.parametrize(
    "shape", [(6, 1, 32, 32), (3, 1, 8, 8), (4, 1, 40, 62), (4, 1, 7, 1), (2, 1, 1, 1), (3, 1, 70, 20), (2, 1, 16, 70)]
)
def test_spatter_distance_on_bit_masks_equals_the_max_pool_version(shape: tuple) -> None:
    from robustbench_mm.corruptions.weather import (
        _distance_to_edges,
        _distance_to_edges_bits,
        _distance_to_edges_maxpool,
    )

    g = _gen(sum(shape))
    masks = [(torch.rand(shape, generator=g) > p).float() for p in (0.02, 0.3, 0.7, 0.97)]
    masks += [torch.zeros(shape), torch.ones(shape)]
    for m in masks:
        ref = _distance_to_edges_maxpool(m)
        assert torch.equal(_distance_to_edges(m), ref)
        if shape[-1] <= 62:
            for cap in (0, 1, 3, 20):
                assert torch.equal(_distance_to_edges_bits(m, cap), _distance_to_edges_maxpool(m, cap))


def test_chunked_cpu_batches_equal_small_ones_and_leave_the_input_alone() -> None:
    x = _images(400, 3, 32)  # several chunks
    for name in ("contrast", "pixelate", "zoom_blur"):
        whole = corrupt(x, name, 3, _gen())
        assert torch.equal(whole[:7], corrupt(x[:7], name, 3, _gen()))
        assert torch.equal(whole[-5:], corrupt(x[-5:], name, 3, _gen()))
    wild = torch.linspace(-0.5, 1.5, 64).view(1, 1, 8, 8).repeat(300, 1, 1, 1)  # out of range, grey
    before = wild.clone()
    y = corrupt(wild, "saturate", 1, _gen())  # the identity on grey images
    assert torch.equal(wild, before) and torch.equal(y, before.clamp(0, 1))
    assert torch.equal(corrupt(wild[:2], "saturate", 1, _gen()), before[:2].clamp(0, 1))
    assert torch.equal(wild, before)
    half = corrupt(x.half(), "fog", 2, _gen())
    assert half.dtype == torch.float16 and half.shape == x.shape


@pytest.mark.parametrize("name", BLURS[:4])
def test_blurs_remove_high_frequencies_monotonically(name: str) -> None:
    x = _images(16)
    energy = [_hf_energy(x)] + [_hf_energy(corrupt(x, name, s, _gen())) for s in range(1, 6)]
    if name == "motion_blur":
        # the table's severities 3 and 4, (radius 6, sigma 2) and (8, 2), differ only in taps
        # beyond 3 sigma, so they blur alike in the reference too: non-increasing there
        assert energy[4] <= energy[3] * (1 + 1e-6)
        del energy[4]
    assert all(a > b for a, b in zip(energy, energy[1:], strict=False)), energy


@pytest.mark.parametrize("name", BLURS + ["elastic_transform"])
def test_blurs_and_warps_leave_a_flat_image_alone(name: str) -> None:
    x = torch.full((2, 3, 32, 32), 0.3)
    torch.testing.assert_close(corrupt(x, name, 5, _gen()), x, atol=2e-3, rtol=0)


def test_glass_blur_copies_from_up_left_neighbours() -> None:
    # Severity 1 (sigma 0.05 is a no-op blur) is one pass of the reference's copy sweep.
    x = _images(2)
    y = corrupt(x, "glass_blur", 1, _gen())
    shifted = [F.pad(x, (dx, 0, dy, 0))[..., :32, :32] for dy in (0, 1) for dx in (0, 1)]
    match = torch.stack([(y == s).all(1) for s in shifted]).any(0)
    assert match[:, 2:, 2:].all()
    assert torch.equal(y[..., :2, :], x[..., :2, :]) and torch.equal(y[..., :, :2], x[..., :, :2])


def test_motion_blur_is_a_one_sided_streak() -> None:
    x = torch.zeros(4, 1, 33, 33)
    x[..., 16, 16] = 1.0
    y = corrupt(x, "motion_blur", 5, _gen())
    assert torch.allclose(y.sum((1, 2, 3)), torch.ones(4), atol=1e-5)  # mass kept
    assert torch.all(y[..., 16, 16] == y.amax((1, 2, 3)))  # the dot itself keeps the most weight
    assert float(y[..., :, 17:].sum()) < 1e-6  # the streak trails to the left only (|angle| <= 45)


def test_brightness_contrast_saturate_directions() -> None:
    from matplotlib.colors import rgb_to_hsv

    x = _images(8) * 0.8
    sat = lambda t: float(rgb_to_hsv(t.permute(0, 2, 3, 1).numpy())[..., 1].mean())  # noqa: E731
    for s in range(1, 6):
        assert float(corrupt(x, "brightness", s, _gen()).mean()) > float(x.mean())
        assert float(corrupt(x, "contrast", s, _gen()).std((2, 3)).mean()) < float(x.std((2, 3)).mean())
        y = corrupt(x, "saturate", s, _gen())
        assert (sat(y) < sat(x)) if s <= 2 else (sat(y) > sat(x))
    g = _images(2, 1, 8)
    assert torch.equal(corrupt(g, "saturate", 5, _gen()), g)  # grey has no saturation


@pytest.mark.parametrize(
    "name,channel,table",
    [
        ("brightness", 2, [(1, 0.05), (1, 0.1), (1, 0.15), (1, 0.2), (1, 0.3)]),
        ("saturate", 1, [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)]),
    ],
)
def test_hsv_corruptions_match_an_hsv_round_trip(name: str, channel: int, table: list) -> None:
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv  # same conventions as skimage

    x = _images(4)
    x[0, :, :4, :4] = 0.4  # grey pixels: hue 0 by convention
    x[0, :, 4:8, :4] = 0.0  # black
    for s, (a, b) in enumerate(table, start=1):
        hsv = rgb_to_hsv(x.permute(0, 2, 3, 1).double().numpy())
        hsv[..., channel] = np.clip(hsv[..., channel] * a + b, 0, 1)
        ref = torch.from_numpy(hsv_to_rgb(hsv)).permute(0, 3, 1, 2).float()
        torch.testing.assert_close(corrupt(x, name, s, _gen()), ref, atol=1e-5, rtol=0)


def test_pixelate_matches_pil_box_and_leaves_blocks_constant() -> None:
    from PIL import Image

    x = _images(2)
    for s, c in enumerate([0.95, 0.9, 0.85, 0.75, 0.65], start=1):
        y = corrupt(x, "pixelate", s, _gen())
        small = int(32 * c)
        same_cols = torch.isclose(y[..., :, 1:], y[..., :, :-1]).all(2).all(1)
        assert bool((same_cols.sum(1) >= 32 - small).all())  # upsampled blocks are constant
        img = Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        ref = np.asarray(img.resize((small, small), Image.BOX).resize((32, 32), Image.BOX)) / 255
        assert np.abs(y[0].permute(1, 2, 0).numpy() - ref).max() <= 1.01 / 255  # PIL rounds to uint8


def test_gaussian_blur_matches_scipy() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = _images(2)
    for s, sigma in enumerate([0.4, 0.6, 0.7, 0.8, 1.0], start=1):
        ref = ndimage.gaussian_filter(x.double().numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)
        ours = corrupt(x, "gaussian_blur", s, _gen())
        torch.testing.assert_close(ours, torch.from_numpy(ref).float(), atol=1e-5, rtol=0)


def test_jpeg_changes_pixels_and_more_so_at_higher_severity() -> None:
    x = _images(4)
    errors = []
    for s in range(1, 6):
        y = corrupt(x, "jpeg_compression", s, _gen())
        assert not torch.equal(y, x)
        assert torch.allclose(y * 255, (y * 255).round(), atol=1e-3)  # decoded uint8
        errors.append(float((y - x).abs().mean()))
    assert errors[-1] > errors[0]


def test_weather_directions() -> None:
    x = _images(8) * 0.6
    for s in range(1, 6):
        fogged = corrupt(x, "fog", s, _gen())
        assert bool((fogged.amax((1, 2, 3)) <= x.amax((1, 2, 3)) + 1e-6).all())  # peak kept
        assert float(corrupt(x, "snow", s, _gen()).mean()) > float(x.mean())
        assert float(corrupt(x, "frost", s, _gen()).mean()) > float(x.mean()) - 0.05
    for s in (1, 2, 3):  # water only adds pale turquoise
        assert bool((corrupt(x, "spatter", s, _gen()) >= x - 1e-6).all())
    mud = corrupt(x, "spatter", 5, _gen())
    assert 0 < float((mud != x).float().mean()) < 0.5


@pytest.mark.parametrize("bad", [0, 6, 2.5, -1, True, "3", None])
def test_severity_outside_1_to_5_is_refused(bad: object) -> None:
    with pytest.raises(UserError, match=r"severity must be 1\.\.5"):
        corrupt(_images(1), "fog", bad, _gen())  # type: ignore[arg-type]


def test_unknown_name_and_bad_images_are_user_errors() -> None:
    with pytest.raises(UserError, match="gaussian_noise") as err:
        corrupt(_images(1), "rain", 1, _gen())
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="channels"):
        corrupt(torch.rand(1, 4, 8, 8), "fog", 1, _gen())
    with pytest.raises(UserError):
        corrupt(torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), "fog", 1, _gen())


# ---- CIFAR-C loader -------------------------------------------------------------------


def _write_cifar_c(root: Path, per: int = 4, h: int = 5, w: int = 6) -> Path:
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    data = np.zeros((5 * per, h, w, 3), dtype=np.uint8)
    for k in range(5):
        data[k * per : (k + 1) * per] = 10 * (k + 1)  # the value encodes the severity
    np.save(folder / "fog.npy", data)
    np.save(folder / "labels.npy", np.tile(np.arange(per, dtype=np.uint8), 5))
    return folder


def test_load_cifar_c_slices_the_severity(tmp_path: Path) -> None:
    _write_cifar_c(tmp_path)
    for s in range(1, 6):
        x, y = load_cifar_c(tmp_path, "cifar10", "fog", s)
        assert x.shape == (4, 3, 5, 6) and x.dtype == torch.float32
        assert torch.allclose(x, torch.full_like(x, 10 * s / 255))
        assert y.dtype == torch.long and y.tolist() == [0, 1, 2, 3]


def test_load_cifar_c_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="CIFAR-10-C"):
        load_cifar_c(tmp_path, "cifar10", "fog", 1)
    folder = _write_cifar_c(tmp_path)
    with pytest.raises(UserError, match=str(folder / "snow.npy").replace("\\", "\\\\")):
        load_cifar_c(tmp_path, "cifar10", "snow", 1)
    with pytest.raises(UserError, match="cifar10, cifar100"):
        load_cifar_c(tmp_path, "svhn", "fog", 1)
    with pytest.raises(UserError, match=r"severity must be 1\.\.5"):
        load_cifar_c(tmp_path, "cifar10", "fog", 6)
    np.save(folder / "snow.npy", np.zeros((7, 5, 6, 3), dtype=np.uint8))
    with pytest.raises(UserError, match="snow.npy"):
        load_cifar_c(tmp_path, "cifar10", "snow", 1)
    np.save(folder / "labels.npy", np.zeros(3, dtype=np.uint8))
    with pytest.raises(UserError, match="labels.npy"):
        load_cifar_c(tmp_path, "cifar10", "fog", 1)


def test_corruption_grid_png_is_written_atomically(tmp_path: Path) -> None:
    out = corruption_grid_png(_images(2), tmp_path / "figs" / "grid.png", names=["fog", "pixelate"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["grid.png"]  # no temp file left
    with pytest.raises(UserError):
        corruption_grid_png(_images(1), tmp_path / "bad.png", names=["rain"])
    assert not (tmp_path / "bad.png").exists()


def test_big_cpu_batches_are_chunked_but_deterministic() -> None:
    x = _images(400, 3, 32)  # > one 2 MB chunk
    for name in ("gaussian_noise", "glass_blur", "fog"):
        a, b = corrupt(x, name, 2, _gen(3)), corrupt(x, name, 2, _gen(3))
        assert torch.equal(a, b) and a.shape == x.shape
    assert corrupt(x[:0], "fog", 1, _gen()).shape == (0, 3, 32, 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_images_with_cpu_or_cuda_generators(name: str) -> None:
    x = _images(3).cuda()
    for make in (lambda: torch.Generator().manual_seed(4), lambda: torch.Generator("cuda").manual_seed(4)):
        y = corrupt(x, name, 5, make())
        assert y.is_cuda and y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0 and float(y.max()) <= 1
        assert torch.equal(y, corrupt(x, name, 5, make()))
    if name in DETERMINISTIC:
        torch.testing.assert_close(y.cpu(), corrupt(x.cpu(), name, 5, _gen()), atol=1e-4, rtol=0)


@pytest.mark.parametrize("size", [1, 2, 3])
def test_every_corruption_takes_images_of_a_few_pixels(size: int) -> None:
    """The family of tiny images (an image folder of 1x1 .. 3x3 trains with --arch mlp): every
    corruption at every severity keeps the shape and stays finite in [0, 1] (elastic_transform's
    affine anchors once coincided below 3 px: a singular matrix)."""
    x = torch.rand(4, 3, size, size, generator=_gen(1))
    for name in CORRUPTIONS.names():
        for severity in range(1, 6):
            y = corrupt(x, name, severity, _gen())
            assert y.shape == x.shape and bool(torch.isfinite(y).all()), (name, severity)
            assert float(y.min()) >= 0 and float(y.max()) <= 1, (name, severity)

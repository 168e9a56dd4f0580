"""Geometry and contracts of the Manifold Mixup paper's deformations (rotate, shear, zoom)."""

from __future__ import annotations

import math

import pytest
import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.corruptions import DEFORMATIONS, deform, deformation_grid, rotate_by, shear_by, zoom_by


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _blank(size: int = 33, channels: int = 1) -> torch.Tensor:
    return torch.zeros(1, channels, size, size)


def test_rotate_90_moves_top_left_square_to_bottom_left() -> None:
    # 33x33: the centre is pixel 16, so a quarter turn maps pixel centres onto pixel centres.
    x = _blank()
    x[..., 4:13, 4:13] = 1.0
    expected = _blank()
    expected[..., 20:29, 4:13] = 1.0  # counter-clockwise on screen: top-left -> bottom-left
    torch.testing.assert_close(rotate_by(x, 90.0), expected, atol=1e-4, rtol=0)


def test_rotate_45_turns_square_into_diamond() -> None:
    x = _blank()
    x[..., 10:23, 10:23] = 1.0  # centred square, corners 6.5 * sqrt(2) = 9.2 px from the centre
    y = rotate_by(x, 45.0)[0, 0]
    assert y[16, 16 + 8] > 0.99 and y[16 - 8, 16] > 0.99  # corners now lie on the axes
    assert y[10, 10] < 1e-3 and y[22, 22] < 1e-3  # the old corners are empty
    assert abs(float(y.sum()) - 13 * 13) < 3  # area is kept (up to resampling at the rim)


def test_rotate_180_of_non_square_image_is_a_double_flip() -> None:
    x = torch.rand(2, 3, 10, 16)
    torch.testing.assert_close(rotate_by(x, 180.0), x.flip(-2, -1), atol=1e-5, rtol=0)


def test_zoom_out_200_maps_block_to_expected_place() -> None:
    x = torch.zeros(1, 1, 32, 32)
    x[..., 4:8, 12:16] = 1.0  # input rows 4-7, cols 12-15
    y = zoom_by(x, 2.0)
    expected = torch.zeros(1, 1, 32, 32)
    expected[..., 10:12, 14:16] = 1.0  # out = 8 + in / 2, each output = mean of a 2x2 block
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=0)


def test_zoom_out_shrinks_image_into_black_frame() -> None:
    x = torch.ones(1, 3, 32, 32)
    y = deform(x, "zoom-out", 200, _gen())
    assert torch.all(y[..., 8:24, 8:24] == 1) and float(y.sum()) == pytest.approx(3 * 16 * 16)


def test_zoom_in_50_samples_the_centre_half() -> None:
    ramp = torch.arange(32.0).div(31).view(1, 1, 1, 32).expand(1, 1, 32, 32)
    y = deform(ramp, "zoom-in", 50, _gen())
    # output column j samples input column 7.75 + j / 2 (bilinear is exact on a ramp)
    torch.testing.assert_close(y[0, 0, 5], (7.75 + torch.arange(32.0) / 2) / 31, atol=1e-6, rtol=0)


def test_shear_moves_a_pixel_as_documented() -> None:
    # tan-free Keras matrix: a content point (x, y) goes to (x + tan t * y, y / cos t).
    t = math.degrees(math.atan2(3, 4))  # sin t = 0.6, cos t = 0.8: lands on a pixel centre
    x = _blank()
    x[0, 0, 16 + 4, 16] = 1.0  # y = +4 below the centre
    assert (shear_by(x, t)[0, 0] > 0.999).nonzero().tolist() == [[16 + 5, 16 + 3]]
    assert (shear_by(x, -t)[0, 0] > 0.999).nonzero().tolist() == [[16 + 5, 16 - 3]]


def test_shear_is_defined_past_90_degrees() -> None:
    x = torch.rand(2, 1, 9, 9)
    torch.testing.assert_close(shear_by(x, 180.0), x.flip(-2), atol=1e-5, rtol=0)
    y = deform(x, "shear", 143.2, _gen())
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


def test_per_example_parameters_accept_tensors() -> None:
    x = torch.rand(3, 1, 17, 17)
    y = rotate_by(x, torch.tensor([0.0, 90.0, 0.0]))
    torch.testing.assert_close(y[0], x[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1:2], rotate_by(x[1:2], 90.0))


@pytest.mark.parametrize("name,severity", [("rotate", 40), ("shear", 57.3)])
def test_same_seed_same_output_and_seeds_differ(name: str, severity: float) -> None:
    x = torch.rand(6, 3, 16, 16)
    a, b = deform(x, name, severity, _gen(1)), deform(x, name, severity, _gen(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, deform(x, name, severity, _gen(2)))
    same = x[:1].expand(4, -1, -1, -1)
    out = deform(same, name, severity, _gen(3))
    assert not torch.equal(out[0], out[1])  # one random angle per example


@pytest.mark.parametrize("name,severity", deformation_grid("paper-full"))
def test_every_grid_point_keeps_shape_dtype_and_range(name: str, severity: float) -> None:
    for dtype in (torch.float32, torch.float64, torch.float16):
        x = torch.rand(2, 3, 12, 12).to(dtype)
        y = deform(x, name, severity, _gen())
        assert y.shape == x.shape and y.dtype == dtype
        assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_zooms_ignore_the_seed() -> None:
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(deform(x, "zoom-in", 60, _gen(1)), deform(x, "zoom-in", 60, _gen(2)))


def test_paper_grids() -> None:
    assert deformation_grid("paper") == [
        ("rotate", 20),
        ("rotate", 40),
        ("shear", 28.6),
        ("shear", 57.3),
        ("zoom-in", 60),
        ("zoom-in", 80),
        ("zoom-out", 120),
        ("zoom-out", 140),
    ]
    full = deformation_grid("paper-full")
    assert len(full) == 16 and set(deformation_grid("paper")) <= set(full)
    assert {("rotate", 80), ("shear", 143.2), ("zoom-in", 20), ("zoom-out", 180)} <= set(full)
    assert sorted(DEFORMATIONS.names()) == ["rotate", "shear", "zoom-in", "zoom-out"]


def test_bad_names_and_severities_are_user_errors() -> None:
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(UserError, match="paper, paper-full"):
        deformation_grid("table4")
    with pytest.raises(UserError, match="rotate, shear, zoom-in, zoom-out"):
        deform(x, "twist", 10, _gen())
    with pytest.raises(UserError, match=">= 0"):
        deform(x, "rotate", -5, _gen())
    with pytest.raises(UserError):
        deform(x, "zoom-in", 120, _gen())
    with pytest.raises(UserError):
        deform(x, "zoom-out", 80, _gen())
    with pytest.raises(UserError):
        deform(torch.zeros(8, 8), "rotate", 10, _gen())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_generator_drives_cuda_images_identically() -> None:
    x = torch.rand(4, 3, 16, 16)
    cpu = deform(x, "rotate", 40, _gen(5))
    gpu = deform(x.cuda(), "rotate", 40, _gen(5))
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)

"""Input deformations (Manifold Mixup paper) and common corruptions (CIFAR-10-C), batched.

Everything takes float NCHW images in [0, 1] on any device plus an explicit
``torch.Generator`` and returns a tensor of the same shape, dtype and device, in [0, 1].
"""

from robustbench_mm.corruptions.cifar_c import load_cifar_c
from robustbench_mm.corruptions.common import CORRUPTIONS, corrupt, corruption_names
from robustbench_mm.corruptions.deformations import DEFORMATIONS, deform, deformation_grid, rotate_by, shear_by, zoom_by
from robustbench_mm.corruptions.grid import corruption_grid_png, grid_names

__all__ = [
    "CORRUPTIONS",
    "DEFORMATIONS",
    "corrupt",
    "corruption_grid_png",
    "corruption_names",
    "deform",
    "deformation_grid",
    "grid_names",
    "load_cifar_c",
    "rotate_by",
    "shear_by",
    "zoom_by",
]

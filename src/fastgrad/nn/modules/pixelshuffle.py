"""PyTorch's module path for PixelShuffle and PixelUnshuffle
(``torch.nn.modules.pixelshuffle``), so scripts that name them there, e.g. in a ``safe_globals``
list, find fastgrad's."""
from fastgrad.nn.modules.upsampling import PixelShuffle, PixelUnshuffle  # noqa: F401

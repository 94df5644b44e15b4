"""fastgrad.utils: `data` (Dataset, DataLoader, samplers) as torch.utils.data."""
from fastgrad.utils import data  # noqa: F401

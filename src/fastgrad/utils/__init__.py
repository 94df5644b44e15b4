"""fastgrad.utils: `data` (Dataset, DataLoader, samplers) as torch.utils.data; `hooks`
(RemovableHandle) as torch.utils.hooks."""
from fastgrad.utils import data, hooks  # noqa: F401

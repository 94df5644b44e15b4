"""fastgrad.utils.hooks: RemovableHandle, the handle every register_*hook returns (as
torch.utils.hooks). Its home is the core (fastgrad._core.hooks), which uses it too."""
from fastgrad._core.hooks import RemovableHandle

__all__ = ["RemovableHandle"]

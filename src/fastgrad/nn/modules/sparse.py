"""PyTorch's module path for Embedding (``torch.nn.modules.sparse.Embedding``), so scripts that
name it there, e.g. in a ``safe_globals`` list, find fastgrad's."""
from fastgrad.nn.modules.linear import Embedding  # noqa: F401

"""fastgrad.backends: the flags scripts set for GPU backends (cudnn.deterministic, cudnn.benchmark,
cuda.matmul.allow_tf32) are accepted and have no effect; mps.is_available() is False."""
from fastgrad.backends import cuda, cudnn, mps  # noqa: F401

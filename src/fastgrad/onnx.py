"""fastgrad.onnx: the names PyTorch scripts import from torch.onnx. fastgrad does not trace
models into ONNX graphs; export raises and says how to do it with PyTorch."""

__all__ = ["export", "is_in_onnx_export"]


def is_in_onnx_export():
    """False: fastgrad never runs a model inside an ONNX export."""
    return False


def export(model, args=(), f=None, *rest, **kwargs):
    raise RuntimeError("fastgrad cannot export a model to ONNX. Save its state_dict() with "
                       "fastgrad.save, load that into the same model built with PyTorch, and "
                       "call torch.onnx.export there")

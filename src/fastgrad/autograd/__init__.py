"""fastgrad.autograd: backward() and grad() over the compiled engine."""
from fastgrad._core import engine as _engine
from fastgrad._core.tensor import TensorBase
from fastgrad._legacy import Variable  # noqa: F401
from fastgrad.autograd.grad_mode import (no_grad, enable_grad, set_grad_enabled, inference_mode,
                                         is_grad_enabled)

__all__ = ["backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode"]


def _as_tuple(x):
    if x is None:
        return None
    if isinstance(x, TensorBase):
        return (x,)
    return tuple(x)


def _make_grads(outputs, grads, is_grads_batched=False):
    """Each output's seed gradient: given, or 1 for one-element outputs (PyTorch's rules)."""
    if grads is None:
        grads = (None,) * len(outputs)
    if len(grads) != len(outputs):
        raise RuntimeError(f"grad can be implicitly created only for scalar outputs; got "
                           f"{len(grads)} gradients for {len(outputs)} outputs")
    out = []
    for i, (o, g) in enumerate(zip(outputs, grads)):
        if g is None:
            if o.numel() != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs (output {i} has "
                    f"shape {list(o.shape)}); pass `gradient=` with the output's shape, or "
                    f"reduce it first, e.g. y.sum().backward()")
            if not o.is_floating_point():
                raise RuntimeError(f"grad can be implicitly created only for real scalar "
                                   f"outputs but got {o.dtype}")
            g = _engine.one_seed(o)
        else:
            if not isinstance(g, TensorBase):
                from fastgrad._creation import tensor
                g = tensor(g, dtype=o.dtype)
            if tuple(g.shape) != tuple(o.shape):
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                   f"{g.shape} and output[{i}] has a shape of {o.shape}.")
            if g.dtype != o.dtype and g.is_floating_point():
                g = g.to(o.dtype)
        out.append(g)
    return tuple(out)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False,
             grad_variables=None, inputs=None) -> None:
    """Accumulate gradients of `tensors` into the .grad of leaves (or only of `inputs`)."""
    tensors = _as_tuple(tensors)
    grad_tensors = _as_tuple(grad_tensors if grad_tensors is not None else grad_variables)
    inputs = _as_tuple(inputs)
    if inputs is not None and len(inputs) == 0:
        raise RuntimeError("`inputs` argument to `backward()` cannot be empty.")
    for i, t in enumerate(tensors):
        if not t.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have "
                               f"a grad_fn")
    grads = _make_grads(tensors, grad_tensors)
    if retain_graph is None:
        retain_graph = create_graph
    _engine.run_backward(tensors, grads, bool(retain_graph), bool(create_graph), inputs, True)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Gradients of `outputs` with respect to `inputs`, returned as a tuple; no .grad changes."""
    outputs = _as_tuple(outputs)
    inputs = _as_tuple(inputs)
    if allow_unused is None:
        allow_unused = materialize_grads
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads"
                         "=True, but got: allow_unused=False.")
    for i, t in enumerate(outputs):
        if not t.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have "
                               f"a grad_fn")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (index {i}) does not require "
                               f"grad")
    grads = _make_grads(outputs, _as_tuple(grad_outputs))
    if retain_graph is None:
        retain_graph = create_graph
    res = _engine.run_backward(outputs, grads, bool(retain_graph), bool(create_graph), inputs,
                               False, bool(allow_unused))
    if materialize_grads:
        from fastgrad._creation import zeros_like
        res = tuple(zeros_like(x) if g is None else g for g, x in zip(res, inputs))
    return res


# The rest of torch.autograd's namespace (issue 4). Function is part of the core workflow; the
# rest loads on first use (PEP 562): `fastgrad.autograd.functional.jacobian`, `.gradcheck`,
# `import fastgrad.autograd.functional` all work.
from fastgrad.autograd import function  # noqa: E402
from fastgrad.autograd.function import Function, NestedIOFunction, once_differentiable  # noqa: E402

from fastgrad import _lazy  # noqa: E402
__getattr__, __dir__ = _lazy.attach(
    __name__, globals(), frozenset(["functional", "graph", "anomaly_mode"]),
    {"gradcheck": ("fastgrad.autograd.gradcheck", "gradcheck"),   # the function, as torch's
     "gradgradcheck": ("fastgrad.autograd.gradcheck", "gradgradcheck"),
     "detect_anomaly": ("fastgrad.autograd.anomaly_mode", "detect_anomaly"),
     "set_detect_anomaly": ("fastgrad.autograd.anomaly_mode", "set_detect_anomaly")})

__all__ += ["Function", "NestedIOFunction", "once_differentiable", "functional", "graph",
            "gradcheck", "gradgradcheck", "detect_anomaly", "set_detect_anomaly"]

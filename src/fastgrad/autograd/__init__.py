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


def _given_grads(outputs, grads):
    """grads with each number or array made a tensor of its output's dtype (the engine takes
    Tensors or None)."""
    if grads is None or len(grads) != len(outputs) or \
            all(g is None or isinstance(g, TensorBase) for g in grads):
        return grads
    from fastgrad._creation import tensor
    return tuple(g if g is None or isinstance(g, TensorBase) else tensor(g, dtype=o.dtype)
                 for o, g in zip(outputs, grads))


def _make_grads(outputs, grads, is_grads_batched=False):
    """Each output's seed gradient (the engine's rules, fastgrad._core.engine.make_grads)."""
    return _engine.make_grads(outputs, _given_grads(outputs, grads))


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False,
             grad_variables=None, inputs=None) -> None:
    """Accumulate gradients of `tensors` into the .grad of leaves (or only of `inputs`)."""
    tensors = _as_tuple(tensors)
    grad_tensors = _as_tuple(grad_tensors if grad_tensors is not None else grad_variables)
    _engine.backward(tensors, _given_grads(tensors, grad_tensors), retain_graph,
                     bool(create_graph), _as_tuple(inputs))


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

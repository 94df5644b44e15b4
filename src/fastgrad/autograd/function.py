"""autograd.Function: user-defined forward/backward pairs, as torch.autograd.Function.

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y

    y = Exp.apply(x)        # y.grad_fn is an ExpBackward node; ctx is that node

Or the newer style: `forward(*args)` without ctx plus `setup_context(ctx, inputs, output)`.
The per-call work (run forward without recording, record one node, pack saved tensors with
their versions) is compiled in _core/function.pyx; this file only builds the classes.
"""
import functools

from fastgrad._core import function as _cf
from fastgrad._core.function import PyNode
from fastgrad._core.tensor import TensorBase
from fastgrad._core import grad_mode as _gm

__all__ = ["Function", "FunctionCtx", "BackwardCFunction", "once_differentiable",
           "InplaceFunction", "NestedIOFunction"]


class FunctionCtx:
    """The ctx API (save_for_backward, saved_tensors, needs_input_grad, mark_dirty,
    mark_non_differentiable, set_materialize_grads). Real ctx objects are graph nodes
    (BackwardCFunction); this class is for isinstance checks and documentation."""


class BackwardCFunction(PyNode, FunctionCtx):
    """Base of the `<Name>Backward` node classes: one per Function subclass."""

    def apply(self, *grads):
        return self._forward_cls.backward(self, *grads)


class FunctionMeta(type):
    """Makes each Function subclass's node class (`MyFnBackward`) once, at class creation."""

    def __init__(cls, name, bases, attrs):
        cls._backward_cls = type(name + "Backward", (BackwardCFunction,),
                                 {"__module__": cls.__module__})
        cls._new_style = getattr(cls, "setup_context", None) is not _Base.setup_context \
            if "_Base" in globals() else False
        if "vjp" in attrs and "backward" not in attrs:
            cls.backward = attrs["vjp"]
        if "apply" not in attrs:
            cls.apply = _cf.FunctionApply(cls, cls._backward_cls, cls._new_style)
        super().__init__(name, bases, attrs)


class _Base(metaclass=FunctionMeta):
    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not implemented.")


class Function(_Base):
    """Base class for custom differentiable operations. Subclass it, write static `forward`
    and `backward`, and call `MyFn.apply(*args)` (never instantiate it)."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        raise RuntimeError(
            "Legacy autograd function with non-static forward method is deprecated. Please use "
            "new-style autograd function with static forward method. (Example: "
            "https://pytorch.org/docs/stable/autograd.html#torch.autograd.Function)")

    @staticmethod
    def forward(*args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode "
                                  "AD.")

    vjp = backward

    @staticmethod
    def jvp(ctx, *grad_inputs):
        raise NotImplementedError("You must implement the jvp function for custom "
                                  "autograd.Function to use it with forward mode AD.")


class InplaceFunction(Function):
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


NestedIOFunction = Function


class _DelayedError(Function):
    """Identity whose backward raises: marks gradients computed by a @once_differentiable
    backward, so differentiating them again fails loudly instead of giving zeros."""

    @staticmethod
    def forward(ctx, msg, n, *tensors):
        # tensors = the n results, then the backward's inputs that require grad (these only
        # make the node record: the results themselves were computed without a graph)
        ctx.msg = msg
        return tuple(g.detach() if g is not None else None for g in tensors[:n])

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(ctx.msg)


def once_differentiable(fn):
    """Decorate a backward that is not itself differentiable: it runs without recording, and
    a second differentiation through its results raises instead of being silently wrong."""

    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with _gm_no_grad():
            outputs = fn(ctx, *args)
        if not _gm.is_grad_enabled():
            return outputs
        if not any(isinstance(a, TensorBase) and a.requires_grad for a in args):
            return outputs
        single = not isinstance(outputs, tuple)
        outs = (outputs,) if single else outputs
        deps = [a for a in args if isinstance(a, TensorBase) and a.requires_grad]
        err = _DelayedError.apply(
            "trying to differentiate twice a function that was marked with "
            "@once_differentiable", len(outs),
            *[o if isinstance(o, TensorBase) else None for o in outs], *deps)
        if not isinstance(err, tuple):
            err = (err,)
        res = tuple(e if isinstance(o, TensorBase) else o for e, o in zip(err, outs))
        return res[0] if single else res

    return wrapper


def _gm_no_grad():
    from fastgrad.autograd.grad_mode import no_grad
    return no_grad()

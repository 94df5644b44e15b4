"""The one table of op names: each row publishes one function as a `Tensor` method, a
`fastgrad.<name>` function, or both. `_tensor.py` sets METHODS on Tensor and `functional.py`
puts FUNCTIONS in fastgrad's namespace; neither names an alias of its own.

Rows come from ALIASES below and from the tables the op families publish (`FUNCTIONS`: both
sides; `FREE_FUNCTIONS`: functions only; `INPLACE`: an in-place method `<name>_` each;
`INPLACE_METHODS`: in-place methods the family writes itself). The
in-place forms and the axis=/keepdims= spellings are generated here too, once for both sides.
"""
import functools

from fastgrad import _composite, _sampling
from fastgrad import _activations as _act
from fastgrad._core import ops_arrange as _arrange
from fastgrad._core import ops_index as _ix
from fastgrad._core import ops_setitem as _setitem
from fastgrad._core import ops_einsum as _einsum
from fastgrad._core import ops_matmul as _la
from fastgrad._core import ops_linear as _linear
from fastgrad._core import ops_math as _math
from fastgrad._core import ops_binary_math as _bmath
from fastgrad._core import ops_softmax as _nn
from fastgrad._core import ops_cast as _cast
from fastgrad._core import ops_compare as _cmp
from fastgrad._core import ops_inplace as _inplace
from fastgrad._core import ops_select as _select
from fastgrad._core import ops_unary as _unary
from fastgrad._core import ops_reduce as _red
from fastgrad._core import ops_reduce_composed as _red2
from fastgrad._core import ops_scatter as _scatter
from fastgrad._core import ops_sort as _sort
from fastgrad._core import ops_join as _join
from fastgrad._core import ops_view as _view
from fastgrad._core import engine as _engine
from fastgrad._core.tensor import TensorBase

METHOD, FUNCTION, BOTH = "method", "function", "both"

#: name -> (function, where it is published)
ALIASES = {
    # -- pointwise (ops_arith, ops_unary, ops_select, ops_cast, ops_inplace, ops_compare) --
    "clone": (_cast.clone, BOTH),
    "maximum": (_select.maximum, BOTH),
    "minimum": (_select.minimum, BOTH),
    "clamp": (_select.clamp, BOTH),
    "clip": (_select.clamp, BOTH),
    "sign": (_select.sign, BOTH),
    "where": (_select.where, FUNCTION),
    "exp": (_unary.exp, FUNCTION),            # the methods of the hot unary ops are TensorBase's
    "log": (_unary.log, FUNCTION),
    "sqrt": (_unary.sqrt, FUNCTION),
    "sin": (_unary.sin, FUNCTION),
    "cos": (_unary.cos, FUNCTION),
    "tanh": (_unary.tanh, FUNCTION),
    "sigmoid": (_unary.sigmoid, FUNCTION),
    "relu": (_unary.relu, FUNCTION),
    "reciprocal": (_unary.reciprocal, FUNCTION),
    "neg": (_unary.neg, FUNCTION),
    "negative": (_unary.neg, FUNCTION),
    "abs": (_unary.abs, FUNCTION),
    "absolute": (_unary.abs, FUNCTION),
    "zero_": (_inplace.zero_, METHOD),
    "div": (_cmp.div_rounding, METHOD),     # fastgrad.div (functional.py) also takes out=
    "divide": (_cmp.div_rounding, METHOD),
    "div_": (_cmp.div_rounding_, METHOD),
    "__invert__": (_cmp._invert, METHOD),
    # floor division, remainders, bitwise and logical ops, and their operators // % & | ^
    "floor_divide": (_cmp.floor_divide, BOTH),
    "remainder": (_cmp.remainder, BOTH),
    "fmod": (_cmp.fmod, BOTH),
    "bitwise_and": (_cmp.bitwise_and, BOTH),
    "bitwise_or": (_cmp.bitwise_or, BOTH),
    "bitwise_xor": (_cmp.bitwise_xor, BOTH),
    "bitwise_not": (_cmp.bitwise_not, BOTH),
    "logical_and": (_cmp.logical_and, BOTH),
    "logical_or": (_cmp.logical_or, BOTH),
    "logical_xor": (_cmp.logical_xor, BOTH),
    "logical_not": (_cmp.logical_not, BOTH),
    "floor_divide_": (_cmp.floor_divide_, METHOD),
    "remainder_": (_cmp.remainder_, METHOD),
    "fmod_": (_cmp.fmod_, METHOD),
    "bitwise_and_": (_cmp.bitwise_and_, METHOD),
    "bitwise_or_": (_cmp.bitwise_or_, METHOD),
    "bitwise_xor_": (_cmp.bitwise_xor_, METHOD),
    "bitwise_not_": (_cmp.bitwise_not_, METHOD),
    "logical_and_": (_cmp.logical_and_, METHOD),
    "logical_or_": (_cmp.logical_or_, METHOD),
    "logical_xor_": (_cmp.logical_xor_, METHOD),
    "logical_not_": (_cmp.logical_not_, METHOD),
    "__floordiv__": (_cmp._floordiv, METHOD),
    "__rfloordiv__": (_cmp._rfloordiv, METHOD),
    "__ifloordiv__": (_cmp.floor_divide_, METHOD),
    "__mod__": (_cmp._mod, METHOD),
    "__rmod__": (_cmp._rmod, METHOD),
    "__imod__": (_cmp.remainder_, METHOD),
    "__and__": (_cmp._and, METHOD),
    "__rand__": (_cmp._and, METHOD),
    "__iand__": (_cmp.bitwise_and_, METHOD),
    "__or__": (_cmp._or, METHOD),
    "__ror__": (_cmp._or, METHOD),
    "__ior__": (_cmp.bitwise_or_, METHOD),
    "__xor__": (_cmp._xor, METHOD),
    "__rxor__": (_cmp._xor, METHOD),
    "__ixor__": (_cmp.bitwise_xor_, METHOD),
    # -- reductions (ops_reduce, ops_reduce_composed) --
    "max": (_red.max, BOTH),
    "min": (_red.min, BOTH),
    "var": (_red2.var, BOTH),
    "std": (_red2.std, BOTH),
    "var_mean": (_red2.var_mean, FUNCTION),
    "std_mean": (_red2.std_mean, FUNCTION),
    "prod": (_red2.prod, BOTH),
    "cumsum": (_red2.cumsum, BOTH),
    "logsumexp": (_red2.logsumexp, BOTH),
    "norm": (_red2.norm, BOTH),
    "dist": (_red2.dist, BOTH),
    "nansum": (_red2.nansum, BOTH),
    "count_nonzero": (_red2.count_nonzero, BOTH),
    "amax": (_red2.amax, BOTH),
    "amin": (_red2.amin, BOTH),
    "argmax": (_red2.argmax, BOTH),
    "argmin": (_red2.argmin, BOTH),
    "all": (_red2.all, BOTH),
    "any": (_red2.any, BOTH),
    # -- shapes and joins (ops_view) --
    "reshape": (_view.reshape, BOTH),
    "view": (_view.view, METHOD),
    "view_as": (_view.view_as, METHOD),
    "reshape_as": (_view.reshape_as, METHOD),
    "flatten": (_view.flatten, BOTH),
    "unflatten": (_view.unflatten, BOTH),
    "squeeze": (_view.squeeze, BOTH),
    "unsqueeze": (_view.unsqueeze, BOTH),
    "transpose": (_view.transpose, BOTH),
    "swapaxes": (_view.swapaxes, BOTH),
    "movedim": (_view.movedim, BOTH),
    "permute": (_view.permute, BOTH),
    "t": (_view.t, BOTH),
    "expand": (_view.expand, METHOD),
    "expand_as": (_view.expand_as, METHOD),
    "broadcast_to": (_view.broadcast_to, BOTH),
    "contiguous": (_view.contiguous, METHOD),
    "diagonal": (_view.diagonal, BOTH),
    "repeat": (_join.repeat, METHOD),
    "repeat_interleave": (_join.repeat_interleave, BOTH),
    "flip": (_view.flip, BOTH),
    "chunk": (_join.chunk, BOTH),
    "split": (_join.split, BOTH),
    "unbind": (_join.unbind, BOTH),
    "cat": (_join.cat, FUNCTION),
    "concat": (_join.cat, FUNCTION),
    "concatenate": (_join.cat, FUNCTION),
    "stack": (_join.stack, FUNCTION),
    "hstack": (_join.hstack, FUNCTION),
    "vstack": (_join.vstack, FUNCTION),
    # -- indexing (ops_index) --
    "__getitem__": (_ix.getitem, METHOD),
    "__setitem__": (_setitem.setitem, METHOD),
    "select": (_ix.select, BOTH),
    "narrow": (_ix.narrow, BOTH),
    "index_select": (_ix.index_select, BOTH),
    "gather": (_ix.gather, BOTH),
    "scatter_add": (_ix.scatter_add, BOTH),
    "masked_fill": (_ix.masked_fill, BOTH),
    "take_along_dim": (_ix.take_along_dim, BOTH),
    # -- matrix products (ops_matmul) and softmax (ops_softmax) --
    "__matmul__": (_la.matmul, METHOD),
    "__rmatmul__": (_la._rmatmul, METHOD),
    "matmul": (_la.matmul, BOTH),
    "mm": (_la.mm, BOTH),
    "bmm": (_la.bmm, BOTH),
    "mv": (_la.mv, BOTH),
    "dot": (_la.dot, BOTH),
    "inner": (_la.inner, BOTH),
    "outer": (_la.outer, BOTH),
    "ger": (_la.outer, FUNCTION),
    "addmm": (_linear.addmm, BOTH),
    "einsum": (_einsum.einsum, FUNCTION),
    "softmax": (_nn.softmax, BOTH),
    "log_softmax": (_nn.log_softmax, BOTH),
    # -- the activations PyTorch publishes beyond nn.functional (_activations.py) --
    "selu": (_act.selu, FUNCTION),
    "selu_": (_act.selu_, FUNCTION),
    "celu": (_act.celu, FUNCTION),
    "celu_": (_act.celu_, FUNCTION),
    "threshold": (_act.threshold, FUNCTION),
    "threshold_": (_act.threshold_, FUNCTION),
    "rrelu": (_act.rrelu, FUNCTION),
    "rrelu_": (_act.rrelu_, FUNCTION),
    "hardshrink": (_act.hardshrink, BOTH),
    "prelu": (_act.prelu, BOTH),
    # -- autograd (engine) --
    "backward": (_engine.tensor_backward, METHOD),   # compiled: builds its seed in C
    # -- sampling in place, PyTorch's streams (_sampling.py) --
    "normal_": (_sampling.normal_, METHOD),
    "uniform_": (_sampling.uniform_, METHOD),
    "random_": (_sampling.random_, METHOD),
    "exponential_": (_sampling.exponential_, METHOD),
    "log_normal_": (_sampling.log_normal_, METHOD),
    "cauchy_": (_sampling.cauchy_, METHOD),
    "geometric_": (_sampling.geometric_, METHOD),
    "bernoulli_": (_sampling.bernoulli_, METHOD),
    "bernoulli": (_sampling.bernoulli_method, METHOD),   # fastgrad.bernoulli: _sampling's own
    "multinomial": (_sampling.multinomial_method, METHOD),
    # -- written in Python over recorded ops (_composite.py) --
    "eq": (_composite.eq, BOTH),
    "ne": (_composite.ne, BOTH),
    "lt": (_composite.lt, BOTH),
    "le": (_composite.le, BOTH),
    "gt": (_composite.gt, BOTH),
    "ge": (_composite.ge, BOTH),
    "not_equal": (_composite.ne, METHOD),
    "less": (_composite.lt, METHOD),
    "less_equal": (_composite.le, METHOD),
    "greater": (_composite.gt, METHOD),
    "greater_equal": (_composite.ge, METHOD),
    "square": (_composite.square, BOTH),
    "rsqrt": (_composite.rsqrt, BOTH),
    "cross": (_composite.cross, BOTH),
    "diag": (_composite.diag, BOTH),
    "inverse": (_composite.inverse, BOTH),
    "det": (_composite.det, BOTH),
    "logdet": (_composite.logdet, BOTH),
    "slogdet": (_composite.slogdet, BOTH),
    "cholesky": (_composite.cholesky, BOTH),
    "matrix_power": (_composite.matrix_power, BOTH),
    "pinverse": (_composite.pinverse, BOTH),
    "qr": (_composite.qr, BOTH),
    "svd": (_composite.svd, BOTH),
}

# the op families' own tables (elementwise math, sorting and scans, scatters, arrangements)
OP_TABLES = (_math, _bmath, _sort, _scatter, _arrange)
for _module in OP_TABLES:
    ALIASES.update({n: (f, BOTH) for n, f in _module.FUNCTIONS.items()})
    ALIASES.update({n: (f, FUNCTION) for n, f in getattr(_module, "FREE_FUNCTIONS", {}).items()})


def inplace_form(fn):
    """fn's in-place method: self = fn(self, ...), self the output of fn's node
    (ops_inplace.apply_inplace)."""
    name = fn.__name__ + "_"

    def method(self, *args, **kwargs):
        return _inplace.apply_inplace(self, fn, name, *args, **kwargs)
    method.__name__ = name
    method.__doc__ = f"In-place {fn.__name__}: self = {fn.__name__}(self, ...)."
    return method


def reshape_inplace(fn):
    """squeeze_ / unsqueeze_ / t_ / transpose_: self takes the view's shape. A tensor that
    records gradients keeps its history only as the returned view, so those are refused (as
    PyTorch refuses them for a leaf) rather than silently detached."""
    def method(self, *args, **kwargs):
        if self.requires_grad:
            raise RuntimeError(f"{fn.__name__}_: a tensor that requires grad cannot change its "
                               f"shape in place here; use y = x.{fn.__name__}(...) instead")
        TensorBase.data.__set__(self, fn(self, *args, **kwargs))
        return self
    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place {fn.__name__}: self becomes {fn.__name__}(self, ...)."
    return method


def axis_alias(fn):
    """fn also taking NumPy's spellings axis= (for dim=) and keepdims= (for keepdim=), as
    PyTorch's functions do. One Python frame more, so the hot sum/mean take them in C instead."""
    @functools.wraps(fn)
    def accepting(*args, axis=None, keepdims=None, **kwargs):
        if axis is not None:
            if "dim" in kwargs:
                raise TypeError(f"{fn.__name__}() got both dim and its alias axis; pass one")
            kwargs["dim"] = axis
        if keepdims is not None:
            kwargs["keepdim"] = keepdims
        return fn(*args, **kwargs)
    return accepting


#: reductions and dim-taking ops that accept axis= / keepdims= (sum and mean do so in C)
AXIS_OPS = ("max", "min", "prod", "var", "std", "cumsum", "logsumexp", "norm", "amax", "amin",
            "argmax", "argmin", "all", "any", "softmax", "log_softmax", "sort", "argsort",
            "topk", "kthvalue", "cummax", "cummin", "cumprod", "squeeze", "unsqueeze",
            "flip", "roll", "nansum")
for _name in AXIS_OPS:
    _fn, _where = ALIASES[_name]
    ALIASES[_name] = (axis_alias(_fn), _where)


def _has_method(name):
    return (name in ALIASES and ALIASES[name][1] != FUNCTION) or hasattr(TensorBase, name)


def _method(name):
    """The function behind Tensor.<name>: a row of the table, else TensorBase's own method."""
    if name in ALIASES and ALIASES[name][1] != FUNCTION:
        return ALIASES[name][0]
    return getattr(TensorBase, name)


# in-place methods: the families' INPLACE lists, a few single ops, and the hot pointwise ops
# (x.exp_(), w.abs_() ...), which are published as functions too (fastgrad.exp_(x))
for _module in OP_TABLES:
    for _name in getattr(_module, "INPLACE", ()):
        ALIASES[_name + "_"] = (inplace_form(_module.FUNCTIONS[_name]), METHOD)
    ALIASES.update({n: (f, METHOD) for n, f in getattr(_module, "INPLACE_METHODS", {}).items()})
for _name in ("masked_fill", "scatter_add", "clamp", "rsqrt"):
    ALIASES[_name + "_"] = (inplace_form(_method(_name)), METHOD)
POINTWISE_INPLACE = tuple(n for n in ("exp", "log", "sin", "cos", "tanh", "sigmoid", "relu",
                                      "sqrt", "abs", "neg", "negative", "reciprocal", "sign",
                                      "pow", "square", "clamp_min", "clamp_max")
                          if _has_method(n) and not _has_method(n + "_"))
for _name in POINTWISE_INPLACE:
    ALIASES[_name + "_"] = (inplace_form(_method(_name)), BOTH)
for _name in ("squeeze", "unsqueeze", "t", "transpose"):
    if not _has_method(_name + "_"):
        ALIASES[_name + "_"] = (reshape_inplace(_method(_name)), METHOD)

#: what _tensor.py sets on Tensor, and what functional.py publishes as fastgrad.<name>
METHODS = {n: f for n, (f, where) in ALIASES.items() if where != FUNCTION}
FUNCTIONS = {n: f for n, (f, where) in ALIASES.items() if where != METHOD}

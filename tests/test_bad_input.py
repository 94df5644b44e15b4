"""Bad input to every public function that takes a dim, an index or an array from outside:
0-d and 0-size tensors, dims out of range on both sides, wrong dtypes, NumPy arrays in another
byte order, non-contiguous, read-only or unaligned. Each case must give PyTorch's result or
PyTorch's exception type (compared with torch when it is installed), never a crash or garbage.

The tables hold (id, callable) rows; each callable takes the library module and its inputs, so
one row runs unchanged in fastgrad and in PyTorch.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from _backend import REFERENCE, fg

try:
    import torch
except ImportError:                                  # fixed expectations only
    torch = None

_ERRORS = (IndexError, RuntimeError, ValueError, TypeError, NotImplementedError)


def _kind(e):
    """The builtin exception class an error is an instance of first (numpy's AxisError is a
    ValueError first, so it does not pass for PyTorch's IndexError)."""
    return next(c for c in type(e).__mro__ if c.__module__ == "builtins")


def _run(fn, *args):
    """('ok', value) or ('err', builtin exception class)."""
    try:
        return "ok", fn(*args)
    except _ERRORS as e:
        return "err", _kind(e)


def _plain(v):
    """Results as NumPy arrays / ints / lists, so fastgrad and torch results compare."""
    if hasattr(v, "detach"):
        return np.asarray(v.detach().numpy())
    if isinstance(v, (tuple, list)):
        return [_plain(u) for u in v]
    return v


def _assert_same(a, b, what):
    a, b = _plain(a), _plain(b)
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), what
        for u, w in zip(a, b):
            _assert_same(u, w, what)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), what
        assert a.shape == b.shape, f"{what}: shape {a.shape} vs torch {b.shape}"
        assert a.dtype.kind == b.dtype.kind, f"{what}: dtype {a.dtype} vs torch {b.dtype}"
        np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64),
                                   rtol=1e-3 if np.float16 in (a.dtype, b.dtype) else 1e-5,
                                   atol=1e-6, equal_nan=True, err_msg=what)
    else:
        assert a == b, f"{what}: {a!r} vs torch {b!r}"


def _float_leaves(v):
    if hasattr(v, "requires_grad"):
        return [v] if v.requires_grad and v.is_floating_point() else []
    if isinstance(v, (tuple, list)):
        return [t for u in v for t in _float_leaves(u)]
    return []


# --- dims ----------------------------------------------------------------------------------------

def _idx(T, x):
    return T.zeros(tuple(x.shape), dtype=T.int64)


# (id, f(T, x, d)); x is a float tensor, d a dim
DIM_OPS = [
    ("sum", lambda T, x, d: x.sum(d)),
    ("sum_keepdim", lambda T, x, d: T.sum(x, d, keepdim=True)),
    ("sum_tuple", lambda T, x, d: x.sum((d,))),
    ("mean", lambda T, x, d: x.mean(d)),
    ("max", lambda T, x, d: x.max(d)),
    ("min", lambda T, x, d: T.min(x, d)),
    ("amax", lambda T, x, d: x.amax(d)),
    ("amin", lambda T, x, d: T.amin(x, d, keepdim=True)),
    ("argmax", lambda T, x, d: x.argmax(d)),
    ("argmin", lambda T, x, d: T.argmin(x, d)),
    ("prod", lambda T, x, d: x.prod(d)),
    ("cumsum", lambda T, x, d: x.cumsum(d)),
    ("var", lambda T, x, d: x.var(d)),
    ("std", lambda T, x, d: T.std(x, d)),
    ("logsumexp", lambda T, x, d: x.logsumexp(d)),
    ("norm", lambda T, x, d: x.norm(dim=d)),
    ("norm_inf", lambda T, x, d: T.norm(x, p=float("inf"), dim=d)),
    ("softmax", lambda T, x, d: x.softmax(d)),
    ("log_softmax", lambda T, x, d: T.nn.functional.log_softmax(x, d)),
    ("squeeze", lambda T, x, d: x.squeeze(d)),
    ("squeeze_tuple", lambda T, x, d: x.squeeze((d,))),
    ("unsqueeze", lambda T, x, d: x.unsqueeze(d)),
    ("transpose", lambda T, x, d: x.transpose(d, 0)),
    ("flatten", lambda T, x, d: x.flatten(d)),
    ("flatten_end", lambda T, x, d: T.flatten(x, 0, d)),
    ("unflatten", lambda T, x, d: x.unflatten(d, (1, -1))),
    ("chunk", lambda T, x, d: x.chunk(2, d)),
    ("split", lambda T, x, d: x.split(1, d)),
    ("unbind", lambda T, x, d: x.unbind(d)),
    ("narrow", lambda T, x, d: x.narrow(d, 0, 0)),
    ("select", lambda T, x, d: x.select(d, 0)),
    ("cat", lambda T, x, d: T.cat([x, x], d)),
    ("stack", lambda T, x, d: T.stack([x, x], d)),
    ("gather", lambda T, x, d: x.gather(d, _idx(T, x))),
    ("scatter_add", lambda T, x, d: x.scatter_add(d, _idx(T, x), x)),
    ("index_select", lambda T, x, d: x.index_select(d, T.tensor([0]))),
    ("flip", lambda T, x, d: x.flip(d)),
    ("repeat_interleave", lambda T, x, d: x.repeat_interleave(2, d)),
    ("diagonal", lambda T, x, d: x.diagonal(0, d, -1)),
    ("size", lambda T, x, d: x.size(d)),
    ("stride", lambda T, x, d: x.stride(d)),
    ("take_along_dim", lambda T, x, d: T.take_along_dim(x, _idx(T, x), d)),
    ("all", lambda T, x, d: (x > 0).all(d)),
    ("any", lambda T, x, d: T.any(x > 0, d)),
    ("movedim", lambda T, x, d: x.movedim(d, 0)),
]

# PyTorch's own results that fastgrad deliberately does not copy: on a 0-d tensor PyTorch's
# repeat_interleave(dim=0) and take_along_dim(dim=0) raise, but the
# dim is valid by the 0-d rule every other op follows.
# PyTorch's cat also skips 1-D empty tensors whatever the dim (a legacy rule it warns about).
_DIM_DIFFERENT = {("repeat_interleave", "0d", 0), ("repeat_interleave", "0d", -1),
                  ("take_along_dim", "0d", 0), ("take_along_dim", "0d", -1),
                  ("cat", "0", 1), ("cat", "0", -2)}

DIM_INPUTS = {
    "0d": (lambda: np.array(1.5, dtype=np.float32), [0, -1, 1, -2]),
    "2x3": (lambda: np.arange(6, dtype=np.float32).reshape(2, 3) - 2, [0, 1, -1, -2, 2, -3]),
    "0x3": (lambda: np.zeros((0, 3), dtype=np.float32), [0, 1, -1, -2, 2, -3]),
    "0": (lambda: np.zeros(0, dtype=np.float32), [0, -1, 1, -2]),
}

DIM_CASES = [(name, f, shape, d) for name, f in DIM_OPS
             for shape, (_, dims) in DIM_INPUTS.items() for d in dims]


def _dim_case(T, f, shape, d):
    x = T.tensor(DIM_INPUTS[shape][0](), requires_grad=True)
    kind, out = _run(f, T, x, d)
    if kind == "err":
        return kind, out, None
    leaves = _float_leaves(out)
    if not leaves:
        return kind, out, None
    sum(t.sum() for t in leaves).backward()
    return kind, out, x.grad


@pytest.mark.parametrize("name,f,shape,d", DIM_CASES,
                         ids=[f"{n}-{s}-d{d}" for n, _, s, d in DIM_CASES])
def test_dim_argument(name, f, shape, d):
    kind, out, grad = _dim_case(fg, f, shape, d)
    ndim = DIM_INPUTS[shape][0]().ndim
    extra = 1 if name in ("unsqueeze", "stack") else 0
    n = max(ndim + extra, 1)
    if not -n <= d < n and not (REFERENCE and (name, shape, d) in _DIM_DIFFERENT):
        # (ops that refuse 0-d say so first)
        refuse_0d = ndim == 0 and name in ("chunk", "split", "narrow", "cat")
        assert (kind, out) == ("err", RuntimeError if refuse_0d else IndexError), \
            f"{name}(dim={d}) on {shape}: {out!r}"
    if torch is None or (name, shape, d) in _DIM_DIFFERENT:
        return
    tkind, tout, tgrad = _dim_case(torch, f, shape, d)
    assert kind == tkind, f"{name}(dim={d}) on {shape}: fastgrad {out!r}, torch {tout!r}"
    if kind == "err":
        assert out is tout, f"{name}(dim={d}) on {shape}: fastgrad {out}, torch {tout}"
    else:
        _assert_same(out, tout, f"{name}(dim={d}) on {shape}")
        if tgrad is not None:
            _assert_same(grad, tgrad, f"grad of {name}(dim={d}) on {shape}")


# dims that are not integers; NumPy integers are integers
DIM_TYPES = [("float", 1.0), ("str", "a"), ("np_int64", np.int64(1)), ("np_int32", np.int32(-1))]


@pytest.mark.parametrize("op", ["sum", "size", "squeeze", "softmax", "unsqueeze", "flip",
                                "cumsum", "select", "unbind"])
@pytest.mark.parametrize("label,d", DIM_TYPES, ids=[t[0] for t in DIM_TYPES])
def test_dim_type(op, label, d):
    f = dict(DIM_OPS)[op]
    x = fg.tensor(DIM_INPUTS["2x3"][0]())
    kind, out = _run(f, fg, x, d)
    if label in ("float", "str"):
        assert (kind, out) == ("err", TypeError)
    else:
        assert kind == "ok"
        _assert_same(out, f(fg, x, int(d)), op)


def test_one_dim_message():
    """Every op names the bad dim with PyTorch's phrase and the valid range."""
    x = fg.ones(2, 3)
    for f in (lambda: x.sum(2), lambda: x.size(-3), lambda: x.squeeze(5), lambda: x.softmax(2),
              lambda: x.flip(2), lambda: x.select(2, 0), lambda: x.unsqueeze(4)):
        with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range "
                                             r"of \[-\d, \d\], but got -?\d\)"):
            f()
    for f in (lambda: fg.tensor(1.).size(0), lambda: fg.tensor(1.).stride(-1),
              lambda: fg.tensor(1.).unbind(0)):
        with pytest.raises(IndexError, match="Dimension specified as -?0|1 but tensor has no "
                                             "dimensions"):
            f()


# --- the crashes: in a subprocess, so a segfault fails one test instead of the run ---------------

# name: (program, what it prints first)
_CRASH_PROGRAMS = {
    "size_0d": ("print(fg.tensor(1.).size(0))", "IndexError"),
    "size_neg_0d": ("print(fg.tensor(1.).size(-1))", "IndexError"),
    "stride_0d": ("print(fg.tensor(1.).stride(0))", "IndexError"),
    "squeeze_0d": ("print(fg.tensor(1.).squeeze(0), fg.tensor(1.).squeeze(-1),"
                   " fg.tensor(1.).squeeze((0,)))", "tensor(1.) tensor(1.) tensor(1.)"),
    "hook_shape_mm": ("x = fg.ones(2, 3, requires_grad=True)\n"
                      "out = x @ fg.ones(3, 4)\n"
                      "out.register_hook(lambda g: fg.ones(3))\n"
                      "out.sum().backward()", "RuntimeError"),
    "hook_shape_embedding": ("w = fg.ones(5, 4, requires_grad=True)\n"
                             "out = fg.nn.functional.embedding(fg.tensor([1, 2]), w)\n"
                             "out.register_hook(lambda g: fg.tensor(1.0))\n"
                             "out.sum().backward()", "RuntimeError"),
}


@pytest.mark.parametrize("name", sorted(_CRASH_PROGRAMS))
def test_no_crash_in_subprocess(name):
    """Ran with bounds checks off these indexed past an array (segfault or heap overflow);
    now each ends in a Python exception or a result."""
    program, expected = _CRASH_PROGRAMS[name]
    code = ("import sys\nsys.path[:0] = " + repr(sys.path) + "\nfrom _backend import fg\n"
            "try:\n" + "".join("    " + ln + "\n" for ln in program.splitlines())
            + "except (IndexError, RuntimeError) as e:\n    print(type(e).__name__, e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=os.path.dirname(__file__))
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
    assert r.stdout.startswith(expected), r.stdout


# --- hooks that return another shape or dtype ----------------------------------------------------

def _hooked(T, where, ret):
    x = T.ones(2, 3, requires_grad=True)
    if where == "leaf":
        x.register_hook(lambda g: ret(T))
        (x * 2).sum().backward()
    else:
        out = x @ T.ones(3, 4) if where == "mm" else x * 2
        out.register_hook(lambda g: ret(T))
        out.sum().backward()
    return x.grad


HOOK_RETURNS = [
    ("0d", lambda T: T.tensor(1.0)),
    ("ones3", lambda T: T.ones(3)),
    ("row", lambda T: T.ones(1, 3)),
    ("float64", lambda T: T.ones(2, 3, dtype=T.float64)),
    ("int64", lambda T: T.ones(2, 3, dtype=T.int64)),
    ("number", lambda T: 5.0),
    ("same", lambda T: T.full((2, 3), 3.0)),
]


@pytest.mark.parametrize("where", ["leaf", "mm", "mul"])
@pytest.mark.parametrize("label,ret", HOOK_RETURNS, ids=[h[0] for h in HOOK_RETURNS])
def test_hook_result_checked(where, label, ret):
    if where == "mm" and label == "same":
        ret = lambda T: T.full((2, 4), 3.0)     # noqa: E731 -- the output's shape
    kind, out = _run(_hooked, fg, where, ret)
    expected = {"number": ("err", TypeError), "same": ("ok", None)}.get(label, ("err", RuntimeError))
    assert kind == expected[0], f"{where} hook returning {label}: {out!r}"
    if kind == "err":
        assert out is expected[1]
        if out is RuntimeError:
            with pytest.raises(RuntimeError, match="has changed the (size|type) of value"):
                _hooked(fg, where, ret)
    else:
        assert tuple(out.shape) == (2, 3) and out.dtype == fg.float32
        if torch is not None:
            _assert_same(out, _hooked(torch, where, ret), "grad through a hook")


def test_node_hooks_checked():
    """grad_fn pre-hooks and post-hooks go through the same check."""
    x = fg.ones(2, 3, requires_grad=True)
    y = x * 2
    y.grad_fn.register_prehook(lambda gs: (fg.ones(3),))
    with pytest.raises(RuntimeError, match="has changed the size of value"):
        y.sum().backward()
    x = fg.ones(2, 3, requires_grad=True)
    y = x * 2
    y.grad_fn.register_hook(lambda gin, gout: (fg.ones(2, 3, dtype=fg.float64),) + gin[1:])
    with pytest.raises(RuntimeError, match="has changed the type of value"):
        y.sum().backward()


# --- indices -------------------------------------------------------------------------------------

def _be(a):
    return np.asarray(a).astype(np.asarray(a).dtype.newbyteorder(">"))


# (id, f(T, x)) with x = arange(6).reshape(2, 3) as float32
INDEX_CASES = [
    ("int", lambda T, x: x[1]),
    ("int_out", lambda T, x: x[2]),
    ("int_neg_out", lambda T, x: x[-3]),
    ("int_dim1_out", lambda T, x: x[:, 3]),
    ("too_many", lambda T, x: x[0, 0, 0]),
    ("float", lambda T, x: x[1.0]),
    ("slice_past_end", lambda T, x: x[5:9]),
    ("slice_neg_step", lambda T, x: x[::-1]),
    ("slice_zero_step", lambda T, x: x[::0]),
    ("none_ellipsis", lambda T, x: x[None, ..., 1]),
    ("tensor_long", lambda T, x: x[T.tensor([1, 0, 1])]),
    ("tensor_long_out", lambda T, x: x[T.tensor([0, 2])]),
    ("tensor_long_neg_out", lambda T, x: x[T.tensor([-3])]),
    ("tensor_0d", lambda T, x: x[T.tensor(1)]),
    ("tensor_empty", lambda T, x: x[T.tensor([], dtype=T.int64)]),
    ("tensor_float", lambda T, x: x[T.tensor([0.0])]),
    ("mask", lambda T, x: x[x > 1]),
    ("mask_rows", lambda T, x: x[T.tensor([True, False])]),
    ("mask_wrong_shape", lambda T, x: x[T.tensor([True, False, True])]),
    ("numpy_int", lambda T, x: x[np.int64(1)]),
    ("numpy_array", lambda T, x: x[np.array([1, 0])]),
    ("numpy_array_be", lambda T, x: x[_be([1, 0])]),
    ("numpy_mask", lambda T, x: x[np.array([False, True])]),
    ("list", lambda T, x: x[[1, 1]]),
    ("list_out", lambda T, x: x[[0, 5]]),
    ("0d_int", lambda T, x: x[0, 0][0]),
    ("0d_ellipsis", lambda T, x: x[0, 0][...]),
    ("0d_none", lambda T, x: x[0, 0][None]),
    ("0d_mask", lambda T, x: x[0, 0][T.tensor(True)]),
    ("0size_int", lambda T, x: x[:0][0]),
    ("0size_slice", lambda T, x: x[:0][1:]),
    ("0size_mask", lambda T, x: x[:0][x[:0] > 0]),
]


def _setter(value, key=1):
    def f(T, x):
        y = x.clone()
        y[key] = value(T) if callable(value) else value
        return y
    return f


SETITEM_CASES = [
    ("number", _setter(7.0)),
    ("tensor_row", _setter(lambda T: T.tensor([1.0, 2.0, 3.0]))),
    ("tensor_0d", _setter(lambda T: T.tensor(4.0))),
    ("tensor_wrong_shape", _setter(lambda T: T.ones(2))),
    ("tensor_float64", _setter(lambda T: T.ones(3, dtype=T.float64))),
    ("key_out", _setter(1.0, key=5)),
    ("key_mask", _setter(0.0, key=np.array([True, False]))),
    ("key_tensor_out", _setter(lambda T: T.tensor(1.0), key=(slice(None), 3))),
    ("key_0d_tensor", _setter(2.0, key=(0, 0))),
]


# fastgrad reads these right where PyTorch refuses them: a big-endian NumPy index array
_INDEX_DIFFERENT = {"numpy_array_be"}


@pytest.mark.parametrize("name,f", INDEX_CASES + SETITEM_CASES,
                         ids=[c[0] for c in INDEX_CASES + SETITEM_CASES])
def test_index(name, f):
    def case(T):
        x = T.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
        return _run(f, T, x)
    kind, out = case(fg)
    if name.endswith("_out") or name in ("too_many", "0d_int", "0size_int"):
        assert (kind, out) == ("err", IndexError), f"{name}: {out!r}"
    if torch is not None and name not in _INDEX_DIFFERENT:
        tkind, tout = case(torch)
        assert kind == tkind, f"{name}: fastgrad {out!r}, torch {tout!r}"
        if kind == "err":
            assert out is tout, f"{name}: fastgrad {out}, torch {tout}"
        else:
            _assert_same(out, tout, name)


# --- arrays from outside -------------------------------------------------------------------------

def _unaligned(values, dtype=np.float32):
    n = np.dtype(dtype).itemsize
    buf = np.zeros(len(values) * n + 1, dtype=np.uint8)
    a = buf[1:].view(dtype)
    a[:] = values
    assert not a.flags.aligned
    return a


def _readonly(values, dtype=np.float32):
    a = np.array(values, dtype=dtype)
    a.flags.writeable = False
    return a


VALUES = [0.5, 1.0, 2.0]
ARRAYS = [
    ("native", lambda: np.array(VALUES, dtype=np.float32)),
    ("big_endian_f4", lambda: np.array(VALUES, dtype=">f4")),
    ("big_endian_f8", lambda: np.array(VALUES, dtype=">f8")),
    ("big_endian_i8", lambda: np.array([1, 2, 3], dtype=">i8")),
    ("little_endian_explicit", lambda: np.array(VALUES, dtype="<f4")),
    ("unaligned_f4", lambda: _unaligned(VALUES)),
    ("unaligned_f8", lambda: _unaligned(VALUES, np.float64)),
    ("readonly", lambda: _readonly(VALUES)),
    ("strided", lambda: np.arange(6, dtype=np.float32)[::2]),
    ("negative_stride", lambda: np.array(VALUES, dtype=np.float32)[::-1]),
    ("fortran", lambda: np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))),
    ("0d", lambda: np.array(2.5, dtype=np.float32)),
    ("0size", lambda: np.zeros((0, 3), dtype=np.float32)),
    ("float16", lambda: np.array(VALUES, dtype=np.float16)),
    ("uint16", lambda: np.array([1, 2], dtype=np.uint16)),
    ("str", lambda: np.array(["a"])),
    ("object", lambda: np.array([1, None], dtype=object)),
]

CONSTRUCTORS = [
    ("tensor", lambda T, a: T.tensor(a)),
    ("as_tensor", lambda T, a: T.as_tensor(a)),
    ("from_numpy", lambda T, a: T.from_numpy(a)),
    ("tensor_list", lambda T, a: T.tensor([a, a]) if a.ndim == 1 and a.dtype.kind == "f" else
     T.tensor(a)),
]

# Where fastgrad and PyTorch part ways on purpose: PyTorch refuses negative strides (fastgrad
# reads them right), and fastgrad has no uint16 dtype (a TypeError, not garbage).
_ARRAY_DIFFERENT = {"negative_stride", "uint16"}


def _numeric_use(t):
    """Values read back through compiled kernels: garbage memory would show here."""
    if t.dtype.is_floating_point and t.numel():
        return [t, (t * t).sum(), t.exp(), t + 1]
    return [t]


def _array_case(T, ctor, arr):
    kind, t = _run(ctor, T, arr())
    if kind == "err":
        return kind, t
    return kind, _numeric_use(t)


@pytest.mark.parametrize("label,arr", ARRAYS, ids=[a[0] for a in ARRAYS])
@pytest.mark.parametrize("cname,ctor", CONSTRUCTORS, ids=[c[0] for c in CONSTRUCTORS])
def test_array_input(cname, ctor, label, arr):
    kind, out = _array_case(fg, ctor, arr)
    a = arr()
    if kind == "ok":                                 # the values read back are the array's
        expect = np.asarray(a, dtype=np.float64)
        got = out[0].numpy().astype(np.float64)
        if cname == "tensor_list" and a.ndim == 1 and a.dtype.kind == "f":
            expect = np.stack([expect, expect])
        np.testing.assert_allclose(got, expect, rtol=1e-3)
        assert out[0].dtype == fg.from_numpy(np.zeros(0, a.dtype.newbyteorder("="))).dtype
        if len(out) > 1:
            np.testing.assert_allclose(out[1].item(), (expect * expect).sum(), rtol=1e-3)
    elif label.startswith("big_endian") and cname != "tensor_list":
        assert out is ValueError                     # PyTorch refuses: no silent garbage
    if torch is not None and label not in _ARRAY_DIFFERENT:
        tkind, tout = _array_case(torch, ctor, arr)
        assert kind == tkind, f"{cname}({label}): fastgrad {out!r}, torch {tout!r}"
        if kind == "err":
            assert out is tout, f"{cname}({label}): fastgrad {out}, torch {tout}"
        else:
            _assert_same(out, tout, f"{cname}({label})")


def test_big_endian_message():
    with pytest.raises(ValueError, match="byte order different from the native byte order"):
        fg.from_numpy(np.array(VALUES, dtype=">f4"))


def test_shared_arrays_track_the_numpy_memory():
    """from_numpy/as_tensor of unaligned and strided arrays read the array's own memory."""
    for a in (_unaligned(VALUES), np.arange(6, dtype=np.float32)[::2]):
        t = fg.from_numpy(a)
        a[1] = 9.0
        assert t.tolist()[1] == 9.0
        np.testing.assert_allclose(t.exp().numpy(), np.exp(a), rtol=1e-6)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own rule: PyTorch writes the memory")
def test_readonly_array_refuses_inplace_write():
    """A tensor sharing a read-only NumPy array cannot be written in place (PyTorch writes into
    the read-only memory: undefined behaviour); the error says to clone."""
    t = fg.from_numpy(_readonly(VALUES))
    with pytest.raises(RuntimeError, match="read-only.*clone"):
        t.add_(1)
    with pytest.raises(RuntimeError, match="read-only"):
        t[0] = 2.0
    np.testing.assert_allclose((t.clone().add_(1)).numpy(), np.add(VALUES, 1))


_SET_ARRAYS = [a for a in ARRAYS if a[0] in ("native", "big_endian_f4", "big_endian_f8",
                                              "unaligned_f4", "readonly", "strided",
                                              "negative_stride")]


@pytest.mark.parametrize("label,arr", _SET_ARRAYS, ids=[a[0] for a in _SET_ARRAYS])
@pytest.mark.skipif(REFERENCE, reason="PyTorch's setitem takes no NumPy array (a TypeError)")
def test_setitem_numpy_value(label, arr):
    """NumPy values written into a tensor arrive as their numbers whatever their layout (an
    extension: PyTorch raises TypeError)."""
    x = fg.zeros(3)
    x[:] = arr()
    np.testing.assert_allclose(x.numpy(), np.asarray(arr(), dtype=np.float64), rtol=1e-6)


def test_where_numpy_operand_rejected():
    """where() takes tensors or numbers, as in PyTorch; an array is not a number."""
    with pytest.raises(TypeError):
        fg.where(fg.tensor([True, False, True]), fg.ones(3), np.array([0.5, 3, 2], dtype=">f4"))


def test_load_big_endian_members(tmp_path):
    """A file written on a big-endian machine (members stored '>f4') loads as its numbers."""
    if fg.__name__ != "fastgrad":
        pytest.skip("fastgrad's file format")
    p = tmp_path / "m.fg"
    t = fg.tensor([[0.5, 1.0], [2.0, -3.0]])
    fg.save({"w": t, "i": fg.tensor([1, 2])}, p)
    with np.load(p, allow_pickle=False) as z:
        members = {k: (z[k].astype(z[k].dtype.newbyteorder(">")) if k != "__manifest__"
                       else z[k]) for k in z.files}
    with open(p, "wb") as f:
        np.savez(f, **members)
    d = fg.load(p)
    np.testing.assert_array_equal(d["w"].numpy(), t.numpy())
    np.testing.assert_allclose((d["w"] * d["w"]).sum().item(), 14.25)
    assert d["i"].tolist() == [1, 2]

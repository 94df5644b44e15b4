"""The alias table (fastgrad._aliases): every row is published on the sides it names, and an op
published as both `Tensor.<name>` and `fastgrad.<name>` computes the same numbers either way (and
PyTorch's, where installed). No compiled TensorBase method is shadowed by the facade."""
import numpy as np
import pytest

from _backend import REFERENCE

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's own alias table")

import fastgrad  # noqa: E402
from fastgrad import _aliases  # noqa: E402
from fastgrad import functional  # noqa: E402
from fastgrad._core.tensor import TensorBase  # noqa: E402

RNG = np.random.default_rng(12)
A = RNG.uniform(0.1, 0.9, (3, 4))                     # in (0, 1): asin, erfinv, log ... defined
B = RNG.uniform(0.1, 0.9, (3, 4))
I = RNG.integers(-8, 9, (3, 4))
J = RNG.integers(1, 9, (3, 4))
P = RNG.random((3, 4)) > 0.5
Q = RNG.random((3, 4)) > 0.5
IDX = np.array([2, 0])
IDX2 = RNG.integers(0, 4, (3, 2))
V3 = RNG.uniform(-1, 1, (2, 3))
W3 = RNG.uniform(-1, 1, (2, 3))
SPD = A @ A.T + np.eye(3)                               # symmetric positive-definite

# name -> (input, args, kwargs); arrays become tensors. Unlisted names: (A, (), {}).
EXAMPLES = {
    "maximum": (A, (B,), {}), "minimum": (A, (B,), {}), "clamp": (A, (0.2, 0.6), {}),
    "clip": (A, (0.2, 0.6), {}), "atan2": (A, (B,), {}), "arctan2": (A, (B,), {}),
    "hypot": (A, (B,), {}), "logaddexp": (A, (B,), {}), "isclose": (A, (B,), {}),
    "allclose": (A, (B,), {}), "equal": (A, (A,), {}), "lerp": (A, (B, 0.3), {}),
    "eq": (I, (J,), {}), "ne": (I, (J,), {}), "lt": (A, (B,), {}), "le": (I, (J,), {}),
    "gt": (A, (B,), {}), "ge": (I, (J,), {}),
    "floor_divide": (I, (J,), {}), "remainder": (I, (J,), {}), "fmod": (I, (J,), {}),
    "bitwise_and": (I, (J,), {}), "bitwise_or": (I, (J,), {}), "bitwise_xor": (I, (J,), {}),
    "bitwise_not": (I, (), {}), "logical_and": (P, (Q,), {}), "logical_or": (P, (Q,), {}),
    "logical_xor": (P, (Q,), {}), "logical_not": (P, (), {}),
    "pow_": (A, (2.5,), {}), "kron": (A[:2, :2], (B[:2, :2],), {}),
    "max": (A, (1,), {}), "min": (A, (0,), {}), "argmax": (A, (1,), {}),
    "argmin": (A, (1,), {}), "amax": (A, (1,), {}), "amin": (A, (0,), {}),
    "all": (P, (1,), {}), "any": (P, (0,), {}), "prod": (A, (1,), {}),
    "var": (A, (1,), {}), "std": (A, (0,), {}), "norm": (A, (), {}),
    "logsumexp": (A, (1,), {}), "cumsum": (A, (1,), {}), "cumprod": (A, (1,), {}),
    "cummax": (A, (1,), {}), "cummin": (A, (0,), {}), "sort": (A, (1,), {}),
    "argsort": (A, (1,), {}), "topk": (A, (2,), {}), "kthvalue": (A, (2, 1), {}),
    "softmax": (A, (1,), {}), "log_softmax": (A, (0,), {}), "diff": (A, (), {"dim": 1}),
    "prelu": (A - 0.5, (np.array([0.1, 0.2, -0.3, 2.0]),), {}), "hardshrink": (A - 0.5, (0.2,), {}),
    "roll": (A, (1, 1), {}), "triu": (A, (), {}), "tril": (A, (1,), {}),
    "reshape": (A, (4, 3), {}), "unflatten": (A, (1, (2, 2)), {}), "squeeze": (A[None], (0,), {}),
    "unsqueeze": (A, (0,), {}), "transpose": (A, (0, 1), {}), "swapaxes": (A, (0, 1), {}),
    "movedim": (A, (0, 1), {}), "permute": (A, (1, 0), {}), "broadcast_to": (A, ((2, 3, 4),), {}),
    "diagonal": (A, (1,), {}), "flip": (A, (1,), {}), "repeat_interleave": (A, (2,), {}),
    "chunk": (A, (2, 1), {}), "split": (A, (3, 1), {}), "unbind": (A, (1,), {}),
    "select": (A, (1, 2), {}), "narrow": (A, (1, 1, 2), {}), "index_select": (A, (1, IDX), {}),
    "gather": (A, (1, IDX2), {}), "take_along_dim": (A, (IDX2, 1), {}),
    "scatter_add": (A, (1, IDX2, B[:, :2]), {}), "scatter": (A, (1, IDX2, B[:, :2]), {}),
    "scatter_reduce": (A, (1, IDX2, B[:, :2], "amax"), {}),
    "index_add": (A, (1, IDX, B[:, :2]), {}), "index_copy": (A, (1, IDX, B[:, :2]), {}),
    "index_fill": (A, (1, IDX, -1.0), {}), "masked_fill": (A, (P, 0.0), {}),
    "masked_scatter": (A, (P, B), {}), "masked_select": (A, (P,), {}),
    "matmul": (A, (B.T,), {}), "mm": (A, (B.T,), {}), "bmm": (A[None], (B.T[None],), {}),
    "mv": (A, (B[0],), {}), "dot": (A[0], (B[0],), {}), "inner": (A[0], (B[0],), {}),
    "outer": (A[0], (B[1],), {}), "addmm": (A[:, :2], (A, B.T[:, :2]), {}),
    "cross": (V3, (W3,), {"dim": 1}), "diag": (A, (1,), {}),
    "logaddexp2": (A, (B,), {}), "copysign": (A, (B - 0.5,), {}), "fmax": (A, (B,), {}),
    "fmin": (A, (B,), {}), "xlogy": (A, (B,), {}), "nextafter": (A, (B,), {}),
    "ldexp": (A, (B,), {}), "float_power": (A, (B,), {}), "dist": (A, (B, 3), {}),
    "nansum": (A, (1,), {}),
    "count_nonzero": (A, (1,), {}),
    "inverse": (SPD, (), {}), "det": (SPD, (), {}), "logdet": (SPD, (), {}),
    "slogdet": (SPD, (), {}), "cholesky": (SPD, (), {}), "matrix_power": (SPD, (3,), {}),
    "pinverse": (A, (), {}),
}


def _fg(v):
    if isinstance(v, np.ndarray):
        return fastgrad.tensor(v)
    if isinstance(v, tuple):
        return tuple(_fg(x) for x in v)
    return v


def _numbers(r):
    if isinstance(r, (tuple, list)):
        return [_numbers(x) for x in r]
    if hasattr(r, "detach"):
        return r.detach().cpu().numpy() if hasattr(r, "cpu") else r.detach().numpy()
    return r


def _same(a, b, exact=True):
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y, exact)
    elif isinstance(a, np.ndarray):
        assert a.shape == b.shape
        if exact:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b.astype(a.dtype), rtol=1e-10, atol=1e-12)
    else:
        assert a == b


BOTH = sorted(n for n, (_, where) in _aliases.ALIASES.items() if where == _aliases.BOTH)


def test_every_row_is_published_on_its_sides():
    for name, (fn, where) in _aliases.ALIASES.items():
        on_tensor = fastgrad.Tensor.__dict__.get(name)
        on_module = getattr(fastgrad, name, None)
        assert (on_tensor is fn) == (where != _aliases.FUNCTION), name
        assert (on_module is fn) == (where != _aliases.METHOD), name


def test_the_table_covers_both_sides_of_every_shared_name():
    """A name that is both a Tensor method and a fastgrad function is one row of the table
    (or a function with arguments of its own in functional.py), never two definitions."""
    own = {n for n, v in vars(functional).items() if getattr(v, "__module__", "") ==
           "fastgrad.functional"}
    assert not own & set(_aliases.FUNCTIONS), "functional.py redefines a row of the table"
    shared = {n for n, v in fastgrad.Tensor.__dict__.items() if callable(v)
              and callable(getattr(fastgrad, n, None)) and not n.startswith("__")}
    assert shared - set(_aliases.ALIASES) - own == set()


@pytest.mark.parametrize("name", BOTH)
def test_method_and_function_compute_the_same(name):
    x, args, kwargs = EXAMPLES.get(name, (A, (), {}))
    inplace = name.endswith("_")
    t1, t2 = fastgrad.tensor(x), fastgrad.tensor(x)
    by_method = getattr(t1, name)(*_fg(args), **kwargs)
    by_function = getattr(fastgrad, name)(t2, *_fg(args), **kwargs)
    _same(_numbers(by_method), _numbers(by_function))
    if inplace:
        _same(_numbers(t1), _numbers(t2))
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x)
    targs = tuple(torch.tensor(a) if isinstance(a, np.ndarray) else a for a in args)
    expected = getattr(tx, name)(*targs, **kwargs)
    _same(_numbers(by_method), _numbers(expected), exact=False)


def test_no_compiled_method_is_shadowed():
    """Tensor's own attributes never hide a TensorBase method (zero_ and div once did: the
    compiled ones were dead and behaved differently)."""
    assert set(fastgrad.Tensor.__dict__) & set(TensorBase.__dict__) == {"__doc__"}


def test_zero_and_div_as_pytorch():
    x = fastgrad.tensor([1.0, -2.0], requires_grad=True) * 1
    assert type(x.zero_().grad_fn).__name__ == "ZeroBackward0"
    assert fastgrad.tensor([7.0, -7.0]).div(2, rounding_mode="floor").tolist() == [3.0, -4.0]
    y = fastgrad.tensor([7.0, -7.0])
    y.div_(2, rounding_mode="trunc")
    assert y.tolist() == [3.0, -3.0]

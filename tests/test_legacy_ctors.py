"""PyTorch's legacy constructors: Tensor(data), Tensor(*sizes), FloatTensor and friends,
isinstance checks against them, Tensor.type() names and conversions, autograd.Variable (compared
with PyTorch where installed; FASTGRAD_TEST_BACKEND=torch runs the file on PyTorch)."""
import numpy as np
import pytest

from _backend import fg, REFERENCE

LEGACY = {"FloatTensor": "float32", "DoubleTensor": "float64", "HalfTensor": "float16",
          "LongTensor": "int64", "IntTensor": "int32", "ShortTensor": "int16",
          "CharTensor": "int8", "ByteTensor": "uint8", "BoolTensor": "bool"}


def _dt(name):
    return getattr(fg, name)


def test_tensor_from_data_is_float32():
    for d in ([1, 2], [[1.5], [2.0]], (1, 2), [True, False], np.array([1, 2]),
              np.array([1.0, 2.0]), []):
        t = fg.Tensor(d)
        assert type(t) is fg.Tensor and t.dtype == fg.float32
        assert t.tolist() == np.asarray(d, dtype=np.float32).tolist()


def test_tensor_from_sizes_and_empty():
    assert fg.Tensor(2, 3).shape == (2, 3) and fg.Tensor(2, 3).dtype == fg.float32
    assert fg.Tensor(fg.Size([2, 3])).shape == (2, 3)
    assert fg.Tensor((2, 3)).tolist() == [2.0, 3.0]          # a tuple is data, not a size
    assert fg.Tensor(0).shape == (0,) and fg.Tensor(np.int64(4)).shape == (4,)
    e = fg.Tensor()
    assert e.shape == (0,) and e.dtype == fg.float32
    assert fg.Tensor(2, device="cpu").shape == (2,)


def test_tensor_from_tensor_and_ndarray_share_storage():
    x = fg.zeros(2)
    y = fg.Tensor(x)
    y[0] = 5.0
    assert x.tolist() == [5.0, 0.0]
    a = np.zeros(2, dtype=np.float32)
    fg.Tensor(a)[1] = 7.0
    assert a.tolist() == [0.0, 7.0]
    b = np.zeros(2, dtype=np.float64)                        # cast: a float32 copy
    fg.Tensor(b)[1] = 7.0
    assert b.tolist() == [0.0, 0.0]
    assert fg.Tensor(fg.tensor([1, 2])).dtype == fg.int64   # PyTorch keeps the tensor's dtype


@pytest.mark.parametrize("args,error", [((2.5,), TypeError), (("a",), TypeError),
                                        ((2, 3.0), TypeError), ((-1,), RuntimeError),
                                        (([[1, 2], [3]],), ValueError)])
def test_tensor_bad_arguments(args, error):
    with pytest.raises(error):
        fg.Tensor(*args)


def test_tensor_rejects_keyword_options():
    with pytest.raises(TypeError):
        fg.Tensor([1, 2], dtype=fg.float64)
    with pytest.raises(TypeError):
        fg.Tensor(3, requires_grad=True)


@pytest.mark.parametrize("name", list(LEGACY))
def test_typed_constructors(name):
    T, dt = getattr(fg, name), _dt(LEGACY[name])
    t = T([1, 0])
    assert t.dtype == dt and type(t) is fg.Tensor and t.tolist() == np.array(
        [1, 0], dtype=LEGACY[name]).tolist()
    assert T(2, 3).shape == (2, 3) and T(2, 3).dtype == dt
    assert T().shape == (0,) and T().dtype == dt
    assert T.dtype == dt
    assert isinstance(fg.zeros(2, dtype=dt), T)
    others = [n for n in LEGACY if n != name]
    assert not any(isinstance(fg.zeros(2, dtype=dt), getattr(fg, o)) for o in others)
    assert isinstance(fg.zeros(2, dtype=dt), fg.Tensor)
    assert fg.zeros(2, dtype=dt).type() == f"torch.{name}"
    assert fg.zeros(2).type(T).dtype == dt
    assert fg.zeros(2).type(f"torch.{name}").dtype == dt
    with pytest.raises(TypeError):
        T(1.5)


def test_typed_constructor_conversions_and_mismatch():
    assert fg.LongTensor([1.7, 2]).tolist() == [1, 2]
    assert fg.DoubleTensor(np.array([1, 2], dtype=np.float32)).dtype == fg.float64
    assert fg.ByteTensor([1, 255]).tolist() == [1, 255]
    x = fg.ones(2)
    alias = fg.FloatTensor(x)
    alias[0] = 3.0
    assert x.tolist() == [3.0, 1.0]
    with pytest.raises(TypeError):
        fg.LongTensor(fg.tensor([1.5]))


def test_type_strings_and_conversions():
    x = fg.zeros(2)
    assert x.type() == "torch.FloatTensor"
    assert x.type(fg.float64).dtype == fg.float64
    assert x.type("torch.DoubleTensor").dtype == fg.float64
    assert x.type(fg.Tensor).dtype == fg.float32
    assert x.type(fg.LongTensor).tolist() == [0, 0]
    assert x.type(fg.float64, non_blocking=True).dtype == fg.float64
    with pytest.raises(ValueError, match="invalid type: 'float'"):
        x.type("float")


def test_variable_is_a_tensor():
    x = fg.ones(2, requires_grad=True)
    y = x * 2
    v = fg.autograd.Variable(y)
    assert type(v) is fg.Tensor and v.grad_fn is None and not v.requires_grad
    assert fg.autograd.Variable(x).is_leaf and not fg.autograd.Variable(x).requires_grad
    w = fg.autograd.Variable(fg.ones(2), requires_grad=True)
    assert w.requires_grad and w.is_leaf
    (w * 3).sum().backward()
    assert w.grad.tolist() == [3.0, 3.0]
    assert isinstance(fg.ones(1), fg.autograd.Variable)
    with pytest.raises(TypeError, match="Variable data has to be a tensor"):
        fg.autograd.Variable([1, 2])
    with pytest.warns(UserWarning, match="volatile"):
        fg.autograd.Variable(fg.ones(1), volatile=True)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own promise about its allocation path")
def test_subclasses_and_internal_allocation_unaffected():
    p = fg.nn.Parameter(fg.ones(2))
    assert type(p) is fg.nn.Parameter and p.requires_grad
    assert type(p * 2) is fg.Tensor and type(fg.ones(2) + 1) is fg.Tensor

    class Mine(fg.Tensor):
        pass

    m = Mine.__new__(Mine)
    assert isinstance(m, fg.Tensor)


def test_legacy_behaviour_matches_torch():
    torch = pytest.importorskip("torch")
    cases = [lambda lib: lib.Tensor([1, 2]), lambda lib: lib.Tensor(np.array([[1, 2]])),
             lambda lib: lib.LongTensor([1.7, -2.2]), lambda lib: lib.BoolTensor([1, 0]),
             lambda lib: lib.IntTensor(np.array([3.9])), lambda lib: lib.Tensor([]),
             lambda lib: lib.HalfTensor([0.5])]
    for make in cases:
        a, b = make(fg), make(torch)
        assert (str(a.dtype), tuple(a.shape), a.tolist()) == (str(b.dtype), tuple(b.shape),
                                                              b.tolist())
    for name in LEGACY:
        assert getattr(fg, name)(1).type() == getattr(torch, name)(1).type()
        assert repr(getattr(fg, name)) == repr(getattr(torch, name))

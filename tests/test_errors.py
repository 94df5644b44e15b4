"""Errors and warnings: exception types exactly as PyTorch, messages carrying
PyTorch's key phrase (PYTORCH-COMPAT.md §1, §2)."""
import re
import warnings

import pytest

from _backend import REFERENCE, fg


def _x(*values):
    return fg.tensor(list(values) or [1.0, 2.0, 3.0], requires_grad=True)


# 1
def test_implicit_grad_needs_scalar_output():
    y = _x() * 2
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        y.backward()


# 2
@pytest.mark.parametrize("build", [lambda x: x.exp().sum(), lambda x: (x * x).sum(),
                                   lambda x: (x.sigmoid() * 2).sum(), lambda x: x.pow(2).mean()],
                         ids=["exp", "mul", "sigmoid", "pow"])
def test_backward_twice_through_freed_graph(build):
    x = _x()
    y = build(x)
    y.backward()
    with pytest.raises(RuntimeError, match=r"Trying to backward through the graph a second time") as exc:
        y.backward()
    assert "retain_graph=True" in str(exc.value)


# 3
def test_backward_on_tensor_without_grad():
    y = fg.tensor([1.0, 2.0]).sum()
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        y.backward()


def test_backward_on_result_computed_under_no_grad():
    x = _x()
    with fg.no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        y.backward()


# 4
def test_inplace_modification_of_saved_output():
    x = _x()
    y = x.exp()                 # ExpBackward0 saves its output y
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation") as exc:
        y.sum().backward()
    msg = str(exc.value)
    assert "version 1" in msg and "expected version 0" in msg
    assert "output 0 of Exp" in msg          # 2.13 names the forward op (not ExpBackward0)


def test_inplace_modification_of_saved_input():
    x = _x()
    h = x * 1
    y = h * h                   # MulBackward0 saves h
    h.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation") as exc:
        y.sum().backward()
    assert "output 0 of Mul" in str(exc.value)


def test_inplace_modification_not_saved_is_fine():
    x = _x()
    h = x * 1
    y = h + 1                   # AddBackward0 saves nothing
    h.mul_(2)
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


# 5
@pytest.mark.parametrize("op", ["add_", "sub_", "mul_", "div_", "zero_", "fill_", "copy_"])
def test_inplace_on_leaf_requiring_grad(op):
    x = _x()
    args = {"zero_": (), "fill_": (1.0,), "copy_": (fg.ones(3),)}.get(op, (2.0,))
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        getattr(x, op)(*args)
    assert x.tolist() == [1.0, 2.0, 3.0] and x._version == 0


def test_augmented_assignment_on_leaf_requiring_grad():
    x = _x()
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        x += 1


# 7
def test_numpy_on_tensor_requiring_grad():
    with pytest.raises(RuntimeError, match=re.escape("Can't call numpy() on Tensor that requires grad")) as exc:
        _x().numpy()
    assert "detach()" in str(exc.value)
    with pytest.raises(RuntimeError, match=re.escape("Can't call numpy() on Tensor that requires grad")):
        (_x() * 2).numpy()


# 9
def test_requires_grad_on_nonleaf():
    y = _x() * 2
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf variables"):
        y.requires_grad = False
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf variables"):
        y.requires_grad_(False)
    assert y.requires_grad


# 10
@pytest.mark.parametrize("make", [
    lambda: fg.tensor([1, 2], requires_grad=True),
    lambda: fg.tensor(3).requires_grad_(),
    lambda: fg.tensor([True]).requires_grad_(),
    lambda: fg.arange(3, requires_grad=True),
    lambda: fg.zeros(2, dtype=fg.int64, requires_grad=True),
], ids=["tensor", "requires_grad_", "bool", "arange", "zeros"])
def test_integer_tensor_cannot_require_grad(make):
    with pytest.raises(RuntimeError, match="(?i)only Tensors of floating point"):
        make()


def test_integer_tensor_requires_grad_setter():
    t = fg.tensor([1, 2])
    with pytest.raises(RuntimeError, match="(?i)only Tensors of floating point"):
        t.requires_grad = True
    assert not t.requires_grad
    t.requires_grad = False      # allowed


# 12
BROADCAST_MISMATCH = [
    ((3,), (4,)),
    ((2, 3), (2,)),
    ((2, 3), (3, 2)),
    ((4, 1, 3), (2, 2)),
]


@pytest.mark.parametrize("sa, sb", BROADCAST_MISMATCH, ids=str)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "maximum", "eq", "lt", "add_"])
def test_broadcast_mismatch(op, sa, sb):
    a = fg.ones(*sa) * 2.0
    b = fg.ones(*sb)
    fn = {
        "add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "div": lambda: a / b,
        "pow": lambda: a ** b, "maximum": lambda: fg.maximum(a, b), "eq": lambda: a == b,
        "lt": lambda: a < b, "add_": lambda: a.add_(b),
    }[op]
    with pytest.raises(RuntimeError) as exc:
        fn()
    if REFERENCE:
        return
    msg = str(exc.value)
    for shape in (sa, sb):
        forms = [str(tuple(shape)), str(list(shape)), "x".join(map(str, shape)),
                 "(" + ", ".join(map(str, shape)) + ")"]
        assert any(f in msg for f in forms), f"message does not name shape {shape}: {msg!r}"


def test_broadcast_mismatch_with_grad():
    a = fg.ones(3, requires_grad=True)
    b = fg.ones(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="must match|broadcast"):
        a * b


# 13
@pytest.mark.parametrize("gshape", [(4,), (3, 1), (), (1, 3)], ids=str)
def test_gradient_of_wrong_shape(gshape):
    y = _x() * 2                            # shape (3,)
    g = fg.ones(*gshape) if gshape else fg.tensor(1.0)
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        y.backward(g)


# 14
def test_item_on_multi_element_tensor():
    with pytest.raises(RuntimeError, match="a Tensor with 3 elements cannot be converted to Scalar"):
        fg.tensor([1.0, 2.0, 3.0]).item()
    with pytest.raises(RuntimeError, match="a Tensor with 0 elements cannot be converted to Scalar"):
        fg.zeros(0).item()


# 16
def test_retain_grad_without_requires_grad():
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has requires_grad=False"):
        fg.tensor([1.0, 2.0]).retain_grad()


# §2
def test_nonleaf_grad_warning_text():
    y = _x() * 2
    with pytest.warns(UserWarning) as record:
        assert y.grad is None
    msgs = [str(w.message) for w in record]
    assert any("The .grad attribute of a Tensor that is not a leaf Tensor is being accessed" in m for m in msgs)
    assert any("retain_grad()" in m for m in msgs)


def test_no_warning_for_nonleaf_with_retain_grad():
    y = _x() * 2
    y.retain_grad()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert y.grad is None


# Type and value errors at the boundary
def test_bad_constructor_input_is_a_python_exception():
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        fg.tensor([[1.0, 2.0], [3.0]])          # ragged
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        fg.tensor("abc")
    with pytest.raises(TypeError):
        fg.tensor([1.0]) + "a"


def test_reduction_bad_dim():
    x = fg.ones(2, 3)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.sum(2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.max(dim=-3)

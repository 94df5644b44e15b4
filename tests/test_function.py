"""autograd.Function: custom forward/backward, ctx API, setup_context style, examples."""
import numpy as np
import pytest

from _backend import fg, REFERENCE

Function = fg.autograd.Function


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


class ScaleNew(Function):                       # newer style: forward without ctx
    @staticmethod
    def forward(x, k):
        return x * k

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.k = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        assert ctx.needs_input_grad == (True, False)
        return grad * ctx.k, None


class WrongSquare(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x                          # should be 2 * x


def _x(*vals):
    return fg.tensor(list(vals), dtype=fg.float64, requires_grad=True)


def test_apply_records_a_named_node_and_backpropagates():
    x = _x(1.0, 2.0)
    y = Exp.apply(x)
    assert type(y.grad_fn).__name__ == "ExpBackward" and y.grad_fn.name() == "ExpBackward"
    assert y.grad_fn.next_functions[0][0] is not None
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([1.0, 2.0]))
    assert fg.autograd.gradcheck(Exp.apply, (x,))
    assert fg.autograd.gradgradcheck(Exp.apply, (x,))     # saved output under create_graph


def test_setup_context_style_and_non_tensor_args():
    x = _x(1.0, 2.0)
    y = ScaleNew.apply(x, 3.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_gradcheck_catches_a_wrong_backward():
    x = _x(0.5, -1.5, 2.0)
    with pytest.raises(RuntimeError, match="Jacobian mismatch for output 0 with respect to input 0"):
        fg.autograd.gradcheck(WrongSquare.apply, (x,))
    assert fg.autograd.gradcheck(WrongSquare.apply, (x,), raise_exception=False) is False


def test_no_grad_inputs_record_nothing():
    x = fg.tensor([1.0, 2.0])
    assert Exp.apply(x).grad_fn is None
    with fg.no_grad():
        assert Exp.apply(_x(1.0)).grad_fn is None


def test_saved_tensors_version_check():
    class SaveInput(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2

    a = _x(1.0, 2.0)
    h = a * 1
    y = SaveInput.apply(h)
    h.mul_(3)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_saved_tensors_freed_after_backward():
    x = _x(1.0)
    y = Exp.apply(x)
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()


def test_mark_non_differentiable_and_materialize_grads():
    class SortLike(Function):
        @staticmethod
        def forward(ctx, x):
            idx = fg.tensor(np.argsort(x.detach().numpy()))
            ctx.mark_non_differentiable(idx)
            return x * 2, idx

        @staticmethod
        def backward(ctx, g, g_idx):
            assert g_idx is not None and float(g_idx.abs().sum()) == 0   # materialized zeros
            return g * 2

    x = _x(3.0, 1.0)
    y, idx = SortLike.apply(x)
    assert not idx.requires_grad and y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_set_materialize_grads_false_passes_none():
    seen = []

    class TwoOut(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 1, x * 2

        @staticmethod
        def backward(ctx, g1, g2):
            seen.append((g1 is None, g2 is None))
            return g1 if g1 is not None else g2 * 2

    x = _x(1.0)
    a, b = TwoOut.apply(x)
    a.sum().backward()
    assert seen == [(False, True)]


def test_mark_dirty_inplace_forward():
    class AddOneInplace(Function):
        @staticmethod
        def forward(ctx, x):
            x.add_(1)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return g

    a = _x(1.0, 2.0)
    h = a * 1
    y = AddOneInplace.apply(h)
    assert y is h and type(h.grad_fn).__name__ == "AddOneInplaceBackward"
    np.testing.assert_allclose(h.detach().numpy(), [2.0, 3.0])
    (y * y).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [4.0, 6.0])


def test_input_returned_unchanged_gets_a_new_node():
    class Ident(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 3

    x = _x(1.0)
    y = Ident.apply(x)
    assert y is not x and y.grad_fn is not None and x.grad_fn is None
    y.sum().backward()
    assert float(x.grad) == 3.0


def test_wrong_number_of_gradients_is_an_error():
    class TooMany(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g, g

    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        TooMany.apply(_x(1.0)).sum().backward()


def test_wrong_gradient_shape_is_an_error():
    class BadShape(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return fg.ones(5, dtype=fg.float64)

    with pytest.raises(RuntimeError, match="invalid gradient at index 0"):
        BadShape.apply(_x(1.0, 2.0)).sum().backward()


def test_once_differentiable():
    class Sq(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @fg.autograd.function.once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = _x(3.0)
    y = Sq.apply(x)
    g0 = fg.ones(1, dtype=fg.float64, requires_grad=True)
    (g,) = fg.autograd.grad(y, x, g0, create_graph=True)
    assert float(g) == 6.0
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


def test_ctx_attributes_survive_to_backward_and_grad_fn_is_ctx():
    class Keep(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.note = "hi"
            return x * 1

        @staticmethod
        def backward(ctx, g):
            assert ctx.note == "hi"
            return g

    y = Keep.apply(_x(1.0))
    assert y.grad_fn.note == "hi"
    y.sum().backward()


@pytest.mark.skipif(REFERENCE, reason="fastgrad's examples module")
def test_straight_through_round():
    from fastgrad.autograd.examples import straight_through_round
    x = fg.tensor([0.4, 1.6, -2.5], requires_grad=True)
    y = straight_through_round(x)
    np.testing.assert_array_equal(y.detach().numpy(), [0.0, 2.0, -2.0])
    (y * fg.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 2.0, 3.0])


@pytest.mark.skipif(REFERENCE, reason="fastgrad's examples module")
def test_gumbel_softmax_hard_is_one_hot_with_soft_gradient():
    from fastgrad.autograd.examples import gumbel_softmax
    fg.manual_seed(0)
    logits = fg.randn(5, 4, dtype=fg.float64, requires_grad=True)
    y = gumbel_softmax(logits, tau=0.5, hard=True)
    arr = y.detach().numpy()
    assert set(np.unique(arr)) <= {0.0, 1.0} and np.all(arr.sum(-1) == 1)
    w = fg.tensor(np.arange(4.0), dtype=fg.float64)
    (y * w).sum().backward()
    g = logits.grad.numpy()
    assert np.abs(g).sum() > 0
    np.testing.assert_allclose(g.sum(-1), 0, atol=1e-12)     # softmax gradient rows sum to 0
    soft = gumbel_softmax(logits, hard=False)
    np.testing.assert_allclose(soft.detach().numpy().sum(-1), 1.0)


class Affine9(Function):                          # more arguments than the fast call path holds
    @staticmethod
    def forward(ctx, x, a, b, c, d, e, f, g, h):
        ctx.save_for_backward(x)
        ctx.k = a + b + c + d + e + f + g + h
        return x * ctx.k

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        assert ctx.needs_input_grad == (True,) + (False,) * 8
        return (grad * ctx.k,) + (None,) * 8


def test_many_arguments_and_needs_input_grad():
    from _fd import check_grad
    check_grad(lambda t: Affine9.apply(t, *range(1, 9)), [np.array([1.0, -2.0, 0.5])],
               ref=lambda t: t * 36)
    check_grad(lambda t, u: ScaleNew.apply(t, 2.0) * u, [np.array([1.0, 2.0]),
                                                       np.array([3.0, -1.0])],
               ref=lambda t, u: 2 * t * u)


def test_needs_input_grad_mixed_arguments():
    seen = []

    class Mix(Function):
        @staticmethod
        def forward(ctx, a, k, b):
            return a * k + b

        @staticmethod
        def backward(ctx, g):
            seen.append(ctx.needs_input_grad)
            return g * 2, None, g

    a, b = _x(1.0, 2.0), fg.tensor([1.0, 1.0], dtype=fg.float64)
    Mix.apply(a, 2.0, b).sum().backward()
    Mix.apply(b, 2.0, a).sum().backward()
    assert seen == [(True, False, False), (False, False, True)]
    np.testing.assert_allclose(a.grad.numpy(), [3.0, 3.0])


class Double(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_apply_per_class_subclass_and_override():
    Base = Double

    class Child(Base):
        @staticmethod
        def forward(ctx, x):
            return x * 5

        @staticmethod
        def backward(ctx, g):
            return g * 5

    class Wrapped(Base):
        @classmethod
        def apply(cls, x):                        # user override delegating to Function.apply
            return super().apply(x) + 1

    x = _x(1.0, 2.0)
    assert Base.apply == Base.apply and Child.apply != Base.apply
    yc = Child.apply(x)
    assert type(yc.grad_fn).__name__ == "ChildBackward"
    yw = Wrapped.apply(x)
    np.testing.assert_allclose(yw.detach().numpy(), [3.0, 5.0])
    assert type(yw.grad_fn.next_functions[0][0]).__name__ == "WrappedBackward"
    (yc.sum() + yw.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0, 7.0])


def test_forward_replaced_after_class_creation_is_used():
    class F(Double):
        pass

    x = _x(1.0)
    assert F.apply(x).item() == 2.0
    F.forward = staticmethod(lambda ctx, t: t * 7)
    assert F.apply(x).item() == 7.0 and Double.apply(x).item() == 2.0


def test_grad_mode_inside_forward_and_restored():
    seen = []

    class Probe(Function):
        @staticmethod
        def forward(ctx, x):
            seen.append(fg.is_grad_enabled())
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g

    Probe.apply(_x(1.0))
    assert seen == [False] and fg.is_grad_enabled()
    with fg.no_grad():
        r = Probe.apply(_x(1.0))
        assert not fg.is_grad_enabled()
    assert r.grad_fn is None and fg.is_grad_enabled()
    with fg.inference_mode():
        with fg.enable_grad():
            Probe.apply(_x(1.0))
            assert fg.is_grad_enabled()
        assert not fg.is_grad_enabled()
    assert seen == [False] * 3 and fg.is_grad_enabled()

"""Inputs a careless user passes to the layers: a norm's weight of the wrong shape, one value per
normalised group, running statistics of the wrong length, batch dims that do not broadcast,
empty lists, mixed dtypes, max-pooling windows that hold only padding. PyTorch's exception types
and results (FASTGRAD_TEST_BACKEND=torch runs the file on PyTorch itself)."""
import math
import warnings

import numpy as np
import pytest

from _backend import fg

F = fg.nn.functional


@pytest.mark.parametrize("w_shape,b_shape", [((3,), None), (None, (1, 4)), ((1,), None),
                                             ((4, 1), (4,))])
def test_layer_norm_weight_and_bias_must_have_the_normalized_shape(w_shape, b_shape):
    """A (3,) weight for rows of 4 used to be read one element past its end."""
    x = fg.arange(8, dtype=fg.float32).reshape(2, 4)
    w = None if w_shape is None else fg.ones(*w_shape, requires_grad=True)
    b = None if b_shape is None else fg.zeros(*b_shape, requires_grad=True)
    with pytest.raises(RuntimeError, match="to be of same shape as normalized_shape"):
        F.layer_norm(x, (4,), w, b)
    with pytest.raises(RuntimeError, match="to be of same shape as normalized_shape"):
        F.layer_norm(x.double(), (4,), None if w is None else w.double(),
                     None if b is None else b.double())


def test_layer_norm_needs_a_normalized_dim():
    with pytest.raises(RuntimeError, match="at least 1-dimensional"):
        F.layer_norm(fg.tensor(3.0), ())


def test_rms_norm_weight_must_have_the_normalized_shape():
    with pytest.raises(RuntimeError, match="weight to be of same shape"):
        F.rms_norm(fg.ones(2, 4), (4,), fg.ones(1))


@pytest.mark.parametrize("shape,groups", [((1, 2), 2), ((1, 1), 1), ((1, 4, 1), 4)])
def test_group_norm_needs_more_than_one_value_per_group(shape, groups):
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        F.group_norm(fg.ones(*shape), groups)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        fg.nn.GroupNorm(groups, shape[1])(fg.ones(*shape))


@pytest.mark.parametrize("shape,groups", [((2, 4, 1), 4), ((1, 4, 2), 4), ((1, 2), 1)])
def test_group_norm_of_two_values_per_group_runs(shape, groups):
    y = F.group_norm(fg.arange(math.prod(shape), dtype=fg.float32).reshape(shape), groups)
    assert tuple(y.shape) == shape and bool(fg.isfinite(y).all())


@pytest.mark.parametrize("which", ["running_mean", "running_var", "weight", "bias"])
def test_batch_norm_parameters_must_have_one_element_per_channel(which):
    args = {"running_mean": fg.zeros(3), "running_var": fg.ones(3), "weight": fg.ones(3),
            "bias": fg.zeros(3)}
    args[which] = fg.ones(5)
    with pytest.raises(RuntimeError, match=f"{which} should contain 3 elements not 5"):
        F.batch_norm(fg.ones(4, 3), **args)


def test_attention_batch_dims_must_broadcast():
    with pytest.raises(RuntimeError, match="must match the size of tensor b"):
        F.scaled_dot_product_attention(fg.ones(1, 2, 3, 4), fg.ones(1, 3, 3, 4),
                                       fg.ones(1, 3, 3, 4))
    out = F.scaled_dot_product_attention(fg.ones(1, 2, 3, 4), fg.ones(1, 1, 3, 4),
                                         fg.ones(2, 1, 3, 4))
    assert tuple(out.shape) == (2, 2, 3, 4)


def test_joining_nothing():
    with pytest.raises(ValueError, match="expected a non-empty list of Tensors"):
        fg.cat([])
    for fn in (fg.stack, fg.hstack, fg.vstack):
        with pytest.raises(RuntimeError, match="expects a non-empty TensorList"):
            fn([])


@pytest.mark.parametrize("name", ["atan2", "hypot", "logaddexp"])
def test_binary_math_promotes_as_arithmetic(name):
    """A 0-d float64 or an int64 tensor does not widen a float32 one (PyTorch's promotion)."""
    fn = getattr(fg, name)
    a = fg.ones(3)
    assert fn(a, fg.tensor(2.0, dtype=fg.float64)).dtype == fg.float32
    assert fn(a, fg.tensor([1, 2, 3])).dtype == fg.float32
    assert fn(a, fg.tensor(1)).dtype == fg.float32
    assert fn(fg.ones(3, dtype=fg.float64), a).dtype == fg.float64
    if name == "atan2":                  # PyTorch's hypot and logaddexp refuse two int64 tensors
        assert fn(fg.tensor([1, 2]), fg.tensor([3, 4])).dtype == fg.float32


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_pool_window_of_padding_only(dtype):
    """With dilation, a window can hold only padding: its output is -inf and it takes no
    gradient (the element beside it used to be taken as its maximum)."""
    dt = getattr(fg, dtype)
    x = fg.tensor([[[[5.0]]]], dtype=dt, requires_grad=True)
    y = F.max_pool2d(x, kernel_size=2, padding=1, dilation=2)
    assert y.detach().numpy().ravel().tolist() == [-math.inf]
    (y * 0).sum().backward()
    assert x.grad.numpy().ravel().tolist() == [0.0]
    y1 = F.max_pool1d(fg.tensor([[[5.0]]], dtype=dt), kernel_size=2, padding=1, dilation=2)
    assert y1.numpy().ravel().tolist() == [-math.inf]


def test_max_pool_windows_of_padding_beside_real_ones():
    """A 3x3 input whose even-offset windows (dilation 2) start in the padding: outputs and
    gradients against the windows taken by hand."""
    x = fg.tensor(np.arange(9.0).reshape(1, 1, 3, 3), requires_grad=True)
    y = F.max_pool2d(x, kernel_size=2, stride=1, padding=1, dilation=2)
    # window (oh, ow) reads rows {oh - 1, oh + 1} and cols {ow - 1, ow + 1} inside 0..2
    want = np.full((3, 3), -np.inf)
    for oh in range(3):
        for ow in range(3):
            vals = [r * 3 + c for r in (oh - 1, oh + 1) for c in (ow - 1, ow + 1)
                    if 0 <= r < 3 and 0 <= c < 3]
            if vals:
                want[oh, ow] = max(vals)
    np.testing.assert_array_equal(y.detach().numpy()[0, 0], want)
    g = np.where(np.isfinite(want), 1.0, 0.0)
    y.backward(fg.tensor(g.reshape(1, 1, 3, 3)))
    grad = np.zeros(9)
    for v in want[np.isfinite(want)].ravel():
        grad[int(v)] += 1
    np.testing.assert_array_equal(x.grad.numpy().ravel(), grad)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_input_gradient_with_an_inf_weight(dtype):
    """An inf weight gives inf where it meets the gradient and no NaN elsewhere (the shifted rows'
    zero gaps used to multiply it); conv_transpose2d's forward is the same computation."""
    dt = getattr(fg, dtype)
    w = np.ones((1, 1, 2, 2))
    w[0, 0, 0, 0] = np.inf
    x = fg.ones(1, 1, 3, 3, dtype=dt, requires_grad=True)
    F.conv2d(x, fg.tensor(w, dtype=dt)).sum().backward()
    want = [[np.inf, np.inf, 1], [np.inf, np.inf, 2], [1, 2, 1]]
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], want)
    y = F.conv_transpose2d(fg.ones(1, 1, 2, 2, dtype=dt), fg.tensor(w, dtype=dt))
    np.testing.assert_array_equal(y.numpy()[0, 0], want)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 3, 3, 3))
    w[3, 1, 0, 2], w[7, 0, 1, 1] = np.inf, -np.inf
    x = fg.tensor(rng.standard_normal((2, 3, 8, 8)), dtype=dt, requires_grad=True)
    F.conv2d(x, fg.tensor(w, dtype=dt), padding=1).sum().backward()
    g = x.grad.numpy()
    assert not np.isnan(g).any() and np.isinf(g).sum() == 226


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_attention_mask_and_is_causal_together(kind):
    """PyTorch 2.13 takes both and masks with both: the same as the causal part folded into the
    mask by hand."""
    rng = np.random.default_rng(5)
    q, k, v = (fg.tensor(rng.standard_normal(s), dtype=fg.float64)
               for s in ((1, 2, 4, 8), (1, 2, 5, 8), (1, 2, 5, 8)))
    causal = np.tril(np.ones((4, 5), dtype=bool))
    if kind == "bool":
        m = rng.random((4, 5)) > 0.3
        m[:, 0] = True
        both = fg.tensor(m & causal)
        m = fg.tensor(m)
    else:
        m = rng.standard_normal((4, 5))
        both = fg.tensor(np.where(causal, m, -np.inf))
        m = fg.tensor(m)
    got = F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=True)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=both)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
    # elsewhere (3-D inputs, or with dropout) PyTorch refuses the pair
    with pytest.raises(RuntimeError, match="should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q[0], k[0], v[0], attn_mask=m, is_causal=True)
    with pytest.raises(RuntimeError, match="should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=True, dropout_p=0.1)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_of_huge_inputs_warns_nothing(approximate):
    """x**3 and x * x overflow for |x| ~ 1e30: inf inside, quietly, as in PyTorch (no NumPy
    RuntimeWarning, so -W error runs)."""
    import warnings
    x = fg.tensor([1e30, -1e30, 3.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.gelu(x, approximate=approximate)
        y.sum().backward()
    assert y.detach().numpy()[0] == np.float32(1e30) and y.detach().numpy()[1] == 0


@pytest.mark.parametrize("x_dt,p_dt,ok", [("float32", "float64", False),
                                          ("float64", "float32", False),
                                          ("float32", "float16", False),
                                          ("float16", "float32", True)])
def test_layer_norm_parameters_of_another_dtype(x_dt, p_dt, ok):
    """PyTorch's "mixed dtype" rule: float32/float64 inputs take parameters of their own dtype;
    a float16 input also takes float32 ones (and the result stays float16)."""
    x = fg.randn(2, 4).to(getattr(fg, x_dt))
    w = fg.ones(4, dtype=getattr(fg, p_dt))
    if ok:
        assert F.layer_norm(x, (4,), w, fg.zeros(4, dtype=w.dtype)).dtype == x.dtype
    else:
        with pytest.raises(RuntimeError, match="mixed dtype"):
            F.layer_norm(x, (4,), w)


def test_functional_layer_norm_takes_a_tuple():
    with pytest.raises(TypeError, match="must be tuple of ints, not int"):
        F.layer_norm(fg.ones(2, 4), 4)
    assert tuple(fg.nn.LayerNorm(4)(fg.ones(2, 4)).shape) == (2, 4)


def test_empty_reductions_and_minus_inf_logits_do_not_warn():
    """NaN for the mean of nothing and -inf for logsumexp of nothing, and a -inf logit of
    another class, come without NumPy's RuntimeWarnings (an error under -W error), as in
    PyTorch."""
    x = fg.zeros(0, 3, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert np.isnan(x.mean(0).detach().numpy()).all() and np.isnan(float(x.mean()))
        assert (x.logsumexp(0).detach().numpy() == -np.inf).all()
        assert np.isnan(x.var(0).detach().numpy()).all()
        x.mean(0).sum().backward()
        z = fg.tensor([[-np.inf, 1.0, 2.0]], dtype=fg.float16)
        want = np.log(np.exp(1) + np.exp(2)) - 1
        np.testing.assert_allclose(float(F.cross_entropy(z, fg.tensor([1]),
                                                         weight=fg.ones(3, dtype=fg.float16))),
                                   want, rtol=2e-3)
    assert x.grad.shape == (0, 3)

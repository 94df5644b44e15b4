"""Central finite differences in float64: the gradient oracle of the suite.

`check_grad(fn, arrays)` runs `fn` on float64 tensors built from `arrays`,
backpropagates a random cotangent `v` (so `out.backward(v)` computes the
vector-Jacobian product), and compares each input's `.grad` with

    d/dx_i sum(v * fn(x))  ~=  (sum(v * fn(x + eps e_i)) - sum(v * fn(x - eps e_i))) / (2 eps)

evaluated on perturbed NumPy copies of the inputs. Optionally the forward
value is compared with a NumPy reference as well.
"""
import numpy as np

from _backend import fg

EPS = 1e-6
RTOL = 1e-5
ATOL = 1e-5


def _as_tensor(arr, requires_grad=False):
    return fg.tensor(np.array(arr, dtype=np.float64), dtype=fg.float64, requires_grad=requires_grad)


def _eval(fn, arrays):
    """fn(*arrays) as a float64 NumPy array, computed without recording a graph."""
    with fg.no_grad():
        out = fn(*[_as_tensor(a) for a in arrays])
    return np.array(out.detach().numpy(), dtype=np.float64)


def numerical_vjp(fn, arrays, cotangent, wrt=None, eps=EPS):
    """Central-difference gradient of sum(cotangent * fn(*arrays)) w.r.t. each array in `wrt`."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    wrt = range(len(arrays)) if wrt is None else wrt
    grads = {}
    for k in wrt:
        g = np.zeros_like(arrays[k])
        for idx in np.ndindex(arrays[k].shape):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            f_plus = np.sum(cotangent * _eval(fn, plus))
            f_minus = np.sum(cotangent * _eval(fn, minus))
            g[idx] = (f_plus - f_minus) / (2 * eps)
        grads[k] = g
    return grads


def check_grad(fn, arrays, ref=None, rng=None, wrt=None, rtol=RTOL, atol=ATOL, ref_rtol=1e-10):
    """Assert fn's analytic gradients (via backward) equal central finite differences.

    fn:     function of tensors -> one tensor (any shape, 0-d included)
    arrays: the input values (NumPy arrays / numbers); all become float64 tensors
    ref:    optional NumPy function; the forward value must match it
    wrt:    indices of the inputs that require grad (default: all); the others
            must end with `.grad is None`
    Returns the forward output as a NumPy array.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    wrt = list(range(len(arrays))) if wrt is None else list(wrt)
    inputs = [_as_tensor(a, requires_grad=(i in wrt)) for i, a in enumerate(arrays)]

    out = fn(*inputs)
    assert out.dtype == fg.float64, f"float64 inputs gave {out.dtype}"
    assert out.requires_grad and out.grad_fn is not None
    out_np = np.array(out.detach().numpy(), dtype=np.float64)
    if ref is not None:
        expected = np.asarray(ref(*arrays), dtype=np.float64)
        assert out_np.shape == expected.shape, f"shape {out_np.shape} != NumPy's {expected.shape}"
        np.testing.assert_allclose(out_np, expected, rtol=ref_rtol, atol=1e-12, err_msg="forward value")

    cotangent = np.array(rng.standard_normal(out_np.shape))
    out.backward(_as_tensor(cotangent))
    numeric = numerical_vjp(fn, arrays, cotangent, wrt=wrt)

    for i, t in enumerate(inputs):
        if i not in wrt:
            assert t.grad is None
            continue
        assert t.grad is not None, f"input {i} got no gradient"
        assert tuple(t.grad.shape) == arrays[i].shape, (
            f"input {i}: grad shape {tuple(t.grad.shape)} != input shape {arrays[i].shape}")
        assert t.grad.dtype == fg.float64
        np.testing.assert_allclose(t.grad.numpy(), numeric[i], rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i} vs central differences")
    return out_np

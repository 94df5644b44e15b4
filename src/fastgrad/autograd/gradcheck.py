"""gradcheck / gradgradcheck: the finite-difference oracle, as torch.autograd.gradcheck.

For every input that requires grad and every output, two Jacobians are built and compared:

    numerical[i, k]  = (f(x + eps e_i)[k] - f(x - eps e_i)[k]) / (2 eps)   (central differences)
    analytical[i, k] = d out[k] / d x[i]   from one backward pass per output element

Both are laid out as PyTorch prints them: rows are input elements, columns output elements.
A mismatch raises GradcheckError (a RuntimeError) naming the output, the input, the element that
differs most and by how much, with both matrices. Inputs should be float64: float32 warns, as
PyTorch does, because eps=1e-6 is below float32's resolution.
"""
import warnings

import numpy as np

from fastgrad._core.tensor import TensorBase

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    """Raised by gradcheck / gradgradcheck when a backward formula disagrees with the numbers."""


def _as_tuple(x):
    if isinstance(x, TensorBase):
        return (x,)
    if isinstance(x, (tuple, list)):
        return tuple(x)
    return (x,)


def _is_float(t):
    return isinstance(t, TensorBase) and t.is_floating_point()


def _outputs(func, inputs):
    return _as_tuple(func(*inputs))


def _fail(msg, raise_exception):
    if raise_exception:
        raise GradcheckError(msg)
    return False


def _numerical_jacobians(func, inputs, diff_idx, outputs, eps):
    """{(out j, in i): (n_i, m_j) float64 matrix} by central differences on the input data."""
    jac = {}
    for i in diff_idx:
        x = inputs[i]._np                     # perturbed in place, restored after each element
        mats = [np.zeros((x.size, o.numel()), dtype=np.float64) for o in outputs]
        for k, idx in enumerate(np.ndindex(x.shape)):
            orig = x[idx].item()
            vals = []
            for delta in (eps, -eps):
                x[idx] = orig + delta
                outs = _outputs(func, inputs)         # grad on: gradgradcheck's func calls grad
                vals.append([np.asarray(o.detach()._np, dtype=np.float64).reshape(-1)
                             if _is_float(o) else None for o in outs])
            x[idx] = orig
            for j in range(len(outputs)):
                if vals[0][j] is not None:
                    mats[j][k] = (vals[0][j] - vals[1][j]) / (2 * eps)
        for j in range(len(outputs)):
            jac[(j, i)] = mats[j]
    return jac


def _analytical_jacobians(inputs, diff_idx, outputs):
    """{(out j, in i): matrix} from one autograd.grad per output element; None entries = 0."""
    from fastgrad.autograd import grad
    from fastgrad._creation import zeros_like
    jac = {}
    diff_inputs = [inputs[i] for i in diff_idx]
    for j, o in enumerate(outputs):
        m = o.numel()
        mats = {i: np.zeros((inputs[i].numel(), m), dtype=np.float64) for i in diff_idx}
        if _is_float(o) and o.requires_grad:
            for k in range(m):
                seed = zeros_like(o)
                seed._np.reshape(-1)[k] = 1
                gs = grad(o, diff_inputs, seed, retain_graph=True, allow_unused=True)
                for i, g in zip(diff_idx, gs):
                    if g is not None:
                        if tuple(g.shape) != tuple(inputs[i].shape):
                            raise GradcheckError(
                                f"Gradient for input {i} has shape {tuple(g.shape)} but the input "
                                f"has shape {tuple(inputs[i].shape)}")
                        mats[i][:, k] = np.asarray(g.detach()._np, dtype=np.float64).reshape(-1)
        for i in diff_idx:
            jac[(j, i)] = mats[i]
    return jac


def _fmt(mat):
    from fastgrad._creation import tensor
    return repr(tensor(mat))


def _compare(num, ana, diff_idx, n_out, rtol, atol, raise_exception, prefix=""):
    for j in range(n_out):
        for i in diff_idx:
            a, n = ana[(j, i)], num[(j, i)]
            if not np.allclose(a, n, rtol=rtol, atol=atol):
                err = np.abs(a - n) - rtol * np.abs(n)
                r, c = np.unravel_index(int(np.argmax(err)), err.shape)
                msg = (f"{prefix}Jacobian mismatch for output {j} with respect to input {i},\n"
                       f"numerical:{_fmt(n)}\nanalytical:{_fmt(a)}\n\n"
                       f"The largest difference is at input element {r}, output element {c}: "
                       f"numerical {n[r, c]:.6g}, analytical {a[r, c]:.6g}, "
                       f"|difference| {abs(a[r, c] - n[r, c]):.3g} "
                       f"(allowed: atol={atol} + rtol={rtol} * |numerical|).\n")
                return _fail(msg, raise_exception)
    return True


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              nondet_tol=0.0, check_undefined_grad=True, check_grad_dtypes=False,
              check_batched_grad=False, check_batched_forward_grad=False, check_forward_ad=False,
              check_backward_ad=True, fast_mode=False, masked=None):
    """Check the gradients of `func` at `inputs` against central finite differences.

    Returns True, or raises GradcheckError (returns False when raise_exception=False)."""
    inputs = _as_tuple(inputs)
    diff_idx = [i for i, t in enumerate(inputs) if isinstance(t, TensorBase) and t.requires_grad]
    if not diff_idx:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but "
                         "none of the them have requires_grad=True.")
    for i in diff_idx:
        if inputs[i].dtype.np_dtype != np.float64:
            warnings.warn(
                f"Input #{i} requires gradient and is not a double precision floating point or "
                f"complex. This check will likely fail if all the inputs are not of double "
                f"precision floating point or complex. ", UserWarning, stacklevel=2)
    outputs = _outputs(func, inputs)
    if not check_backward_ad:
        return True
    if not any(_is_float(o) and o.requires_grad for o in outputs):
        return _fail("gradcheck: none of the outputs requires grad, so there is nothing to "
                     "check; make sure the function uses its inputs with differentiable ops",
                     raise_exception)
    ana = _analytical_jacobians(inputs, diff_idx, outputs)
    again = _analytical_jacobians(inputs, diff_idx, outputs)
    for key in ana:
        if not np.allclose(ana[key], again[key], rtol=0, atol=nondet_tol):
            return _fail(f"Backward is not reentrant, i.e., running backward with same input and "
                         f"grad_output multiple times gives different values, although analytical "
                         f"gradient matches numerical gradient. The tolerance for nondeterminism "
                         f"was {nondet_tol}. (output {key[0]}, input {key[1]})", raise_exception)
    num = _numerical_jacobians(func, inputs, diff_idx, outputs, eps)
    return _compare(num, ana, diff_idx, len(outputs), rtol, atol, raise_exception)


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  gen_non_contig_grad_outputs=False, raise_exception=True, nondet_tol=0.0,
                  check_undefined_grad=True, check_grad_dtypes=False, check_batched_grad=False,
                  check_fwd_over_rev=False, check_rev_over_rev=True, fast_mode=False,
                  masked=False):
    """Check second derivatives: gradcheck of (inputs, grad_outputs) -> d<grad_outputs, f>/dx,
    computed with create_graph=True. Random float64 grad_outputs when none are given."""
    from fastgrad.autograd import grad
    from fastgrad._creation import randn_like
    inputs = _as_tuple(inputs)
    if grad_outputs is None:
        outs = _outputs(func, inputs)
        grad_outputs = tuple(randn_like(o).requires_grad_() for o in outs
                             if _is_float(o) and o.requires_grad)
    else:
        grad_outputs = _as_tuple(grad_outputs)
    n_in = len(inputs)
    diff_idx = [i for i, t in enumerate(inputs) if isinstance(t, TensorBase) and t.requires_grad]

    def first_derivative(*args):
        ins, gos = args[:n_in], args[n_in:]
        outs = [o for o in _outputs(func, ins) if _is_float(o) and o.requires_grad]
        gs = grad(outs, [ins[i] for i in diff_idx], gos, create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_derivative, inputs + tuple(grad_outputs), eps=eps, atol=atol,
                     rtol=rtol, raise_exception=raise_exception, nondet_tol=nondet_tol)


class _CallableModule(type(warnings)):
    """torch.autograd.gradcheck is the function, but `import fastgrad.autograd.gradcheck` (this
    module loads lazily) binds the module under that name: calling the module runs gradcheck."""

    def __call__(self, *args, **kwargs):
        return gradcheck(*args, **kwargs)


import sys as _sys  # noqa: E402
_sys.modules[__name__].__class__ = _CallableModule

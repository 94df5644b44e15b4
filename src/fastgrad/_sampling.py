"""Sampling on tensors with PyTorch's streams: the in-place Tensor methods (normal_, uniform_,
random_, exponential_, bernoulli_, bernoulli, multinomial) and torch.normal / bernoulli /
multinomial. Each draws into a NumPy buffer with the compiled kernels of _core/random.pyx
(Note [PyTorch's streams]) in the order PyTorch draws, then writes the tensor."""
import numbers
import warnings

import numpy as np

from fastgrad._core import dtypes as _dtypes
from fastgrad._core import random as _rk
from fastgrad._core.tensor import TensorBase
from fastgrad._creation_base import numpy_dtype, size_arg, wrap
from fastgrad.random import _gen

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_F16, _F32, _F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)


class _Info:
    """What the samplers need to know about one dtype (built once per dtype: np.finfo and
    np.iinfo cost microseconds per call)."""

    def __init__(self, npdt):
        dt = _dtypes.from_numpy_dtype(npdt)
        self.torch_name, self.c_name = dt.scalar_name, dt.c_name
        self.is_float = npdt.kind == "f"
        if self.is_float:
            fi = np.finfo(npdt)
            self.lo, self.hi, self.digits = float(fi.min), float(fi.max), fi.nmant + 1
            self.int_max = None
        elif npdt.kind == "b":
            self.lo, self.hi, self.int_max = 0, 1, 1
        else:
            ii = np.iinfo(npdt)
            self.lo, self.hi, self.int_max = int(ii.min), int(ii.max), int(ii.max)


_INFOS = {}


def _info(npdt):
    info = _INFOS.get(npdt)
    if info is None:
        info = _INFOS[npdt] = _Info(np.dtype(npdt))
    return info


def _torch_name(npdt):
    return _info(np.dtype(npdt)).torch_name


def _need_float(npdt, kernel):
    if not _info(npdt).is_float:
        raise NotImplementedError(f'"{kernel}" not implemented for \'{_torch_name(npdt)}\'; '
                                  f"draw into a floating-point tensor (float32/float64)")


# -- arrays ------------------------------------------------------------------------------------

def uniform_array(shape, npdt, low=0.0, high=1.0, generator=None):
    """A new array of `shape` uniform on [low, high) (PyTorch's uniform_)."""
    npdt = np.dtype(npdt)
    if (npdt is _F32 or npdt is _F64) and low == 0.0 and high == 1.0:   # rand(): nothing to check
        out = np.empty(shape, npdt)
        _rk.uniform_(_gen(generator), out, 0.0, 1.0)
        return out
    _need_float(npdt, "check_uniform_bounds")
    low, high = float(low), float(high)
    info = _info(npdt)
    for name, v in (("from", low), ("to", high)):
        if not info.lo <= v <= info.hi:
            raise RuntimeError(f"{name} is out of bounds for {info.torch_name}")
    if low > high:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found "
                           f"from={low:g} > to={high:g}")
    if high - low > info.hi:
        raise RuntimeError(f"uniform_ expects to-from <= std::numeric_limits<"
                           f"{_torch_name(npdt)}>::max(), but found to={high:g} and "
                           f"from={low:g} which result in to-from to exceed the limit")
    g = _gen(generator)
    if npdt == _F16:                 # drawn in float32, rounded, then kept below `high`
        out = np.empty(shape, _F32)
        _rk.uniform_(g, out, low, high)
        out = out.astype(_F16)
        out[out == np.float16(high)] = np.float16(low)
        return out
    out = np.empty(shape, npdt)
    _rk.uniform_(g, out, low, high)
    return out


def normal_array(shape, npdt, mean=0.0, std=1.0, generator=None, blocks=True):
    """A new array of `shape` from Normal(mean, std) (PyTorch's normal_; blocks=False: the
    scalar path PyTorch takes for a non-contiguous tensor)."""
    npdt = np.dtype(npdt)
    _need_float(npdt, "normal_kernel_cpu")
    mean, std = float(mean), float(std)
    if not std >= 0.0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")
    g = _gen(generator)
    if npdt == _F16 and blocks:
        return _normal_half(g, shape, mean, std)
    out = np.empty(shape, _F32 if npdt == _F16 else npdt)
    _rk.normal_(g, out, mean, std, blocks)
    return out.astype(npdt, copy=False)


def _normal_half(g, shape, mean, std):
    """float16 draws 16 float32 uniforms per block (the last partial block redoes the last 16
    elements), computes in float32, then rounds."""
    n = int(np.prod(shape, dtype=np.int64))
    if n < 16:
        out = np.empty(shape, _F32)
        _rk.normal_(g, out, mean, std)
        return out.astype(_F16)
    full, rem = divmod(n, 16)
    buf = np.empty(16 * (full + (1 if rem else 0)), _F32)
    _rk.normal_(g, buf, mean, std)
    flat = np.empty(n, _F32)
    flat[:16 * full] = buf[:16 * full]
    if rem:
        flat[n - 16:] = buf[16 * full:]
    return flat.astype(_F16).reshape(shape)


def _update_from(frm, npdt):
    """PyTorch moves `from` up to the next value the float dtype can hold exactly."""
    plus1 = int(np.array(frm + 1, dtype=np.float64).astype(npdt).astype(np.float64))
    if plus1 < frm:
        n = abs(frm + 1).bit_length() - 1
        frm = plus1 + (1 << (n - _info(npdt).digits + 1))
    return frm


def _update_to(to, npdt):
    minus1 = int(np.array(to - 1, dtype=np.float64).astype(npdt).astype(np.float64))
    if minus1 >= to:
        n = abs(to - 1).bit_length() - 1
        to = minus1 - (1 << (n - _info(npdt).digits + 1))
    return to


def _check_range(frm, to_inc, npdt):
    info = _info(npdt)
    if info.is_float:
        d = info.digits
        for name, v in (("from", frm), ("to - 1", to_inc)):
            if v < -(1 << d) or v > (1 << d):
                warnings.warn(f"{name} is out of bounds [-(2^{d}), 2^{d}]. Due to precision "
                              f"limitations {info.torch_name} can support discrete uniform "
                              f"distribution only within this range; use a narrower range or "
                              f"a wider dtype", stacklevel=4)
    if not info.lo <= frm <= info.hi:
        raise RuntimeError(f"from is out of bounds for {info.c_name}")
    if not info.lo <= to_inc <= info.hi:
        raise RuntimeError(f"to - 1 is out of bounds for {info.c_name}")


def random_array(shape, npdt, frm=0, to=None, generator=None, default=False):
    """PyTorch's random_: integers in [frm, to) (to=None: up to the dtype's largest integer;
    default=True: random_() with no bounds)."""
    npdt = np.dtype(npdt)
    g = _gen(generator)
    out = np.empty(shape, np.int64)
    if default:
        if npdt == np.int64 or npdt == _F64:
            modulus, wide = (1 << 63) if npdt == np.int64 else (1 << 53) + 1, True
        elif npdt.kind == "f":
            modulus, wide = (1 << _info(npdt).digits) + 1, False
        else:
            modulus, wide = _info(npdt).int_max + 1, False
        if out.size:
            _rk.integers_(g, out, modulus, 0, wide)
        return _from_wide(out, npdt)
    frm = int(frm)
    for v in (frm, to):
        if v is not None and not _INT64_MIN <= int(v) <= _INT64_MAX:
            raise ValueError(f"Overflow when unpacking long long: bound {int(v)} does not fit in "
                             f"int64; use bounds in [-2**63, 2**63)")
    if to is not None:
        to = int(to)
        if frm >= to:
            raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got "
                               f"from={frm} >= to={to}")
        if npdt.kind == "f":
            frm, to = _update_from(frm, npdt), _update_to(to, npdt)
            if frm >= to:
                raise RuntimeError(f"random_ expects 'from' casted to dtype to be less than "
                                   f"'to' casted to dtype, but got from={frm} >= to={to}")
        _check_range(frm, to - 1, npdt)
        span = (to - frm) % (1 << 64)
    elif frm != _INT64_MIN:
        if npdt.kind == "f":
            to_inc = min(1 << _info(npdt).digits, _INT64_MAX)
            frm = _update_from(frm, npdt)
            if frm >= to_inc:
                raise RuntimeError(f"random_ expects 'from' casted to dtype to be less than or "
                                   f"equal to 'to_inc' casted to dtype, but got from={frm} > "
                                   f"to_inc={to_inc}")
        else:
            to_inc = _info(npdt).int_max
        _check_range(frm, to_inc, npdt)
        span = (to_inc - frm + 1) % (1 << 64)
    else:
        if out.size:
            _rk.integers_(g, out, 0, 0, True)
        return _from_wide(out, npdt)
    if out.size:
        _rk.integers_(g, out, span, frm, span >= (1 << 28))
    return _from_wide(out, npdt)


# -- in-place Tensor methods --------------------------------------------------------------------

def _contiguous(arr):
    """C-contiguous, keeping 0-d arrays 0-d (np.ascontiguousarray makes them 1-d)."""
    return np.require(arr, requirements="C")


def _write(t, arr):
    """Write a freshly drawn array into tensor t in place (PyTorch's in-place samplers)."""
    return t.copy_(wrap(_contiguous(arr)))


def _shape_dtype(t):
    arr = t._np
    return arr.shape, arr.dtype


class _MemoryOrder:
    """PyTorch fills a non-contiguous tensor in the order its elements lie in memory (dimensions
    sorted by stride). Draw in that order with shape `draw_shape`, then `place` turns the draws
    into the tensor's own index order."""

    def __init__(self, t):
        arr = t._np
        self.contiguous = arr.flags.c_contiguous
        self.perm = None
        self.draw_shape = arr.shape
        if not self.contiguous and arr.ndim > 1:
            perm = sorted(range(arr.ndim), key=lambda d: -abs(arr.strides[d]))
            if perm != list(range(arr.ndim)):
                self.perm = perm
                self.draw_shape = tuple(arr.shape[d] for d in perm)

    def place(self, vals):
        return vals if self.perm is None else np.transpose(vals, np.argsort(self.perm))


def normal_(self, mean=0.0, std=1.0, *, generator=None):
    shape, dt = _shape_dtype(self)
    if self.numel() == 0:
        if not float(std) >= 0.0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {float(std):g}")
        return self
    order = _MemoryOrder(self)
    vals = normal_array(order.draw_shape, dt, mean, std, generator, blocks=order.contiguous)
    return _write(self, order.place(vals))


def uniform_(self, a=0.0, b=1.0, *, generator=None, **kw):
    a, b = kw.pop("from", a), kw.pop("to", b)
    if kw:
        raise TypeError(f"uniform_() got unexpected keyword arguments {sorted(kw)}")
    order = _MemoryOrder(self)
    out = uniform_array(order.draw_shape, self._np.dtype, a, b, generator)
    return _write(self, order.place(out)) if self.numel() else self


def random_(self, *args, generator=None, **kw):
    """random_() / random_(to) / random_(from, to) / random_(from, None)."""
    if len(args) > 2:
        raise TypeError("random_() takes at most 2 positional arguments (from, to)")
    frm, to, default = 0, None, False
    if len(args) == 2:
        frm, to = args
    elif len(args) == 1:
        if "to" in kw:
            frm = args[0]
        else:
            to = args[0]
    frm, to = kw.pop("from", frm), kw.pop("to", to)
    if kw:
        raise TypeError(f"random_() got unexpected keyword arguments {sorted(kw)}")
    if not args and frm == 0 and to is None:
        default = True
    for v in (frm, to):
        if isinstance(v, TensorBase):
            raise TypeError("random_(): from and to must be Python ints")
    order = _MemoryOrder(self)
    out = random_array(order.draw_shape, self._np.dtype, frm, to, generator, default)
    return _write(self, order.place(out)) if self.numel() else self


def exponential_(self, lambd=1.0, *, generator=None):
    shape, dt = _shape_dtype(self)
    _need_float(dt, "exponential_cpu")
    if not lambd > 0.0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd:g}")
    if self.numel() == 0:
        return self
    order = _MemoryOrder(self)
    out = np.empty(order.draw_shape, _F32 if dt == _F16 else dt)
    _rk.exponential_(_gen(generator), out, float(lambd))
    return _write(self, order.place(out.astype(dt, copy=False)))


def _double_draws(self, kind, a, b, generator):
    """log_normal_ / cauchy_ / geometric_: float64 draws cast to the tensor's dtype."""
    if self.numel() == 0:
        return self
    order = _MemoryOrder(self)
    out = np.empty(order.draw_shape, np.float64)
    _rk.double_draws_(_gen(generator), out, kind, float(a), float(b))
    return _write(self, _from_wide(order.place(out), self._np.dtype))


def _from_wide(arr, npdt):
    """Cast float64/int64 draws to npdt as C++ does: float16 goes through float32 (c10::Half is
    built from a float), which can round differently from a direct cast."""
    if npdt == _F16:
        arr = arr.astype(_F32)
    return arr.astype(npdt, copy=False)


def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
    _need_float(self._np.dtype, "log_normal_cpu")
    if not std > 0.0:
        raise RuntimeError(f"log_normal_ expects std > 0.0, but found std={std:g}")
    return _double_draws(self, 0, mean, std, generator)


def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
    _need_float(self._np.dtype, "cauchy_cpu")
    return _double_draws(self, 1, median, sigma, generator)


def geometric_(self, p, *, generator=None):
    if not 0.0 < p < 1.0:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p:g}")
    return _double_draws(self, 2, p, 0.0, generator)


def _bernoulli_values(shape, p, generator):
    """uint8 0/1 array of `shape` with probability p (a number or an array broadcastable to
    shape)."""
    g = _gen(generator)
    out = np.empty(shape, np.uint8)
    if isinstance(p, np.ndarray):
        if p.dtype.kind != "f":
            raise NotImplementedError(f'"bernoulli_tensor_cpu_p_" not implemented for '
                                      f"'{_torch_name(p.dtype)}'; pass floating-point probs")
        if p.size and not (((p >= 0) & (p <= 1)).all()):
            raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false; "
                               "bernoulli probabilities must lie in [0, 1]")
        pp = _contiguous(np.broadcast_to(p.astype(_F32) if p.dtype == _F16 else p,
                                                  shape))
        if out.size:
            _rk.bernoulli_tensor(g, out, pp)
        return out
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p:g}")
    if out.size:
        _rk.bernoulli_scalar(g, out, p)
    return out


def bernoulli_(self, p=0.5, *, generator=None):
    shape, dt = _shape_dtype(self)
    order = _MemoryOrder(self)
    if isinstance(p, TensorBase):
        p = np.broadcast_to(p.detach()._np, shape)
        if order.perm is not None:
            p = np.transpose(p, order.perm)
    vals = _bernoulli_values(order.draw_shape, p, generator)
    return _write(self, order.place(vals).astype(dt)) if self.numel() else self


def bernoulli(input, p=None, *, generator=None, out=None):
    """torch.bernoulli(probs) draws 0/1 with each element's probability; bernoulli(input, p)
    uses one probability p for every element. The result has input's dtype."""
    arr = input.detach()._np
    probs = arr if p is None else (p.detach()._np if isinstance(p, TensorBase) else p)
    vals = _bernoulli_values(arr.shape, probs, generator).astype(arr.dtype)
    if out is not None:
        return _write(out, vals)
    return wrap(vals)


def multinomial(input, num_samples, replacement=False, *, generator=None, out=None):
    """Indices drawn from each row's categorical distribution (rows of input: weights >= 0)."""
    probs = input.detach()._np
    if probs.ndim not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim, got {probs.ndim}")
    if probs.dtype.kind != "f":
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{_torch_name(probs.dtype)}")
    num_samples = int(num_samples)
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    k = probs.shape[-1]
    if not replacement and num_samples > k:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    if k == 0:
        raise RuntimeError("multinomial: cannot compute over an empty dimension: the last "
                           "dimension holds no categories to draw from")
    rows = probs.reshape(-1, k)
    if not replacement or num_samples == 1:
        # PyTorch's route: argmax / top-k of p / q with q ~ Exp(1) (Gumbel trick)
        if not (np.isfinite(rows).all() and (rows >= 0).all()):
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        if (rows.sum(axis=1) == 0).any():
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        q = np.empty(rows.shape, _F32 if rows.dtype == _F16 else rows.dtype)
        _rk.exponential_(_gen(generator), q, 1.0)
        q = (rows / q.astype(rows.dtype)).astype(rows.dtype)
        if num_samples == 1:
            idx = np.argmax(q, axis=1)[:, None]
        else:
            idx = np.argsort(-q, axis=1, kind="stable")[:, :num_samples]
    else:
        if (rows < 0).any():
            raise RuntimeError("invalid multinomial distribution (encountering probability "
                               "entry < 0)")
        if not np.isfinite(rows).all():
            raise RuntimeError("invalid multinomial distribution (encountering probability "
                               "entry = infinity or NaN)")
        work = np.ascontiguousarray(rows, dtype=_F32 if rows.dtype == _F16 else rows.dtype)
        if (work.sum(axis=1) <= 0).any():
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        idx = _rk.multinomial_replacement(_gen(generator), work, num_samples)
    res = _contiguous(idx.astype(np.int64, copy=False))
    if probs.ndim == 1:
        res = res.reshape(num_samples)
    if out is not None:
        return _write(out, res)
    return wrap(res)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, out=None, dtype=None, device=None,
           requires_grad=False):
    """torch.normal: tensor mean and/or std (broadcast), or numbers with a size."""
    mean_t, std_t = isinstance(mean, TensorBase), isinstance(std, TensorBase)
    if not mean_t and not std_t:
        if size is None:
            raise TypeError("normal(): with a number mean and std, pass size=(...)")
        shape = size_arg((tuple(size),) if not isinstance(size, numbers.Integral) else (size,))
        res = normal_array(shape, numpy_dtype(dtype), mean, std, generator)
        return _finish(res, out, requires_grad)
    if std_t:
        s = std.detach()._np
        if s.size and not (s >= 0).all():
            raise RuntimeError("normal expects all elements of std >= 0.0")
    if mean_t and not std_t:
        m = mean.detach()._np
        if not float(std) >= 0.0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {float(std):g}")
        res = normal_array(m.shape, m.dtype, 0.0, std, generator)
        res = np.asarray(res + m, dtype=m.dtype)
    elif std_t and not mean_t:
        res = normal_array(s.shape, s.dtype, 0.0, 1.0, generator)
        res = np.asarray(res * s, dtype=s.dtype)
        res = np.asarray(res + np.array(mean, dtype=s.dtype), dtype=s.dtype)
    else:
        m = mean.detach()._np
        shape = np.broadcast_shapes(m.shape, s.shape)
        res = normal_array(shape, m.dtype, 0.0, 1.0, generator)
        res = np.asarray(res * s, dtype=m.dtype)
        res = np.asarray(res + m, dtype=m.dtype)
    return _finish(_contiguous(res), out, requires_grad)


def _finish(arr, out, requires_grad):
    if out is not None:
        return _write(out, arr)
    return wrap(arr, requires_grad)


def bernoulli_method(self, p=None, *, generator=None):
    """Tensor.bernoulli(): 0/1 draws with this tensor's elements as probabilities (or one p)."""
    return bernoulli(self, p, generator=generator)


def multinomial_method(self, num_samples, replacement=False, *, generator=None):
    return multinomial(self, num_samples, replacement, generator=generator)

"""max/avg pooling (1-D, 2-D, adaptive): PyTorch's argument rules, output sizes and errors around
the compiled kernels of _core.ops_pool (Note [Pooling windows]). A 1-D input (N, C, L) runs as a
2-D one of height 1; an unbatched input gets a batch dim of 1 for the call."""
from fastgrad._core import ops_pool as _P


def _pair(v, n, name):
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            return (int(v[0]),) * n
        if len(v) != n:
            raise RuntimeError(f"{name} must either be a single int, or a tuple of {n} ints")
        return tuple(int(a) for a in v)
    return (int(v),) * n


def _as4d(input, nd, name):
    if input.dim() not in (nd + 1, nd + 2) or input.numel() == 0 and input.dim() == nd + 1:
        raise RuntimeError(f"{name}: non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor "
                           f"expected for input, but got input of size {list(input.shape)}")
    if str(input.dtype).split(".")[-1] not in ("float32", "float64"):
        raise RuntimeError(f"{name}: expected a float32 or float64 input, got {input.dtype}")
    unbatched = input.dim() == nd + 1
    x = input.unsqueeze(0) if unbatched else input
    return (x.unsqueeze(2) if nd == 1 else x), unbatched


def _back(y, nd, unbatched):
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def _out_size(size, k, s, p, d, ceil):
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def _plan(x, nd, kernel_size, stride, padding, dilation, ceil_mode):
    """Checked (kernel, stride, padding, dilation, out sizes) per dim, as 2-D tuples."""
    k = _pair(kernel_size, nd, "kernel_size")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _pair(stride, nd, "stride")
    p = _pair(padding, nd, "padding")
    d = _pair(dilation, nd, "dilation")
    if any(v <= 0 for v in k):
        raise RuntimeError(f"kernel size should be greater than zero, but got kernel_size={k}")
    if any(v <= 0 for v in s):
        raise RuntimeError(f"stride should not be zero: it must be greater than zero, but got "
                           f"stride={s}")
    if any(v <= 0 for v in d):
        raise RuntimeError(f"dilation should be greater than zero, but got dilation={d}")
    for kk, pp, dd in zip(k, p, d):
        if pp < 0 or pp > kk // 2:        # PyTorch's rule: half the kernel, dilated or not
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={pp}, kernel_size={kk} and dilation={dd}")
    if nd == 1:
        k, s, p, d = (1,) + k, (1,) + s, (0,) + p, (1,) + d
    H, W = x.shape[2], x.shape[3]
    out = tuple(_out_size(n, kk, ss, pp, dd, ceil_mode)
                for n, kk, ss, pp, dd in zip((H, W), k, s, p, d))
    if any(o < 1 for o in out):
        sizes = (x.shape[1], H, W) if nd == 2 else (x.shape[1], W)
        outs = (x.shape[1],) + out if nd == 2 else (x.shape[1], out[1])
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, sizes))}). Calculated output "
                           f"size: ({'x'.join(map(str, outs))}). Output size is too small")
    return k, s, p, d, out


def _max_poolnd(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, nd,
                name):
    x, unbatched = _as4d(input, nd, name)
    k, s, p, d, out = _plan(x, nd, kernel_size, stride, padding, dilation, ceil_mode)
    H, W = x.shape[2], x.shape[3]
    hw = _P.windows(H, out[0], k[0], s[0], p[0], d[0], False)
    ww = _P.windows(W, out[1], k[1], s[1], p[1], d[1], False)
    y, idx = _P.max_pool(x, hw, ww, d[0], d[1])
    y = _back(y, nd, unbatched)
    return (y, _back(idx, nd, unbatched)) if return_indices else y


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_poolnd(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                       1, "max_pool1d")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_poolnd(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                       2, "max_pool2d")


def _avg_poolnd(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                divisor_override, nd, name):
    x, unbatched = _as4d(input, nd, name)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    k, s, p, d, out = _plan(x, nd, kernel_size, stride, padding, 1, ceil_mode)
    H, W = x.shape[2], x.shape[3]
    hw = _P.windows(H, out[0], k[0], s[0], p[0], 1, count_include_pad)
    ww = _P.windows(W, out[1], k[1], s[1], p[1], 1, count_include_pad)
    y = _P.avg_pool(x, tuple(x.shape), hw, ww, float(divisor_override or 0), False)
    return _back(y, nd, unbatched)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    return _avg_poolnd(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None,
                       1, "avg_pool1d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return _avg_poolnd(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override, 2, "avg_pool2d")


def _adaptive(input, output_size, nd, name):
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"{name}(): Expected {nd + 1}D or {nd + 2}D tensor, but got "
                           f"{list(input.shape)}")
    x, unbatched = _as4d(input, nd, name)
    sizes = tuple(input.shape[-nd:])
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            raise RuntimeError(f"{name}: output_size must be {nd}, got {list(output_size)}")
        out = tuple(n if o is None else int(o) for o, n in zip(output_size, sizes))
    else:
        out = (int(output_size),) * nd
    if any(o < 0 for o in out):
        raise RuntimeError(f"{name}: elements of output_size must be greater than or equal to 0 "
                           f"but received {list(out)}")
    if any(n == 0 for n in sizes):
        raise RuntimeError(f"{name}(): Expected input to have non-zero size for non-batch "
                           f"dimensions, but input has sizes {list(input.shape)} with dimension "
                           f"{input.dim() - nd} being empty")
    if nd == 1:
        out = (1,) + out
    hw = _P.adaptive_windows(x.shape[2], out[0])
    ww = _P.adaptive_windows(x.shape[3], out[1])
    return x, unbatched, hw, ww


def adaptive_avg_pool1d(input, output_size):
    x, unbatched, hw, ww = _adaptive(input, output_size, 1, "adaptive_avg_pool1d")
    return _back(_P.avg_pool(x, tuple(x.shape), hw, ww, 0.0, False), 1, unbatched)


def adaptive_avg_pool2d(input, output_size):
    x, unbatched, hw, ww = _adaptive(input, output_size, 2, "adaptive_avg_pool2d")
    return _back(_P.avg_pool(x, tuple(x.shape), hw, ww, 0.0, False), 2, unbatched)


def _adaptive_max(input, output_size, return_indices, nd, name):
    x, unbatched, hw, ww = _adaptive(input, output_size, nd, name)
    y, idx = _P.max_pool(x, hw, ww, 1, 1)
    y = _back(y, nd, unbatched)
    return (y, _back(idx, nd, unbatched)) if return_indices else y


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max(input, output_size, return_indices, 1, "adaptive_max_pool1d")


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max(input, output_size, return_indices, 2, "adaptive_max_pool2d")

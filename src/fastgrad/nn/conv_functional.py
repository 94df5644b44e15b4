"""conv1d, conv2d, conv_transpose2d, unfold, fold: PyTorch's argument rules and errors around the
compiled kernels of _core.ops_conv (Note [Convolution as per-sample products]).

Everything runs as 2-D: a 1-D input (N, C, L) is a 2-D one of height 1, and an unbatched input
gets a batch dim of 1 for the call.
"""

from fastgrad._core import dtypes as _dtypes
from fastgrad._core import ops_conv as _C


def _tuple(v, n, name):
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            return tuple(int(a) for a in v) * n
        if len(v) != n:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} "
                               f"values to match the convolution dimensions, but got {name}="
                               f"{list(v)}")
        return tuple(int(a) for a in v)
    return (int(v),) * n


def _dims(t):
    return "[" + ", ".join(str(d) for d in t) + "]"


def _check_common(input, weight, bias, nd, name, transposed, groups):
    xs, ws = tuple(input.shape), tuple(weight.shape)
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to "
                           f"{name}, but got input of size: {_dims(xs)}")
    if weight.dim() != nd + 2:
        raise RuntimeError(f"{name}: expected weight to be {nd + 2}-dimensional (out_channels, "
                           f"in_channels / groups, *kernel_size), but got weight of size "
                           f"{_dims(ws)}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if input.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        other = bias.dtype if input.dtype == weight.dtype else input.dtype
        raise RuntimeError(f"expected scalar type {_dtypes.torch_scalar_name(weight.dtype)} but found "
                           f"{_dtypes.torch_scalar_name(other)}: {name} needs input, weight and bias of one dtype; "
                           f"convert with .to(weight.dtype)")
    if str(input.dtype).split(".")[-1] not in ("float32", "float64"):
        raise RuntimeError(f"{name}: expected a float32 or float64 input, got {input.dtype}")
    c = xs[-nd - 1]
    if not transposed:
        if ws[0] % groups:
            raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by "
                               f"{groups} at dimension 0, but got weight of size [{_dims(ws)}] "
                               f"instead")
        if c != ws[1] * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {_dims(ws)}, expected "
                               f"input{_dims(xs)} to have {ws[1] * groups} channels, but got "
                               f"{c} channels instead")
        out_c = ws[0]
    else:
        if ws[0] % groups:
            raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by "
                               f"{groups} at dimension 0, but got weight of size [{_dims(ws)}] "
                               f"instead")
        if c != ws[0]:
            raise RuntimeError(f"Given transposed=1, weight of size {_dims(ws)}, expected "
                               f"input{_dims(xs)} to have {ws[0]} channels, but got {c} "
                               f"channels instead")
        out_c = ws[1] * groups
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != out_c):
        raise RuntimeError(f"Given weight of size {_dims(ws)}, expected bias to be 1-dimensional "
                           f"with {out_c} elements, but got bias of size {_dims(bias.shape)} "
                           f"instead")


def _as4d(x, nd):
    """(batched input as 4-D, was unbatched)."""
    unbatched = x.dim() == nd + 1
    if unbatched:
        x = x.unsqueeze(0)
    if nd == 1:
        x = x.unsqueeze(2)
    return x, unbatched


def _back(y, nd, unbatched):
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def _convnd(input, weight, bias, stride, padding, dilation, groups, nd, name):
    _check_common(input, weight, bias, nd, name, False, groups)
    stride = _tuple(stride, nd, "stride")
    dilation = _tuple(dilation, nd, "dilation")
    ks = tuple(weight.shape[2:])
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")
    if isinstance(padding, str):
        if padding == "valid":
            lead = trail = (0,) * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            total = [d * (k - 1) for d, k in zip(dilation, ks)]
            lead = tuple(t // 2 for t in total)
            trail = tuple(t - t // 2 for t in total)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        lead = trail = _tuple(padding, nd, "padding")
        if any(p < 0 for p in lead):
            raise RuntimeError("negative padding is not supported")
    sp = tuple(input.shape[-nd:])
    padded = tuple(s + a + b for s, a, b in zip(sp, lead, trail))
    eff = tuple(d * (k - 1) + 1 for d, k in zip(dilation, ks))
    if any(p < e for p, e in zip(padded, eff)):
        pin = " x ".join(str(p) for p in padded)
        kin = " x ".join(str(e) for e in eff)
        raise RuntimeError(f"Calculated padded input size per channel: ({pin}). Kernel size: "
                           f"({kin}). Kernel size can't be greater than actual input size")
    x, unbatched = _as4d(input, nd)
    w = weight.unsqueeze(2) if nd == 1 else weight
    if nd == 1:
        stride, dilation, lead, padded, eff = ((1,) + stride, (1,) + dilation, (0,) + lead,
                                               (1,) + padded, (1,) + eff)
    out = tuple((p - e) // s + 1 for p, e, s in zip(padded, eff, stride))
    _, C, H, W = x.shape
    geom = (C, H, W, w.shape[2], w.shape[3], stride[0], stride[1], lead[0], lead[1],
            dilation[0], dilation[1], out[0], out[1], groups)
    return _back(_C.conv(x, w, bias, geom, False, out), nd, unbatched)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def _conv_transposend(input, weight, bias, stride, padding, output_padding, groups, dilation, nd,
                      name, output_size=None):
    _check_common(input, weight, bias, nd, name, True, groups)
    stride = _tuple(stride, nd, "stride")
    padding = _tuple(padding, nd, "padding")
    dilation = _tuple(dilation, nd, "dilation")
    output_padding = _tuple(output_padding, nd, "output_padding")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(p < 0 for p in padding):
        raise RuntimeError("negative padding is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")
    for op, s, d in zip(output_padding, stride, dilation):
        if op < 0 or (op >= s and op >= d):
            raise RuntimeError(f"output padding must be smaller than either stride or dilation, "
                               f"but got output_padding={list(output_padding)}, stride="
                               f"{list(stride)}, dilation={list(dilation)}")
    ks = tuple(weight.shape[2:])
    sp = tuple(input.shape[-nd:])
    out = tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1
                for i, s, p, d, k, op in zip(sp, stride, padding, dilation, ks, output_padding))
    if any(o <= 0 for o in out):
        raise RuntimeError(f"Given input size per channel: ({' x '.join(map(str, sp))}). "
                           f"Calculated output size per channel: "
                           f"({' x '.join(map(str, out))}). Output size is too small")
    x, unbatched = _as4d(input, nd)
    w = weight.unsqueeze(2) if nd == 1 else weight
    if nd == 1:
        stride, padding, dilation, out, sp = ((1,) + stride, (0,) + padding, (1,) + dilation,
                                              (1,) + out, (1,) + sp)
    C = w.shape[1] * groups
    geom = (C, out[0], out[1], w.shape[2], w.shape[3], stride[0], stride[1], padding[0],
            padding[1], dilation[0], dilation[1], sp[0], sp[1], groups)
    return _back(_C.conv(x, w, bias, geom, True, out), nd, unbatched)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transposend(input, weight, bias, stride, padding, output_padding, groups,
                             dilation, 1, "conv_transpose1d")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transposend(input, weight, bias, stride, padding, output_padding, groups,
                             dilation, 2, "conv_transpose2d")


def _fold_geom(C, H, W, kernel_size, dilation, padding, stride, name):
    k = _tuple(kernel_size, 2, "kernel_size")
    d = _tuple(dilation, 2, "dilation")
    p = _tuple(padding, 2, "padding")
    s = _tuple(stride, 2, "stride")
    if any(v <= 0 for v in k + d + s) or any(v < 0 for v in p):
        raise RuntimeError(f"{name}: kernel_size, dilation and stride must be positive and "
                           f"padding non-negative, got kernel_size={k}, dilation={d}, "
                           f"padding={p}, stride={s}")
    out = tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                for n, pp, dd, kk, ss in zip((H, W), p, d, k, s))
    if any(o <= 0 for o in out):
        raise RuntimeError(f"Given input with spatial size ({H}, {W}), kernel_size={k}, "
                           f"dilation={d}, padding={p}, calculated shape of the array of sliding "
                           f"blocks as ({out[0]}, {out[1]}), but its components must be at least "
                           f"one.")
    return (C, H, W, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], out[0], out[1], 1)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding blocks of a (N, C, H, W) or (C, H, W) input as columns: (N, C*kh*kw, L)."""
    if input.dim() not in (3, 4):
        raise RuntimeError(f"Input Error: Only 3D or 4D input Tensors are supported (got "
                           f"{input.dim()}D)")
    x = input if input.dim() == 4 else input.unsqueeze(0)
    _, C, H, W = x.shape
    geom = _fold_geom(C, H, W, kernel_size, dilation, padding, stride, "unfold")
    out = _C.unfold(x, geom)
    return out if input.dim() == 4 else out.squeeze(0)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The inverse arrangement of unfold: columns (N, C*kh*kw, L) summed onto (N, C, H, W)."""
    if input.dim() not in (2, 3):
        raise RuntimeError(f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are "
                           f"supported (got {input.dim()}D)")
    x = input if input.dim() == 3 else input.unsqueeze(0)
    H, W = _tuple(output_size, 2, "output_size")
    k = _tuple(kernel_size, 2, "kernel_size")
    if x.shape[1] % (k[0] * k[1]):
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product "
                           f"of kernel_size, but got input.size(1)={x.shape[1]} and "
                           f"kernel_size={k}")
    geom = _fold_geom(x.shape[1] // (k[0] * k[1]), H, W, k, dilation, padding, stride, "fold")
    if x.shape[2] != geom[11] * geom[12]:
        raise RuntimeError(f"Given output_size=({H}, {W}), kernel_size={k}, dilation="
                           f"{_tuple(dilation, 2, 'dilation')}, padding="
                           f"{_tuple(padding, 2, 'padding')}, stride={_tuple(stride, 2, 'stride')}"
                           f", expected size of input's dimension 2 to match the calculated "
                           f"number of sliding blocks {geom[11]} * {geom[12]} = "
                           f"{geom[11] * geom[12]}, but got input.size(2)={x.shape[2]}.")
    out = _C.fold(x, geom)
    return out if input.dim() == 3 else out.squeeze(0)



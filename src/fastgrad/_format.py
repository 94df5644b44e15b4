"""Tensor printing: reproduces PyTorch's ``repr(tensor)`` text from a NumPy array.

Pure Python + NumPy (never imports torch). The layout rules follow PyTorch's printing
algorithm with its print options (precision, threshold, edgeitems, linewidth, sci_mode):

* one formatter per tensor decides the mode from the nonzero finite values (of the
  summarized data when the tensor is summarized):
  - *int mode* when every such value is integral: floats print as ``1.``;
  - *sci mode* (unless forced by ``sci_mode``) when max/min > 1000, max > 1e8 or min < 1e-4;
  - every element is right-aligned to the widest element string;
* tensors with more than ``threshold`` elements are summarized: ``edgeitems`` entries at
  each end of every dimension, with ``...`` between;
* rows wrap so that a line holds ``floor((linewidth - indent) / (width + 2))`` elements;
* suffixes (``dtype=...``, ``requires_grad=True``, ``grad_fn=<...>``) follow the data,
  separated by ``", "``, moving to a new line when they would pass ``linewidth``.

Public API: :func:`format_tensor`, :func:`set_printoptions`, :func:`get_printoptions`,
:func:`printoptions`, :func:`dtype_suffix`, :func:`torch_dtype_name`.
"""
import contextlib
import math

import numpy as np

from fastgrad._core import dtypes as _dtypes

__all__ = [
    "format_tensor",
    "set_printoptions",
    "get_printoptions",
    "printoptions",
    "dtype_suffix",
    "torch_dtype_name",
]


# ----------------------------------------------------------------------------- options

class _PrintOptions:
    __slots__ = ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")

    def __init__(self):
        self.precision = 4
        self.threshold = 1000
        self.edgeitems = 3
        self.linewidth = 80
        self.sci_mode = None


_OPTS = _PrintOptions()

_PROFILES = {
    "default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
    "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
    "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80),
}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """Set the options used by :func:`format_tensor` (same semantics as
    ``torch.set_printoptions``).

    ``profile`` ("default", "short" or "full") is applied first, then any explicit option
    overrides it. As in PyTorch, ``sci_mode`` is *always* assigned: calling without it
    resets scientific notation to automatic (None).
    """
    if profile is not None:
        preset = _PROFILES.get(profile)
        if preset is not None:          # PyTorch silently ignores unknown profiles
            for name, value in preset.items():
                setattr(_OPTS, name, value)
    if precision is not None:
        _OPTS.precision = precision
    if threshold is not None:
        _OPTS.threshold = threshold
    if edgeitems is not None:
        _OPTS.edgeitems = edgeitems
    if linewidth is not None:
        _OPTS.linewidth = linewidth
    _OPTS.sci_mode = sci_mode


def get_printoptions():
    """The current print options as a dict accepted by :func:`set_printoptions`."""
    return {name: getattr(_OPTS, name) for name in _PrintOptions.__slots__}


@contextlib.contextmanager
def printoptions(**kwargs):
    """Context manager: temporarily change the print options."""
    saved = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**saved)


# ----------------------------------------------------------------------------- dtypes

# dtypes whose non-empty tensors print without a dtype suffix (default float, int64, bool)
_DEFAULT_KIND_DTYPES = (np.dtype(np.float32), np.dtype(np.int64), np.dtype(np.bool_))


def torch_dtype_name(dtype):
    """``np.float64`` -> ``"torch.float64"`` (how PyTorch spells the dtype)."""
    try:
        return repr(_dtypes.from_numpy_dtype(dtype))
    except TypeError:
        raise TypeError(f"format_tensor: unsupported dtype {dtype}") from None


def dtype_suffix(arr):
    """The ``dtype=...`` suffix PyTorch shows for this array, or None.

    Non-empty tensors show it unless the dtype is float32, int64 or bool; empty tensors
    show it for every dtype but float32 (there is no data to infer it from).
    """
    arr = np.asarray(arr)
    if arr.size == 0:
        shown = arr.dtype != np.float32
    else:
        shown = arr.dtype not in _DEFAULT_KIND_DTYPES
    return f"dtype={torch_dtype_name(arr.dtype)}" if shown else None


# ----------------------------------------------------------------------------- formatter

class _Formatter:
    """Chooses one element width / notation for a whole tensor (PyTorch's rules)."""

    def __init__(self, data, floating, opts):
        self.floating = floating
        self.precision = opts.precision
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1

        flat = data.reshape(-1)
        if not floating:
            for value in flat.tolist():
                self.max_width = max(self.max_width, len(str(value)))
            return

        vals = flat[np.isfinite(flat) & (flat != 0)]
        if vals.size == 0:
            return                      # only zeros / nan / inf: int mode, width 1

        absvals = np.abs(vals)
        vmin = float(absvals.min())     # compared in double precision, as PyTorch does
        vmax = float(absvals.max())
        self.int_mode = bool(np.all(vals == np.ceil(vals)))
        if opts.sci_mode is None:
            self.sci_mode = vmax / vmin > 1000.0 or vmax > 1.0e8 or vmin < 1.0e-4
        else:
            self.sci_mode = bool(opts.sci_mode)

        values = vals.tolist()
        if self.sci_mode:
            spec = f".{self.precision}e"
            width = max(len(format(v, spec)) for v in values)
        elif self.int_mode:
            width = max(len(format(v, ".0f")) for v in values) + 1    # room for the '.'
        else:
            spec = f".{self.precision}f"
            width = max(len(format(v, spec)) for v in values)
        self.max_width = max(self.max_width, width)

    def format(self, value):
        if self.floating:
            if self.sci_mode:
                s = format(value, f"{self.max_width}.{self.precision}e")
            elif self.int_mode:
                s = format(value, ".0f")
                if not (math.isinf(value) or math.isnan(value)):
                    s += "."
            else:
                s = format(value, f".{self.precision}f")
        else:
            s = str(value)
        return s.rjust(self.max_width)


# ----------------------------------------------------------------------------- layout

def _summarized_data(arr, edge):
    """The elements that will actually be printed (formatter input when summarizing)."""
    if arr.ndim == 0:
        return arr
    if arr.ndim == 1:
        if arr.shape[0] > 2 * edge:
            # slicing semantics mirror PyTorch's (including arr[-0:] == whole array)
            return np.concatenate((arr[:edge], arr[-edge:]))
        return arr
    if not edge:
        return np.empty((0,) * arr.ndim, dtype=arr.dtype)
    if arr.shape[0] > 2 * edge:
        rows = list(range(edge)) + list(range(arr.shape[0] - edge, arr.shape[0]))
    else:
        rows = range(arr.shape[0])
    return np.stack([_summarized_data(arr[i], edge) for i in rows])


def _vector_str(arr, indent, summarize, fmt, opts):
    element_length = fmt.max_width + 2
    per_line = max(1, math.floor((opts.linewidth - indent) / element_length))
    edge = opts.edgeitems
    if summarize and not edge:
        data = ["..."]
    elif summarize and arr.shape[0] > 2 * edge:
        data = ([fmt.format(v) for v in arr[:edge].tolist()] + [" ..."]
                + [fmt.format(v) for v in arr[-edge:].tolist()])
    else:
        data = [fmt.format(v) for v in arr.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _tensor_str(arr, indent, summarize, fmt, opts):
    ndim = arr.ndim
    if ndim == 0:
        return fmt.format(arr.item())
    if ndim == 1:
        return _vector_str(arr, indent, summarize, fmt, opts)
    edge = opts.edgeitems
    n = arr.shape[0]
    if summarize and n > 2 * edge:
        slices = ([_tensor_str(arr[i], indent + 1, summarize, fmt, opts) for i in range(edge)]
                  + ["..."]
                  + [_tensor_str(arr[i], indent + 1, summarize, fmt, opts)
                     for i in range(n - edge, n)])
    else:
        slices = [_tensor_str(arr[i], indent + 1, summarize, fmt, opts) for i in range(n)]
    return "[" + ("," + "\n" * (ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _add_suffixes(text, suffixes, indent, linewidth):
    parts = [text]
    # (sic) PyTorch's measure of the last line: one more than its length, plus one more
    # again when there is no newline at all. Kept so wrapping decisions match exactly.
    last_line_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_len += len(suffix) + 2
    parts.append(")")
    return "".join(parts)


def _shape_str(shape):
    return str(tuple(int(d) for d in shape))


def format_tensor(arr, suffixes=(), indent_prefix="tensor("):
    """Return PyTorch's ``repr`` of a tensor holding ``arr``.

    ``arr``: NumPy array (float16/32/64, int8/16/32/64, uint8, bool), any number of dims.
    ``suffixes``: strings appended after the data, e.g. ``"dtype=torch.float64"``,
    ``"requires_grad=True"``, ``"grad_fn=<AddBackward0>"`` (in PyTorch's order: dtype,
    then grad_fn / requires_grad).
    ``indent_prefix``: text opening the repr; its length is the indent of continuation
    lines (PyTorch indents nested rows by ``len(prefix) + 1``).

    Suffixes the caller cannot know are added here, where PyTorch adds them:
    ``size=(...)`` for empty tensors that are not 1-D and whenever ``edgeitems`` is 0;
    and ``dtype=...`` for empty tensors of any dtype but float32 when the caller passed
    none (PyTorch shows it because an empty tensor has no data to infer it from).
    """
    arr = np.asarray(arr)
    torch_dtype_name(arr.dtype)          # TypeError for a dtype fastgrad does not have
    opts = _OPTS
    indent = len(indent_prefix)
    suffixes = list(suffixes)
    floating = arr.dtype.kind == "f"

    if arr.size == 0:
        lead = []
        if arr.ndim != 1:
            lead.append("size=" + _shape_str(arr.shape))
        given = [s for s in suffixes if s.startswith("dtype=")]
        rest = [s for s in suffixes if not s.startswith("dtype=")]
        if given:
            lead.extend(given)
        else:
            auto = dtype_suffix(arr)
            if auto is not None:
                lead.append(auto)
        suffixes = lead + rest
        body = "[]"
    else:
        if not opts.edgeitems:
            suffixes.insert(0, "size=" + _shape_str(arr.shape))
        summarize = arr.size > opts.threshold
        fmt = _Formatter(_summarized_data(arr, opts.edgeitems) if summarize else arr,
                         floating, opts)
        body = _tensor_str(arr, indent, summarize, fmt, opts)

    return _add_suffixes(indent_prefix + body, suffixes, indent, opts.linewidth)

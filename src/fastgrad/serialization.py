"""fastgrad.save / fastgrad.load: tensors and (nested) containers of tensors and numbers.

Format (documented, pickle-free): a NumPy .npz archive (a zip of .npy files). Member
`__manifest__` is a uint8 array holding UTF-8 JSON:

    {"format": "fastgrad-npz", "version": 1, "root": <node>}

where <node> is one of
    {"t": "tensor", "key": "t0", "dtype": "float32", "requires_grad": false, "param": false}
    {"t": "dict" | "odict", "items": [[<node key>, <node value>], ...]}   (keys may be non-str)
    {"t": "list" | "tuple", "items": [<node>, ...]}
    {"t": "int" | "float" | "bool" | "str" | "none", "v": ...}   (floats: "nan", "inf", "-inf")
    {"t": "dtype", "v": "float32"}
and each tensor's data is the array member named by "key". Loading uses np.load with
allow_pickle=False: no code from the file is ever executed (weights_only is always honoured).
The same tensor object saved twice is stored once and loaded as one tensor.
"""
import io
import json
import math
import os
from collections import OrderedDict

import numpy as np

from fastgrad._core.tensor import TensorBase

_FORMAT = "fastgrad-npz"


def _encode(obj, arrays, seen):
    from fastgrad.nn.parameter import Parameter
    from fastgrad import _dtypes
    if isinstance(obj, TensorBase):
        key = seen.get(id(obj))
        if key is None:
            key = f"t{len(arrays)}"
            seen[id(obj)] = key
            arrays[key] = np.array(obj.detach()._np, order="C", copy=True)
        return {"t": "tensor", "key": key, "dtype": obj._np.dtype.name,
                "requires_grad": bool(obj.requires_grad), "param": isinstance(obj, Parameter)}
    if obj is None:
        return {"t": "none"}
    if isinstance(obj, (bool, np.bool_)):
        return {"t": "bool", "v": bool(obj)}
    if isinstance(obj, (int, np.integer)):
        return {"t": "int", "v": int(obj)}
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return {"t": "float", "v": f if math.isfinite(f) else repr(f)}
    if isinstance(obj, str):
        return {"t": "str", "v": obj}
    if isinstance(obj, _dtypes.dtype):
        return {"t": "dtype", "v": obj.name}
    if isinstance(obj, dict):
        return {"t": "odict" if isinstance(obj, OrderedDict) else "dict",
                "items": [[_encode(k, arrays, seen), _encode(v, arrays, seen)]
                          for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"t": "list" if isinstance(obj, list) else "tuple",
                "items": [_encode(v, arrays, seen) for v in obj]}
    raise TypeError(f"fastgrad.save: cannot save an object of type {type(obj).__name__}; the "
                    f"format holds tensors, numbers, strings, None, dtypes and dicts/lists/"
                    f"tuples of them (save a state_dict() rather than a module)")


def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True):
    """Write `obj` (a tensor, or dicts/lists/tuples of tensors and numbers) to path or file `f`."""
    arrays, seen = {}, {}
    manifest = {"format": _FORMAT, "version": 1, "root": _encode(obj, arrays, seen)}
    arrays["__manifest__"] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            np.savez(fh, **arrays)
    else:
        np.savez(f, **arrays)


def _decode(node, z, cache):
    from fastgrad._creation import from_numpy
    t = node["t"]
    if t == "tensor":
        key = node["key"]
        if key not in cache:
            arr = np.array(z[key], copy=True)
            if not arr.dtype.isnative:                   # written on a machine of the other endianness
                arr = arr.astype(arr.dtype.newbyteorder("="))
            if arr.dtype.name != node["dtype"]:
                raise RuntimeError(f"fastgrad.load: tensor {key} is stored as {arr.dtype.name} "
                                   f"but the manifest says {node['dtype']}: the file is damaged")
            tensor = from_numpy(arr)
            if node.get("param"):
                from fastgrad.nn.parameter import Parameter
                tensor = Parameter(tensor, node.get("requires_grad", True))
            elif node.get("requires_grad"):
                tensor.requires_grad_(True)
            cache[key] = tensor
        return cache[key]
    if t == "none":
        return None
    if t in ("bool", "int", "str"):
        return node["v"]
    if t == "float":
        return float(node["v"])
    if t == "dtype":
        from fastgrad import _dtypes
        return getattr(_dtypes, node["v"]) if node["v"] != "bool" else _dtypes.bool_
    if t in ("dict", "odict"):
        d = OrderedDict() if t == "odict" else {}
        for k, v in node["items"]:
            d[_decode(k, z, cache)] = _decode(v, z, cache)
        return d
    if t in ("list", "tuple"):
        items = [_decode(v, z, cache) for v in node["items"]]
        return items if t == "list" else tuple(items)
    raise RuntimeError(f"fastgrad.load: unknown node type {t!r} in the manifest")


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **kwargs):
    """Read what `save` wrote. Never unpickles: any weights_only value gives the same safe load."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            data = fh.read()
        f = io.BytesIO(data)
    try:
        z = np.load(f, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise RuntimeError(f"fastgrad.load: not a fastgrad file (expected a NumPy .npz archive "
                           f"written by fastgrad.save; PyTorch pickle checkpoints are not "
                           f"supported): {e}") from None
    with z:
        if not hasattr(z, "files") or "__manifest__" not in z.files:
            raise RuntimeError("fastgrad.load: the archive has no __manifest__ member; it was not "
                               "written by fastgrad.save")
        manifest = json.loads(bytes(z["__manifest__"]).decode("utf-8"))
        if manifest.get("format") != _FORMAT:
            raise RuntimeError(f"fastgrad.load: unknown format {manifest.get('format')!r}")
        return _decode(manifest["root"], z, {})

"""fastgrad.save / fastgrad.load: tensors and (nested) containers of them without pickle, and
any other picklable object (a whole module, an optimizer) as PyTorch saves it.

Format: a zip archive of uncompressed NumPy .npy members, readable by ``numpy.load`` (a .npz
file). Member ``__manifest__.npy`` is a 1-D uint8 array holding UTF-8 JSON:

    {"format": "fastgrad-npz", "version": 1 | 2, "root": <node>}

Version 1 (what ``save`` writes for tensors, numbers, strings, None, dtypes and dicts/lists/
tuples of them, nested at most 100 deep; exactly these types: a subclass such as Counter, a
namedtuple or Size is pickled, as version 2, so that it loads with its type) is pickle-free;
<node> is one of
    {"t": "tensor", "key": "t0", "dtype": "float32", "requires_grad": false, "param": false}
    {"t": "dict" | "odict", "items": [[<node key>, <node value>], ...]}   (keys may be non-str)
    {"t": "list" | "tuple", "items": [<node>, ...]}
    {"t": "int" | "float" | "bool" | "str", "v": ...}   (floats also "nan", "inf", "-inf")
    {"t": "none"}
    {"t": "dtype", "v": "float32"}
with exactly these fields, containers nested at most 100 deep, dict keys of hashable node types,
and each tensor's data is the member ``<key>.npy`` (C order; any byte order). The same tensor
object saved twice is stored once and loaded as one tensor; every data member is referenced.

Version 2 (anything else: modules, optimizers, user classes) has the root
    {"t": "pickle", "tensors": [<tensor node>, ...]}
and a member ``__pickle__.npy`` (1-D uint8) holding the object graph pickled (protocol 2 unless
``pickle_protocol`` says otherwise), in which tensor i of "tensors" is the persistent id i: its
data is an .npy member as in version 1, never pickled bytes. In both versions tensor subclasses
other than Parameter are stored as plain tensors, and tensors that share memory (a view and its
base) are stored, and load, as separate tensors.

Loading trusts nothing in the file: every node is checked against the closed schema above
(dtype names from fastgrad's own table), every member's declared size against its .npy header
and against the bytes the file holds before memory is allocated, and every member's bytes
against the zip CRC-32. Any file that fails a check raises :class:`CheckpointError`. Version 1
executes nothing from the file whatever ``weights_only`` says. Version 2 is unpickled, by
default (``weights_only=True``, PyTorch's default since 2.6) with an interpreter that allows
only containers, fastgrad's dtypes, devices and sizes and what :func:`add_safe_globals` or
:class:`safe_globals` allowed: any other global raises ``pickle.UnpicklingError`` ("Weights only
load failed") by its name, before it is imported or anything from it runs
(``fastgrad._weights_only``). ``weights_only=False`` unpickles everything, for trusted files
only. ``save`` to a path replaces the file atomically: a crash or an exception mid-save (an
object that cannot be pickled included) leaves the previous file as it was.
"""
import io
import json
import math
import os
import pickle
import reprlib
from collections import OrderedDict

import numpy as np

from fastgrad._core.tensor import TensorBase
from fastgrad import _atomic_file, _device, _npz_archive, _weights_only
from fastgrad._weights_only import (add_safe_globals, clear_safe_globals,  # noqa: F401
                                    get_safe_globals, safe_globals)

_FORMAT = "fastgrad-npz"
_VERSION = 2                # 1: a manifest tree; 2: a pickle whose tensors are members
_MANIFEST = "__manifest__"
_PICKLE = "__pickle__"      # version 2: the pickled object graph, a 1-D uint8 member
_PICKLE_PROTOCOL = 2        # PyTorch's default for torch.save
_MAX_DEPTH = 100            # nesting of containers; checkpoints use a handful of levels
_CONTAINERS = {dict: "dict", OrderedDict: "odict", list: "list", tuple: "tuple"}


class CheckpointError(RuntimeError):
    """``fastgrad.load`` was given a file it cannot read: damaged (truncated, bytes changed),
    or not written by ``fastgrad.save`` (e.g. a PyTorch pickle checkpoint).

    A RuntimeError, as PyTorch raises for a damaged archive. The message names the file, what
    is wrong with it, and what to do.
    """


class _NotInSchema(Exception):
    """The object is more than the manifest's nodes can describe: it is pickled instead."""


def _encode(obj, arrays, seen, depth=0):
    from fastgrad.nn.parameter import Parameter
    from fastgrad import _dtypes
    if isinstance(obj, TensorBase):
        key = seen.get(id(obj))
        if key is None:
            key = f"t{len(arrays)}"
            seen[id(obj)] = key
            arr = obj.detach()._np
            arrays[key] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        return {"t": "tensor", "key": key, "dtype": obj._np.dtype.name,
                "requires_grad": bool(obj.requires_grad), "param": isinstance(obj, Parameter)}
    # exact types: a subclass (Counter, defaultdict, a namedtuple, Size, an IntEnum) would load
    # as its base class, so it is pickled with its type instead
    kind = type(obj)
    if obj is None:
        return {"t": "none"}
    if kind is bool or isinstance(obj, np.bool_):
        return {"t": "bool", "v": bool(obj)}
    if kind is int or isinstance(obj, np.integer):
        return {"t": "int", "v": int(obj)}
    if kind is float or isinstance(obj, np.floating):
        f = float(obj)
        return {"t": "float", "v": f if math.isfinite(f) else repr(f)}
    if kind is str:
        return {"t": "str", "v": obj}
    if isinstance(obj, _dtypes.dtype):
        return {"t": "dtype", "v": obj.name}
    if kind not in _CONTAINERS or depth >= _MAX_DEPTH:
        raise _NotInSchema
    if kind is dict or kind is OrderedDict:
        return {"t": _CONTAINERS[kind],
                "items": [[_encode(k, arrays, seen, depth + 1), _encode(v, arrays, seen, depth + 1)]
                          for k, v in obj.items()]}
    return {"t": _CONTAINERS[kind], "items": [_encode(v, arrays, seen, depth + 1) for v in obj]}


def _pickle(obj, arrays, seen, pickle_module, pickle_protocol):
    """The version-2 root node and the pickle of `obj`, each tensor in it a persistent id: the
    index of its node in the root's "tensors" (its data goes to `arrays` as in version 1)."""
    nodes, index = [], {}

    def persistent_id(o):
        if not isinstance(o, TensorBase):
            return None
        i = index.get(id(o))
        if i is None:
            i = index[id(o)] = len(nodes)
            nodes.append(_encode(o, arrays, seen))
        return i

    buf = io.BytesIO()
    pickler = (pickle_module or pickle).Pickler(
        buf, protocol=_PICKLE_PROTOCOL if pickle_protocol is None else pickle_protocol)
    pickler.persistent_id = persistent_id
    pickler.dump(obj)
    return {"t": "pickle", "tensors": nodes}, buf.getvalue()


def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True,
         _disable_byteorder_record=False):
    """Write `obj` to path or file `f`: tensors, containers of them and numbers, or any
    picklable object (a module, an optimizer, a dict holding a model and an epoch number).

    Tensors, numbers, strings, None, dtypes and dicts/lists/tuples of them are described by a
    JSON manifest (format version 1) that loads without unpickling anything. Anything else is
    pickled (``pickle_module``, default ``pickle``; ``pickle_protocol``, default 2 as in
    PyTorch) with every tensor in it stored as an .npy member, never as pickled bytes (format
    version 2). A tensor referenced twice is stored once and loads as one tensor.

    A path is replaced atomically: the archive goes to a temporary file in the same directory,
    which is flushed, fsynced and then renamed over `f`. If saving fails part-way (an object
    that cannot be pickled, a full disk, the process killed) the previous file at `f` is left as
    it was; the object is pickled before anything is written. A file object is written from its
    current position and left open, as ``torch.save`` does.
    """
    arrays, seen = {}, {}
    try:
        root, version = _encode(obj, arrays, seen), 1
    except _NotInSchema:
        arrays, seen = {}, {}
        root, data = _pickle(obj, arrays, seen, pickle_module, pickle_protocol)
        arrays[_PICKLE] = np.frombuffer(data, dtype=np.uint8)
        version = 2
    manifest = {"format": _FORMAT, "version": version, "root": root}
    text = json.dumps(manifest, allow_nan=False).encode("utf-8")
    arrays[_MANIFEST] = np.frombuffer(text, dtype=np.uint8)
    if isinstance(f, (str, os.PathLike)):
        with _atomic_file.atomic_write(f) as fh:
            _npz_archive.write(fh, arrays)
    else:
        _npz_archive.write(f, arrays)


# ----------------------------------------------------------------------------- manifest schema

_NODE_FIELDS = {"tensor": {"t", "key", "dtype", "requires_grad", "param"}, "none": {"t"}}
_NODE_FIELDS.update(dict.fromkeys(("dict", "odict", "list", "tuple"), {"t", "items"}))
_NODE_FIELDS.update(dict.fromkeys(("bool", "int", "float", "str", "dtype"), {"t", "v"}))
_KEY_TYPES = {"tensor", "tuple", "none", "bool", "int", "float", "str", "dtype"}   # hashable
_FLOAT_WORDS = {"nan", "inf", "-inf"}
_Malformed = _npz_archive.Malformed


def _dtype_names():
    from fastgrad import _dtypes
    return {d.name: d for d in _dtypes.ALL}


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 30, 30


def _describe(node):
    """A bounded rendering of a (possibly huge or deeply nested) manifest node."""
    return _SHORT.repr(node)


def _check_value(node, t):
    v = node["v"]
    ok = {"bool": type(v) is bool, "int": type(v) is int, "str": type(v) is str,
          "float": type(v) is float or (type(v) is str and v in _FLOAT_WORDS),
          "dtype": type(v) is str and v in _dtype_names()}[t]
    if not ok:
        raise _Malformed(f"manifest node {_describe(node)}: invalid value for a {t!r} node")


def _check_tensor(node, refs):
    key, dtype, grad, param = node["key"], node["dtype"], node["requires_grad"], node["param"]
    dtypes = _dtype_names()
    if (type(key) is not str or key == _MANIFEST or type(dtype) is not str or dtype not in dtypes
            or type(grad) is not bool or type(param) is not bool):
        raise _Malformed(f"manifest node {_describe(node)}: invalid tensor fields")
    if grad and not dtypes[dtype].is_floating_point:
        raise _Malformed(f"manifest node {_describe(node)}: a {dtype} tensor cannot require grad")
    first = refs.setdefault(key, (dtype, grad, param))
    if first != (dtype, grad, param):
        raise _Malformed(f"tensor {key!r} is referenced with different dtype/requires_grad/param")


def _check(node, refs, depth=0, as_key=False):
    """Validate a manifest node against the closed schema; record tensor references in `refs`."""
    if depth > _MAX_DEPTH:
        raise _Malformed(f"the manifest nests containers deeper than {_MAX_DEPTH}")
    t = node.get("t") if isinstance(node, dict) else None
    fields = _NODE_FIELDS.get(t) if type(t) is str else None
    if fields is None:
        raise _Malformed(f"manifest node {_describe(node)} has no known type 't'")
    if set(node) != fields:
        raise _Malformed(f"manifest node {_describe(node)}: a {t!r} node has the fields "
                         f"{sorted(fields)}")
    if as_key and t not in _KEY_TYPES:
        raise _Malformed(f"manifest node {_describe(node)}: a {t!r} cannot be a dict key")
    if t == "tensor":
        _check_tensor(node, refs)
    elif "v" in fields:
        _check_value(node, t)
    elif "items" in fields:
        items = node["items"]
        if type(items) is not list:
            raise _Malformed(f"manifest node {_describe(node)}: 'items' is not a list")
        for item in items:
            if t in ("dict", "odict"):
                if type(item) is not list or len(item) != 2:
                    raise _Malformed(f"manifest node {_describe(node)}: a dict item is not a "
                                     f"[key, value] pair")
                _check(item[0], refs, depth + 1, as_key=True)
                _check(item[1], refs, depth + 1)
            else:
                _check(item, refs, depth + 1, as_key)


def _build(node, tensors):
    """The Python object of a manifest node that `_check` accepted."""
    t = node["t"]
    if t == "tensor":
        return tensors[node["key"]]
    if t == "none":
        return None
    if t == "float":
        return float(node["v"])
    if t == "dtype":
        return _dtype_names()[node["v"]]
    if t in ("bool", "int", "str"):
        return node["v"]
    if t in ("list", "tuple"):
        items = [_build(v, tensors) for v in node["items"]]
        return items if t == "list" else tuple(items)
    d = OrderedDict() if t == "odict" else {}
    for k, v in node["items"]:
        key = _build(k, tensors)
        if key in d:
            raise _Malformed(f"a dict in the manifest has the key {key!r} twice")
        d[key] = _build(v, tensors)
    return d


def _unique_fields(pairs):
    obj = {}
    for name, value in pairs:
        if name in obj:
            raise _Malformed(f"a manifest object has the field {name!r} twice")
        obj[name] = value
    return obj


def _no_constants(word):
    raise _Malformed(f"the manifest holds the non-JSON number {word}")


def _read_manifest(reader):
    if _MANIFEST not in reader.members:
        raise _Malformed("the archive has no __manifest__ member (it was not written by "
                         "fastgrad.save)")
    dtype, shape = reader.header(_MANIFEST)
    if dtype != np.uint8 or len(shape) != 1:
        raise _Malformed("the __manifest__ member is not a 1-D uint8 array")
    try:
        manifest = json.loads(reader.array(_MANIFEST).tobytes().decode("utf-8"),
                              object_pairs_hook=_unique_fields, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        raise _Malformed(f"the manifest is not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(manifest, dict) or set(manifest) != {"format", "version", "root"}:
        raise _Malformed("the manifest is not {format, version, root}")
    if manifest["format"] != _FORMAT:
        raise _Malformed(f"unknown format {manifest['format']!r} (expected {_FORMAT!r})")
    version = manifest["version"]
    if type(version) is int and version > _VERSION:
        raise _Malformed(f"format version {version} is newer than this fastgrad reads "
                         f"({_VERSION}); upgrade fastgrad to load it")
    if type(version) is not int or version not in (1, 2):
        raise _Malformed(f"unknown format version {version!r}")
    return version, manifest["root"]


def _check_pickle_root(root, refs):
    """Validate a version-2 root {"t": "pickle", "tensors": [<tensor node>, ...]}; the keys of
    its tensors, by persistent id."""
    if not isinstance(root, dict) or set(root) != {"t", "tensors"} or root["t"] != "pickle":
        raise _Malformed(f"the root {_describe(root)} of a version-2 manifest is not "
                         f"{{'t': 'pickle', 'tensors': [...]}}")
    nodes = root["tensors"]
    if type(nodes) is not list:
        raise _Malformed("the root's 'tensors' is not a list")
    for node in nodes:
        _check(node, refs, depth=1)
        if node["t"] != "tensor" or node["key"] == _PICKLE:
            raise _Malformed(f"the root's 'tensors' holds {_describe(node)}, not a tensor node")
    return [node["key"] for node in nodes]


# ----------------------------------------------------------------------------- load

_ADVICE = ("The file is damaged (truncated or altered) or was not written by fastgrad.save: "
           "restore it from a good copy or save it again. PyTorch pickle checkpoints cannot be "
           "read (load them with torch, convert the tensors with .numpy() and save them with "
           "fastgrad.save).")


def _location_mapper(map_location):
    """The callable to apply to each loaded tensor, or None; checks device names up front."""
    if map_location is None:
        return None
    if callable(map_location):
        return map_location
    targets = map_location.values() if isinstance(map_location, dict) else [map_location]
    for target in targets:
        if _device.device(target).type != "cpu":
            raise RuntimeError(f"fastgrad.load: map_location={target!r} asks for a device "
                               f"fastgrad does not have (it runs on the CPU; "
                               f"torch.cuda.is_available() is False): load with "
                               f"map_location='cpu' or leave it out")
    return None


def _make_tensor(arr, requires_grad, param, mapper):
    from fastgrad._creation import from_numpy
    tensor = from_numpy(arr)
    if mapper is not None:
        mapped = mapper(tensor, "cpu")
        if mapped is not None:
            if not isinstance(mapped, TensorBase):
                raise TypeError(f"fastgrad.load: map_location returned "
                                f"{type(mapped).__name__}; it must return a tensor or None")
            tensor = mapped
    if param:
        from fastgrad.nn.parameter import Parameter
        return Parameter(tensor, requires_grad)
    return tensor.requires_grad_(True) if requires_grad else tensor


class _Unpickling:
    """How `load` unpickles a version-2 file: weights only (our interpreter, allowlisted
    globals only) or with `pickle_module` and its arguments."""

    def __init__(self, weights_only, pickle_module, pickle_load_args):
        self.weights_only = weights_only
        self.pickle_module = pickle_module
        self.pickle_load_args = pickle_load_args


def _unpickle(data, keys, make, unpickling, where):
    """The object pickled in `data`; persistent id i is the tensor `make(keys[i])`."""
    def persistent_load(pid):
        if (type(pid) is str and pid.isdecimal() and pid.isascii()      # protocol 0 writes text
                and len(pid) <= 20):                    # int() refuses over 4300 digits
            pid = int(pid)
        if type(pid) is not int or not 0 <= pid < len(keys):
            raise _Malformed(f"the pickle refers to tensor {_describe(pid)}, which the "
                             f"manifest does not list")
        return make(keys[pid])

    if not unpickling.weights_only:
        unpickler = (unpickling.pickle_module or pickle).Unpickler(
            io.BytesIO(data), **unpickling.pickle_load_args)
        unpickler.persistent_load = persistent_load
        return unpickler.load()
    if unpickling.pickle_module is not None:
        raise RuntimeError("fastgrad.load: Can not safely load weights when explicit "
                           "pickle_module is specified: leave pickle_module out to load with "
                           "weights_only=True, or pass weights_only=False if you trust the file")
    try:
        return _weights_only.load(data, persistent_load)
    except pickle.UnpicklingError as e:
        unsafe = "load it with weights_only=False, which unpickles everything and can result " \
                 "in arbitrary code execution"
        if isinstance(e, _weights_only.Blocked):      # no allowlist can help
            options = f"Only if you trust the source of the file, {unsafe}."
        else:
            options = (f"It can still be loaded; do so only if you trust the source of the "
                       f"file: (1) {unsafe}; or (2) keep weights_only=True and allowlist what "
                       f"the file needs, as the WeightsUnpickler error says.")
        raise pickle.UnpicklingError(
            f"fastgrad.load: Weights only load failed for {where}. {options} "
            f"WeightsUnpickler error: {e}") from None


def _load(fh, where, mapper, unpickling):
    try:
        reader = _npz_archive.Reader(fh)
        version, root = _read_manifest(reader)
        refs = {}
        keys = _check_pickle_root(root, refs) if version == 2 else _check(root, refs)
        for key, (dtype, _, _) in refs.items():
            if key not in reader.members:
                raise _Malformed(f"the manifest refers to a missing member {key + '.npy'!r}")
            stored = reader.header(key)[0]
            if stored.name != dtype:
                raise _Malformed(f"member {key + '.npy'!r} holds {stored.name} but the manifest "
                                 f"says {dtype}")
        own = {_MANIFEST, _PICKLE} if version == 2 else {_MANIFEST}
        unused = sorted(set(reader.members) - set(refs) - own)
        if unused:
            raise _Malformed(f"member {unused[0] + '.npy'!r} is not referenced by the manifest")
        tensors = {}

        def make(key):
            if key not in tensors:
                _, grad, param = refs[key]
                tensors[key] = _make_tensor(reader.array(key), grad, param, mapper)
            return tensors[key]

        if version == 1:
            for key in sorted(refs, key=lambda k: reader.members[k].start):    # file order
                make(key)
            return _build(root, tensors)
        if _PICKLE not in reader.members:
            raise _Malformed("the archive has no __pickle__ member")
        dtype, shape = reader.header(_PICKLE)
        if dtype != np.uint8 or len(shape) != 1:
            raise _Malformed("the __pickle__ member is not a 1-D uint8 array")
        obj = _unpickle(reader.array(_PICKLE).tobytes(), keys, make, unpickling, where)
        missing = sorted(set(refs) - set(tensors))
        if missing:
            raise _Malformed(f"tensor {missing[0] + '.npy'!r} is listed in the manifest but the "
                             f"pickle does not refer to it")
        return obj
    except _Malformed as e:
        raise CheckpointError(f"fastgrad.load: {where} is not a valid fastgrad checkpoint: {e}. "
                              f"{_ADVICE}") from None


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None,
         **pickle_load_args):
    """Read what `save` wrote, from a path or a binary file object.

    A file of tensors and containers (format version 1) never unpickles, whatever
    ``weights_only`` says. A pickled object (version 2) loads as in PyTorch 2.6 and later:
    ``weights_only`` defaults to True (False when a ``pickle_module`` is given), which allows
    only containers, fastgrad's dtypes, devices and sizes, and what
    :func:`add_safe_globals` / :class:`safe_globals` allowed; any other class or function raises
    ``pickle.UnpicklingError`` ("Weights only load failed") before anything it names is imported
    or run. ``weights_only=False`` unpickles everything with ``pickle_module`` (default
    ``pickle``) and ``pickle_load_args``: only for files you trust, as it can run any code.

    ``map_location`` may be None, "cpu", a cpu device, a dict mapping locations to "cpu", or a
    callable ``(tensor, location) -> tensor or None`` applied to each loaded tensor; a device
    fastgrad does not have raises RuntimeError. ``mmap`` is accepted for PyTorch compatibility
    and unused.

    Raises :class:`CheckpointError` (a RuntimeError) for any file it cannot read: truncated,
    bytes changed (every member is CRC-checked), sizes or shapes that disagree, a manifest that
    does not follow the documented schema, duplicate members, or not a fastgrad archive at all.
    The size of every tensor is checked against the bytes the file holds before any memory is
    allocated. OSError (e.g. FileNotFoundError) is raised as-is for files that cannot be opened.
    A pickled object loaded with ``weights_only=True`` and a ``pickle_module`` raises
    RuntimeError, as PyTorch does for any file.
    """
    mapper = _location_mapper(map_location)
    if weights_only is None:
        weights_only = pickle_module is None
    unpickling = _Unpickling(bool(weights_only), pickle_module, pickle_load_args)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            return _load(fh, repr(os.fspath(f)), mapper, unpickling)
    name = getattr(f, "name", None)
    where = repr(name) if isinstance(name, str) else "the buffer"
    if not (hasattr(f, "seekable") and f.seekable()):
        f = io.BytesIO(f.read())
    return _load(f, where, mapper, unpickling)

"""fastgrad.load on damaged and hostile files: it returns the saved object exactly or raises
fastgrad.serialization.CheckpointError, never another exception, a hang, a huge allocation or a
silently wrong tensor."""
import copy
import io
import json
import random
import struct
import tracemalloc
import warnings
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from _backend import fg, REFERENCE

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")

if not REFERENCE:
    from fastgrad.serialization import CheckpointError
nn = fg.nn


def _checkpoint_obj():
    """A model + optimizer checkpoint with every dtype, 0-d and 0-size tensors, shared tensors."""
    w = nn.Parameter(fg.from_numpy(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)))
    model = OrderedDict([
        ("w", w), ("b", nn.Parameter(fg.from_numpy(np.array([0.5, np.nan, np.inf])))),
        ("num_batches_tracked", fg.tensor(7)),
        ("half", fg.from_numpy(np.array([1.5, -2.25], np.float16))),
        ("empty", fg.from_numpy(np.zeros((0, 3), np.float32))),
        ("mask", fg.from_numpy(np.array([[True, False]]))),
        ("i8", fg.from_numpy(np.array([-128, 127], np.int8))),
        ("u8", fg.from_numpy(np.array([0, 255], np.uint8))),
        ("i16", fg.from_numpy(np.array([-3], np.int16))),
        ("i32", fg.from_numpy(np.array(2 ** 31 - 1, np.int32))),
    ])
    optim = {"state": {0: {"step": fg.tensor(3.0), "exp_avg": fg.zeros(3, 4, requires_grad=True),
                           "exp_avg_sq": fg.ones(3, 4)}},
             "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0], "amsgrad": False,
                               "foreach": None, "eps": float("-inf"), "dtype": fg.float16,
                               "name": "group \u00e9"}]}
    return {"model": model, "optimizer": optim, "epoch": 7, ("k", 1): [w, None]}


def _save_bytes(obj):
    buf = io.BytesIO()
    fg.save(obj, buf)
    return buf.getvalue()


def _same(a, b):
    """Equal structure, types, dtypes, shapes, flags and bits (NaN == NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, fg.Tensor):
        x, y = a.detach().numpy(), b.detach().numpy()
        return (x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
                and a.requires_grad == b.requires_grad)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b


def _load_or_checkpoint_error(data):
    """The loaded object, or None when load raised CheckpointError (any other error fails)."""
    try:
        return fg.load(io.BytesIO(data))
    except CheckpointError as e:
        assert "not a valid fastgrad checkpoint" in str(e) and "the buffer" in str(e)
        return None


def _members(data):
    """name -> member bytes (the .npy file) of an archive, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def _archive(members, compress=zipfile.ZIP_STORED):
    """An archive with exactly these (name, bytes) members (duplicates allowed), valid CRCs."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w", compress) as z:
            for name, data in members:
                z.writestr(name, data)
    return buf.getvalue()


def _npy(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def _manifest_of(data):
    blob = dict(_members(data))["__manifest__.npy"]
    return json.loads(np.load(io.BytesIO(blob)).tobytes().decode())


def _with_manifest(data, manifest):
    text = json.dumps(manifest).encode() if not isinstance(manifest, bytes) else manifest
    return _archive([(n, _npy(np.frombuffer(text, np.uint8)) if n == "__manifest__.npy" else b)
                     for n, b in _members(data)])


@pytest.fixture(scope="module")
def good():
    obj = _checkpoint_obj()
    data = _save_bytes(obj)
    assert _same(fg.load(io.BytesIO(data)), obj)
    return obj, data


# ----------------------------------------------------------------------------- random damage

def test_truncated_at_every_kind_of_offset_raises_checkpoint_error(good):
    obj, data = good
    rng = random.Random(1)
    cuts = {0, 1, 4, 22, len(data) - 1, len(data) - 22} | {rng.randrange(len(data))
                                                           for _ in range(150)}
    for cut in sorted(cuts):
        assert _load_or_checkpoint_error(data[:cut]) is None, cut


def test_flipped_bytes_load_exactly_or_raise(good):
    """CRC-32 covers every member byte (manifest, .npy header, data); flips elsewhere (zip
    timestamps, attributes) may load, but then the result must be exactly the saved one."""
    obj, data = good
    rng = random.Random(2)
    loaded = 0
    for trial in range(400):
        damaged = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            damaged[rng.randrange(len(data))] ^= rng.randrange(1, 256)
        result = _load_or_checkpoint_error(bytes(damaged))
        if result is not None:
            loaded += 1
            assert _same(result, obj), trial
    assert loaded < 400          # the damage was seen


def test_flips_inside_tensor_data_always_raise(good):
    """Every tensor byte is covered by the CRC: a changed value is never returned."""
    obj, data = good
    rng = random.Random(3)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        spans = []
        for info in z.infolist():
            if info.filename != "__manifest__.npy" and info.file_size > 128:
                start = info.header_offset + 30 + len(info.filename) + len(info.extra)
                spans.append((start, start + info.file_size))
    assert spans
    for _ in range(100):
        start, end = rng.choice(spans)
        damaged = bytearray(data)
        damaged[rng.randrange(start, end)] ^= 1 << rng.randrange(8)
        assert _load_or_checkpoint_error(bytes(damaged)) is None


_WRONG_VALUES = [None, True, False, 0, -1, 3, 1.5, 2 ** 70, "", "x", "np", "nan", "t0", "t999",
                 "__manifest__", "float32", "bool", "int64", "dict", [], [[]], [1, 2], {},
                 {"t": "none"}, {"t": "int", "v": "1"}]


def _nodes(node, out):
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            _nodes(v, out)
    elif isinstance(node, list):
        for v in node:
            _nodes(v, out)
    return out


def test_manifest_fields_with_wrong_types_or_values(good):
    """Structure changes with valid CRCs: either a well-formed object loads or CheckpointError."""
    obj, data = good
    manifest = _manifest_of(data)
    rng = random.Random(4)
    outcomes = set()
    for _trial in range(300):
        m = copy.deepcopy(manifest)
        node = rng.choice(_nodes(m, []))
        action = rng.randrange(3)
        field = rng.choice(sorted(node))
        if action == 0:
            node[field] = copy.deepcopy(rng.choice(_WRONG_VALUES))
        elif action == 1:
            del node[field]
        else:
            node["extra"] = 1
        result = _load_or_checkpoint_error(_with_manifest(data, m))
        outcomes.add(result is None)
    assert outcomes == {True, False}     # some mutations are still valid files (e.g. a new lr)


@pytest.mark.parametrize("root, why", [
    ({"t": "dtype", "v": "np"}, "invalid value"),             # was getattr(_dtypes, "np")
    ({"t": "dtype", "v": "ALL"}, "invalid value"),
    ({"t": "dtype", "v": "float"}, "invalid value"),          # aliases are not stored names
    ({"t": "int", "v": "12"}, "invalid value"),               # was returned as a str
    ({"t": "int", "v": True}, "invalid value"),
    ({"t": "bool", "v": 1}, "invalid value"),
    ({"t": "float", "v": "1e5"}, "invalid value"),
    ({"t": "str", "v": 3}, "invalid value"),
    ({"t": "list", "items": {"a": 1}}, "not a list"),
    ({"t": "dict", "items": [[{"t": "int", "v": 1}]]}, "pair"),
    ({"t": "dict", "items": [[{"t": "list", "items": []}, {"t": "none"}]]}, "cannot be a dict key"),
    ({"t": "dict", "items": [[{"t": "int", "v": 1}, {"t": "none"}],
                             [{"t": "int", "v": 1}, {"t": "none"}]]}, "twice"),
    ({"t": "dict", "items": [[{"t": "bool", "v": True}, {"t": "none"}],
                             [{"t": "int", "v": 1}, {"t": "none"}]]}, "twice"),
    ({"t": "module", "v": "os"}, "no known type"),
    ({"t": "none", "v": 1}, "has the fields"),
    ([1, 2], "no known type"),
    ({"t": "tensor", "key": "t1", "dtype": "float32", "requires_grad": False, "param": False},
     "missing member"),
    ({"t": "tensor", "key": "__manifest__", "dtype": "uint8", "requires_grad": False,
      "param": False}, "invalid tensor"),
    ({"t": "tensor", "key": "t0", "dtype": "float64", "requires_grad": False, "param": False},
     "holds float32"),
    ({"t": "tensor", "key": "t0", "dtype": "float32", "requires_grad": 1, "param": False},
     "invalid tensor"),
    ({"t": "list", "items": [
        {"t": "tensor", "key": "t0", "dtype": "float32", "requires_grad": False, "param": False},
        {"t": "tensor", "key": "t0", "dtype": "float32", "requires_grad": True, "param": True}]},
     "different"),
    ({"t": "none"}, "not referenced"),
])
def test_manifest_schema_violations(root, why):
    with_tensor = "tensor" in json.dumps(root) or why == "not referenced"
    data = _save_bytes(fg.ones(2) if with_tensor else None)
    m = _manifest_of(data)
    m["root"] = root
    with pytest.raises(CheckpointError, match=why):
        fg.load(io.BytesIO(_with_manifest(data, m)))


def test_int_tensor_cannot_require_grad_in_the_manifest():
    data = _save_bytes(fg.tensor([1, 2]))
    m = _manifest_of(data)
    m["root"]["requires_grad"] = True
    with pytest.raises(CheckpointError, match="cannot require grad"):
        fg.load(io.BytesIO(_with_manifest(data, m)))


@pytest.mark.parametrize("text, why", [
    (b'{"format": "fastgrad-npz", "version": 1, "version": 1, "root": {"t": "none"}}', "twice"),
    (b'{"format": "fastgrad-npz", "version": 1, "root": {"t": "float", "v": NaN}}', "non-JSON"),
    (b'{"format": "fastgrad-npz", "version": 3, "root": {"t": "none"}}', "upgrade fastgrad"),
    (b'{"format": "fastgrad-npz", "version": "1", "root": {"t": "none"}}', "version"),
    (b'{"format": "other", "version": 1, "root": {"t": "none"}}', "unknown format"),
    (b'{"format": "fastgrad-npz", "version": 1}', "format, version, root"),
    (b'[' * 100000 + b']' * 100000, "not valid JSON"),
    (b'\xff\xfe', "not valid JSON"),
    (b'{"format": "fastgrad-npz", "version": 1, "root": {"t": "list", "items": ['
     + b'[' * 900 + b']' * 900 + b']}}', "no known type"),
    (b'{"format": "fastgrad-npz", "version": 1, "root": ' + b'{"t": "list", "items": [' * 150
     + b']}' * 150 + b'}', "deeper"),
], ids=["duplicate-field", "NaN", "newer-version", "str-version", "other-format",
        "missing-root", "deep-json", "not-utf8", "deep-list-item", "deep-nodes"])
def test_malformed_manifest_json(text, why):
    data = _save_bytes(None)
    with pytest.raises(CheckpointError, match=why):
        fg.load(io.BytesIO(_with_manifest(data, text)))


def test_duplicate_members_are_rejected(good):
    obj, data = good
    members = _members(data)
    rng = random.Random(5)
    for _ in range(20):
        i = rng.randrange(len(members))
        name, blob = members[i]
        other = _npy(np.zeros(3, np.float32)) if rng.random() < 0.5 else blob
        dup = members[:i + 1] + [(name, other)] + members[i + 1:]
        with pytest.raises(CheckpointError, match="more than once"):
            fg.load(io.BytesIO(_archive(dup)))


def test_member_layout_checks():
    data = _save_bytes({"a": fg.ones(3)})
    members = dict(_members(data))
    with pytest.raises(CheckpointError, match="is not a .npy array"):
        fg.load(io.BytesIO(_archive(list(members.items()) + [("extra.txt", b"hi")])))
    with pytest.raises(CheckpointError, match="not referenced"):
        fg.load(io.BytesIO(_archive(list(members.items()) + [("t9.npy", _npy([1.0]))])))
    with pytest.raises(CheckpointError, match="compressed"):
        fg.load(io.BytesIO(_archive(list(members.items()), zipfile.ZIP_DEFLATED)))
    with pytest.raises(CheckpointError, match="no __manifest__"):
        fg.load(io.BytesIO(_archive([("t0.npy", members["t0.npy"])])))
    with pytest.raises(CheckpointError, match="Fortran"):
        arr = np.asfortranarray(np.ones((2, 3), np.float32))
        fg.load(io.BytesIO(_archive([("t0.npy", _npy(arr)),
                                     ("__manifest__.npy", members["__manifest__.npy"])])))


@pytest.mark.parametrize("dtype", ["<c8", "<U3", "|V4", "<f4,<f4", "(2,)<f4", "<M8[s]", "O"])
def test_member_dtypes_outside_fastgrads_table_are_rejected(dtype):
    data = _save_bytes(fg.ones(2))
    members = dict(_members(data))
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": (2,)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    blob = buf.getvalue() + bytes(2 * np.dtype(dtype).itemsize if dtype != "O" else 16)
    with pytest.raises(CheckpointError, match="not one of fastgrad's dtypes"):
        fg.load(io.BytesIO(_archive([("t0.npy", blob),
                                     ("__manifest__.npy", members["__manifest__.npy"])])))


def _header_with_shape(shape, descr="<f4"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


def _manifest_member(dtype="float32"):
    text = json.dumps({"format": "fastgrad-npz", "version": 1, "root": {
        "t": "tensor", "key": "t0", "dtype": dtype, "requires_grad": False, "param": False}})
    return ("__manifest__.npy", _npy(np.frombuffer(text.encode(), np.uint8)))


def _peak_bytes_of(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("shape", [(2 ** 30,), (2 ** 62,), (2 ** 40, 2 ** 40), (-1,), (1.5,),
                                   (True,), "3", (2,) * 65, (0, 2 ** 62), (2 ** 40,) * 2 + (0,)])
def test_huge_or_invalid_declared_shapes_raise_without_allocating(shape):
    blob = _header_with_shape(shape) + bytes(0 if 0 in tuple(shape) else 64)   # a huge claim
    data = _archive([("t0.npy", blob), _manifest_member()])

    def load():
        with pytest.raises(CheckpointError, match="shape|needs"):
            fg.load(io.BytesIO(data))
    assert _peak_bytes_of(load) < 1 << 20


def test_zip_bomb_raises_without_allocating():
    """A 30 kB deflated member that expands to a 32 MiB tensor with a consistent header."""
    n = 8 << 20
    blob = _header_with_shape((n,)) + bytes(4 * n)
    data = _archive([("t0.npy", blob), _manifest_member()], zipfile.ZIP_DEFLATED)
    assert len(data) < 100_000

    def load():
        with pytest.raises(CheckpointError, match="compressed"):
            fg.load(io.BytesIO(data))
    assert _peak_bytes_of(load) < 1 << 20


def _central_entries(data):
    """Offsets of the central-directory entries of an archive."""
    pos, out = data.index(b"PK\x01\x02"), []
    while data[pos:pos + 4] == b"PK\x01\x02":
        out.append(pos)
        pos += 46 + sum(struct.unpack("<3H", data[pos + 28:pos + 34]))
    return out


def test_overlapping_members_are_rejected():
    """An entry whose declared size covers the next member would reuse its bytes."""
    data = bytearray(_archive([("t0.npy", _npy(np.ones(1000, np.float32))),
                               ("t1.npy", _npy(np.ones(1000, np.float32))), _manifest_member()]))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        first, second, _ = z.infolist()
    grown = second.header_offset + 30 + len("t1.npy") + second.file_size \
        - (first.header_offset + 30 + len("t0.npy"))
    entry = _central_entries(data)[0]
    data[entry + 20:entry + 28] = struct.pack("<II", grown, grown)
    with pytest.raises(CheckpointError, match="overlaps"):
        fg.load(io.BytesIO(bytes(data)))
    entry = _central_entries(data)[1]       # an entry pointing at another member's header
    data[entry + 42:entry + 46] = struct.pack("<I", first.header_offset)
    with pytest.raises(CheckpointError, match="local header names 't0.npy'|overlaps"):
        fg.load(io.BytesIO(bytes(data)))


def test_bool_member_with_bytes_other_than_0_and_1_is_rejected():
    blob = _header_with_shape((3,), "|b1") + bytes([0, 1, 2])
    with pytest.raises(CheckpointError, match="bool"):
        fg.load(io.BytesIO(_archive([("t0.npy", blob), _manifest_member("bool")])))


def test_every_member_crc_checked_including_the_manifest():
    data = bytearray(_save_bytes({"lr": 0.5}))
    i = data.index(b"0.5")
    data[i:i + 3] = b"0.7"                  # a plausible value: only the CRC can tell
    with pytest.raises(CheckpointError, match="CRC"):
        fg.load(io.BytesIO(bytes(data)))
    data = bytearray(_save_bytes(fg.tensor([1.0, 2.0])))
    i = data.index(np.float32(2.0).tobytes())
    data[i:i + 4] = np.float32(3.0).tobytes()
    with pytest.raises(CheckpointError, match="CRC"):
        fg.load(io.BytesIO(bytes(data)))


def test_crc_is_checked_on_a_path_too(tmp_path):
    data = bytearray(_save_bytes(fg.tensor([1.0, 2.0])))
    i = data.index(np.float32(2.0).tobytes())
    data[i:i + 4] = np.float32(3.0).tobytes()
    path = tmp_path / "ckpt.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="ckpt.pt.*CRC-32") as info:
        fg.load(path)
    assert isinstance(info.value, RuntimeError)
    assert "restore it from a good copy" in str(info.value)


def test_garbage_and_pickle_inputs(tmp_path):
    import pickle
    for data in [b"", b"PK", b"garbage" * 100, pickle.dumps({"a": 1}), b"PK\x05\x06" + bytes(18)]:
        with pytest.raises(CheckpointError):
            fg.load(io.BytesIO(data))


def test_pytorch_checkpoint_is_named_as_such(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "torch.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="it is a PyTorch checkpoint"):
        fg.load(path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        fg.load(path)

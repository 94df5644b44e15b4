"""fastgrad.save / fastgrad.load: round trips of tensors, state dicts and optimizer-style nested
containers; the format is a pickle-free .npz with a JSON manifest."""
import collections
import enum
import io
import json
import pickle

import numpy as np
import pytest

from _backend import fg, REFERENCE

nn = fg.nn


def _rt(obj):
    buf = io.BytesIO()
    fg.save(obj, buf)
    buf.seek(0)
    return fg.load(buf, weights_only=True)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_tensor_round_trip(dtype, shape):
    t = fg.tensor(np.ones(shape).astype(dtype))
    r = _rt(t)
    assert r.dtype == t.dtype and tuple(r.shape) == shape
    np.testing.assert_array_equal(r.numpy(), t.numpy())


def test_state_dict_round_trip_through_file(tmp_path):
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    m(fg.randn(5, 3))
    path = tmp_path / "model.pt"
    fg.save(m.state_dict(), path)
    sd = fg.load(path)
    assert list(sd) == list(m.state_dict())
    m2 = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    assert repr(m2.load_state_dict(sd)) == "<All keys matched successfully>"
    m.eval()
    m2.eval()
    x = fg.randn(2, 3)
    np.testing.assert_array_equal(m(x).detach().numpy(), m2(x).detach().numpy())
    np.testing.assert_array_equal(m2[1].num_batches_tracked.numpy(), 1)


def test_nested_containers_and_numbers():
    obj = {"state": {0: {"step": fg.tensor(3.0), "exp_avg": fg.zeros(2)}},
           "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0], "amsgrad": False,
                             "foreach": None, "name": "g", "eps": float("inf")}]}
    r = _rt(obj)
    assert list(r["state"].keys()) == [0]
    g = r["param_groups"][0]
    assert g["betas"] == (0.9, 0.999) and g["params"] == [0] and g["foreach"] is None
    assert g["amsgrad"] is False and g["name"] == "g" and g["eps"] == float("inf")
    assert r["state"][0]["step"].item() == 3.0


def test_parameter_and_requires_grad_preserved():
    p = nn.Parameter(fg.ones(2))
    q = fg.zeros(2, requires_grad=True)
    r = _rt([p, q, p])
    assert isinstance(r[0], nn.Parameter) and r[0].requires_grad
    assert r[1].requires_grad and not isinstance(r[1], nn.Parameter)
    assert r[2] is r[0]                      # same tensor saved once


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
def test_format_is_npz_with_json_manifest_and_no_pickle():
    buf = io.BytesIO()
    fg.save({"w": fg.ones(2)}, buf)
    buf.seek(0)
    z = np.load(buf, allow_pickle=False)
    man = json.loads(bytes(z["__manifest__"]).decode())
    assert man["format"] == "fastgrad-npz" and man["root"]["t"] == "dict"
    np.testing.assert_array_equal(z["t0"], [1, 1])


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
def test_load_refuses_pickle(tmp_path):
    path = tmp_path / "evil.pt"

    class Evil:
        def __reduce__(self):
            return (print, ("executed!",))

    path.write_bytes(pickle.dumps(Evil()))
    from fastgrad.serialization import CheckpointError
    with pytest.raises(CheckpointError, match="evil.pt' is not a valid fastgrad checkpoint.*"
                                              "PyTorch pickle checkpoints cannot be read"):
        fg.load(path)


def test_save_of_an_object_pickle_cannot_take_raises_pickles_error():
    """Objects beyond tensors and containers are pickled, as torch.save does: a local lambda
    raises pickle's own error, as in PyTorch."""
    buf = io.BytesIO()
    with pytest.raises(AttributeError, match="Can't pickle local object"):
        fg.save({"f": lambda: 0}, buf)
    if not REFERENCE:
        assert buf.getvalue() == b""              # pickled before anything is written


# ----------------------------------------------------------------------------- round trips

_ALL_DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]


def _sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    return np.asarray(rng.standard_normal(shape) * 100).astype(dtype)


@pytest.mark.parametrize("dtype", _ALL_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3), (5,), (2, 3, 4)])
def test_every_dtype_and_shape_round_trips_bit_exact(dtype, shape):
    a = _sample(dtype, shape)
    r = _rt(fg.from_numpy(a.copy()))
    assert str(r.dtype) == f"torch.{dtype}" and tuple(r.shape) == shape
    assert r.numpy().dtype == a.dtype and r.numpy().tobytes() == a.tobytes()


def test_non_contiguous_tensors_round_trip():
    base = fg.from_numpy(np.arange(60, dtype=np.float64).reshape(3, 4, 5))
    views = [base.transpose(0, 2), base[:, ::2, 1:], base[1], base.permute(2, 0, 1)[1:4]]
    r = _rt(views)
    for v, got in zip(views, r):
        np.testing.assert_array_equal(got.numpy(), v.numpy())


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8", ">i2", ">i4", ">i8"])
def test_big_endian_array_is_refused_and_its_native_copy_round_trips(dtype):
    """A non-native array never becomes a tensor (ValueError, as PyTorch); converted, it saves
    and loads equal."""
    a = _sample(dtype, (3, 2))
    with pytest.raises(ValueError, match="byte order"):
        fg.tensor(a)
    r = _rt(fg.tensor(a.astype(a.dtype.newbyteorder("="))))
    assert r.numpy().dtype == a.dtype.newbyteorder("=") and r.numpy().dtype.isnative
    np.testing.assert_array_equal(r.numpy(), a)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
def test_archive_with_big_endian_members_converts_to_native():
    """Files written on (or for) a big-endian machine: values convert, never reinterpret."""
    a = np.array([[1.5, -2.0], [3.25, 1e30]], dtype=">f4")
    manifest = {"format": "fastgrad-npz", "version": 1, "root": {
        "t": "tensor", "key": "t0", "dtype": "float32", "requires_grad": False, "param": False}}
    buf = io.BytesIO()
    np.savez(buf, t0=a, __manifest__=np.frombuffer(json.dumps(manifest).encode(), np.uint8))
    buf.seek(0)
    r = fg.load(buf)
    assert r.numpy().dtype == np.float32 and r.numpy().dtype.isnative
    np.testing.assert_array_equal(r.numpy(), a.astype(np.float32))


def test_files_written_by_numpy_savez_still_load():
    """Checkpoints written before the streaming writer (np.savez, zip64 entries) load."""
    manifest = {"format": "fastgrad-npz", "version": 1, "root": {"t": "list", "items": [
        {"t": "tensor", "key": "t0", "dtype": "int64", "requires_grad": False, "param": False},
        {"t": "float", "v": "nan"}]}}
    buf = io.BytesIO()
    np.savez(buf, t0=np.arange(4), __manifest__=np.frombuffer(json.dumps(manifest).encode(),
                                                                np.uint8))
    buf.seek(0)
    if REFERENCE:
        pytest.skip("fastgrad's own file format")
    t, nan = fg.load(buf)
    np.testing.assert_array_equal(t.numpy(), np.arange(4))
    assert np.isnan(nan)


@pytest.mark.parametrize("map_location", [None, "cpu", {"cuda:0": "cpu"},
                                          lambda storage, loc: storage])
@pytest.mark.parametrize("weights_only", [None, True, False])
def test_map_location_and_weights_only_accepted_as_pytorch(map_location, weights_only):
    buf = io.BytesIO()
    fg.save({"w": fg.arange(3.0)}, buf)
    buf.seek(0)
    r = fg.load(buf, map_location=map_location, weights_only=weights_only, mmap=None)
    np.testing.assert_array_equal(r["w"].numpy(), [0.0, 1.0, 2.0])
    if map_location is not None and not callable(map_location) \
            and not isinstance(map_location, dict):
        buf.seek(0)
        r = fg.load(buf, map_location=fg.device(map_location))
        np.testing.assert_array_equal(r["w"].numpy(), [0.0, 1.0, 2.0])


def test_map_location_to_a_missing_device_raises_runtime_error():
    torch_has_cuda = REFERENCE and fg.cuda.is_available()
    if torch_has_cuda:
        pytest.skip("CUDA is available")
    buf = io.BytesIO()
    fg.save(fg.ones(1), buf)
    buf.seek(0)
    with pytest.raises(RuntimeError):
        fg.load(buf, map_location="cuda:0")


def test_save_to_file_object_at_an_offset_and_non_seekable_source(tmp_path):
    """Like torch.save(obj, f): writes at f's position and leaves f open."""
    buf = io.BytesIO()
    buf.write(b"header bytes")
    fg.save([fg.ones(2), 3], buf)
    assert not buf.closed
    buf.seek(len(b"header bytes"))
    t, n = fg.load(buf)
    assert n == 3 and t.numpy().tolist() == [1.0, 1.0]

    class Pipe(io.RawIOBase):          # a readable stream that cannot seek (a socket, a pipe)
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self._data.readinto(b)

    payload = io.BytesIO()
    fg.save({"k": fg.zeros(3)}, payload)
    if REFERENCE:
        pytest.skip("torch.load needs a seekable file")
    assert fg.load(Pipe(payload.getvalue()))["k"].numpy().tolist() == [0.0, 0.0, 0.0]
    with open(tmp_path / "f.pt", "wb") as fh:
        fg.save(fg.ones(1), fh)
        assert not fh.closed
    with open(tmp_path / "f.pt", "rb") as fh:
        assert fg.load(fh).numpy().tolist() == [1.0]


# ----------------------------------------------------------------------------- atomic save

def _dir_listing(path):
    return sorted(p.name for p in path.iterdir())


@pytest.mark.skipif(REFERENCE, reason="PyTorch writes in place")
def test_save_failing_mid_write_keeps_the_previous_file_and_no_temp(tmp_path, monkeypatch):
    from fastgrad import _npz_archive
    path = tmp_path / "ckpt.pt"
    fg.save({"w": fg.arange(5.0)}, path)
    before = path.read_bytes()
    monkeypatch.setattr(_npz_archive, "_CHUNK", 1 << 16)
    calls = []

    def disk_full(out, chunk):
        calls.append(len(chunk))
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        out.write(chunk)
    monkeypatch.setattr(_npz_archive, "_write_chunk", disk_full)
    with pytest.raises(OSError, match="No space"):
        fg.save({"w": fg.zeros(1 << 20)}, path)
    assert len(calls) == 3
    assert path.read_bytes() == before
    assert _dir_listing(tmp_path) == ["ckpt.pt"]
    np.testing.assert_array_equal(fg.load(path)["w"].numpy(), np.arange(5.0))


@pytest.mark.skipif(REFERENCE, reason="PyTorch writes in place")
def test_save_of_an_unsaveable_object_keeps_the_previous_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    fg.save({"w": fg.arange(5.0)}, path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        fg.save({"w": fg.zeros(1000), "f": lambda: 0}, path)
    assert path.read_bytes() == before
    assert _dir_listing(tmp_path) == ["ckpt.pt"]


_KILLED_SAVE = r"""
import os, signal, sys
import numpy as np
import fastgrad as fg
from fastgrad import _npz_archive

path = sys.argv[1]
_npz_archive._CHUNK = 1 << 20
written = []

def write_then_die(out, chunk):
    out.write(chunk)
    written.append(len(chunk))
    if len(written) == 2:                 # mid-way through an 8 MB tensor
        out._fileobj.flush()
        os.kill(os.getpid(), signal.SIGKILL)

_npz_archive._write_chunk = write_then_die
fg.save({"w": fg.from_numpy(np.full(2 << 20, 7.0, np.float32))}, path)
print("save returned")
"""


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own writer")
@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="needs SIGKILL")
def test_save_killed_mid_write_leaves_the_previous_file_loadable(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    path = tmp_path / "ckpt.pt"
    old = {"w": fg.from_numpy(np.linspace(0, 1, 1000, dtype=np.float32)), "step": 41}
    fg.save(old, path)
    before = path.read_bytes()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "save returned" not in proc.stdout
    assert path.read_bytes() == before                # bit-identical
    r = fg.load(path)
    assert r["step"] == 41 and r["w"].numpy().tobytes() == old["w"].numpy().tobytes()
    leftovers = [p for p in tmp_path.iterdir() if p.name != "ckpt.pt"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".ckpt.pt.")
    assert leftovers[0].stat().st_size > 1 << 20      # it died mid-way through the data


@pytest.mark.skipif(REFERENCE, reason="fastgrad's atomic replace")
def test_save_through_a_symlink_replaces_the_target_and_keeps_its_mode(tmp_path):
    import os
    target = tmp_path / "real.pt"
    fg.save(fg.ones(1), target)
    os.chmod(target, 0o640)
    link = tmp_path / "link.pt"
    link.symlink_to(target)
    fg.save(fg.zeros(2), link)
    assert link.is_symlink() and fg.load(target).numpy().tolist() == [0.0, 0.0]
    assert (target.stat().st_mode & 0o777) == 0o640
    assert _dir_listing(tmp_path) == ["link.pt", "real.pt"]


def test_save_to_dev_null_writes_in_place():
    import os
    if not os.path.exists(os.devnull) or os.name != "posix":
        pytest.skip("needs /dev/null")
    fg.save(fg.ones(3), os.devnull)
    assert os.path.exists(os.devnull) and not os.path.isfile(os.devnull)


def _nested(depth):
    obj = fg.ones(1)
    for i in range(depth):
        obj = [obj] if i % 2 else {"k": obj}
    return obj


def _version(buf):
    return json.loads(bytes(np.load(io.BytesIO(buf.getvalue()))["__manifest__"]))["version"]


@pytest.mark.skipif(REFERENCE, reason="fastgrad's nesting limit")
def test_nesting_beyond_the_manifest_limit_is_pickled_and_loads_weights_only():
    """The manifest describes containers up to 100 deep; deeper ones are pickled (format
    version 2) and, being containers only, still load with weights_only=True."""
    for depth, version in [(100, 1), (101, 2), (300, 2)]:
        buf = io.BytesIO()
        fg.save(_nested(depth), buf)
        assert _version(buf) == version
        buf.seek(0)
        r = fg.load(buf, weights_only=True)
        for i in reversed(range(depth)):
            r = r["k"] if i % 2 == 0 else r[0]
        assert r.numpy().tolist() == [1.0]


class _Color(enum.IntEnum):
    RED = 1


class _Name(str):
    pass


_Pair = collections.namedtuple("_Pair", "a b")


def test_container_and_number_subclasses_keep_their_types():
    """Counter, defaultdict, namedtuple, Size, IntEnum and str subclasses once loaded as their
    base class (dict, tuple, int, str) without a word: they are pickled with their type."""
    t = fg.arange(3.0)
    objs = {"counter": collections.Counter(a=2), "dd": collections.defaultdict(list, k=[t]),
            "pair": _Pair(t, 1), "size": fg.Size([2, 3]), "color": _Color.RED,
            "name": _Name("n"), "in_dict": {"c": collections.Counter("ab"), "x": t}}
    for key, obj in objs.items():
        buf = io.BytesIO()
        fg.save(obj, buf)
        buf.seek(0)
        r = fg.load(buf, weights_only=False)
        assert type(r) is type(obj), key
        assert key in ("dd", "pair", "in_dict") or r == obj, key          # no tensors inside
    assert type(_rt(collections.Counter(a=2))) is collections.Counter     # allowed by default
    assert type(_rt(fg.Size([2, 3]))) is fg.Size
    r = _rt({"c": collections.Counter("ab"), "x": t})
    assert type(r["c"]) is collections.Counter and r["c"] == collections.Counter("ab")
    np.testing.assert_array_equal(r["x"].numpy(), t.numpy())
    buf = io.BytesIO()
    fg.save(objs["dd"], buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="defaultdict"):   # as torch.load refuses
        fg.load(buf)
    buf.seek(0)
    r = fg.load(buf, weights_only=False)
    assert type(r) is collections.defaultdict and r.default_factory is list
    np.testing.assert_array_equal(r["k"][0].numpy(), t.numpy())
    buf = io.BytesIO()
    fg.save(objs["pair"], buf)
    buf.seek(0)
    r = fg.load(buf, weights_only=False)
    assert type(r) is _Pair and r.b == 1 and r.a.tolist() == [0.0, 1.0, 2.0]

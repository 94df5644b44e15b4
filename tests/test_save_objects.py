"""save/load of whole objects (modules, optimizers, anything picklable), as torch.save and
torch.load do them: round trips, the weights_only=True refusal (PyTorch 2.6+'s default) and the
safe_globals allowlist, and damaged or crafted files of the pickled kind."""
import collections
import functools
import io
import json
import os
import pickle
import random
import sys
import zipfile

import numpy as np
import pytest

from _backend import fg, REFERENCE, reference_torch

nn = fg.nn

if not REFERENCE:
    from fastgrad import _npz_archive
    from fastgrad.serialization import CheckpointError


@pytest.fixture(autouse=True)
def _keep_safe_globals():
    """Each test starts and ends with the allowlist it found (torch registers some of its own)."""
    before = fg.serialization.get_safe_globals()
    yield
    fg.serialization.clear_safe_globals()
    fg.serialization.add_safe_globals(before)


# ----------------------------------------------------------------------------- objects to save

class Net(nn.Module):
    """A small language-model-shaped net with a tied weight (decoder.weight is encoder.weight)."""

    def __init__(self, vocab=7, dim=4):
        super().__init__()
        self.encoder = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, dim)
        self.drop = nn.Dropout(0.0)
        self.decoder = nn.Linear(dim, vocab)
        self.decoder.weight = self.encoder.weight
        self.register_buffer("scale", fg.tensor([2.0]))
        self.steps = 0

    def forward(self, tokens):
        out, _ = self.rnn(self.drop(self.encoder(tokens)))
        return self.decoder(out) * self.scale


NET_GLOBALS = [Net, nn.Embedding, nn.LSTM, nn.Dropout, nn.Linear]


class Record:
    """A plain object holding tensors among other things."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


Point = collections.namedtuple("Point", "x y")

RAN = []


def _mark(what):
    RAN.append(what)
    return what


class RunsOnLoadByReduce:
    """Unpickling it calls _mark: what a malicious file does with os.system."""

    def __reduce__(self):
        return (_mark, ("reduce",))


class RunsOnLoadBySetstate:
    def __init__(self):
        self.w = fg.ones(2)

    def __setstate__(self, state):
        RAN.append("setstate")
        self.__dict__.update(state)


def _roundtrip(obj, **load_kw):
    buf = io.BytesIO()
    fg.save(obj, buf)
    buf.seek(0)
    return fg.load(buf, **load_kw)


def _tokens():
    return fg.tensor([[1, 2], [3, 4], [5, 6]])


def _trained_net():
    fg.manual_seed(0)
    net = Net()
    opt = fg.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        net(_tokens()).pow(2).mean().backward()
        opt.step()
    net.steps = 2
    return net, opt


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("through", ["path", "file", "buffer"])
def test_module_round_trip_predicts_the_same(tmp_path, through):
    net, _ = _trained_net()
    net.eval()
    path = tmp_path / "net.pt"
    if through == "path":
        fg.save(net, path)
        back = fg.load(path, weights_only=False)
    elif through == "file":
        with open(path, "wb") as f:
            fg.save(net, f)
        with open(path, "rb") as f:
            back = fg.load(f, weights_only=False)
    else:
        back = _roundtrip(net, weights_only=False)
    assert type(back) is Net and back is not net and not back.training and back.steps == 2
    np.testing.assert_array_equal(back(_tokens()).detach().numpy(),
                                  net(_tokens()).detach().numpy())
    assert [n for n, _ in back.named_parameters()] == [n for n, _ in net.named_parameters()]
    for p, q in zip(back.parameters(), net.parameters()):
        assert type(p) is nn.Parameter and p.requires_grad and p.is_leaf and p.grad is None
        assert p.dtype == q.dtype
    assert back.decoder.weight is back.encoder.weight          # tied weights stay tied
    assert type(back.scale) is not nn.Parameter and not back.scale.requires_grad
    assert back.state_dict().keys() == net.state_dict().keys()


def test_loaded_module_trains_like_the_original():
    net, _ = _trained_net()
    back = _roundtrip(net, weights_only=False)
    for m in (net, back):
        opt = fg.optim.SGD(m.parameters(), lr=0.1)
        opt.zero_grad()                           # the original holds its last gradients
        m(_tokens()).sum().backward()
        opt.step()
    for p, q in zip(back.parameters(), net.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_model_optimizer_and_epoch_checkpoint_resumes_exactly():
    """torch.save({'model': model, 'optimizer': opt, 'epoch': n}): the loaded optimizer steps the
    loaded model's own parameters, from the saved moments."""
    net, opt = _trained_net()
    ckpt = _roundtrip({"model": net, "optimizer": opt, "epoch": 5}, weights_only=False)
    net2, opt2 = ckpt["model"], ckpt["optimizer"]
    assert ckpt["epoch"] == 5 and type(opt2) is type(opt)
    params2 = list(net2.parameters())
    assert all(a is b for a, b in zip(opt2.param_groups[0]["params"], params2))
    assert all(p in opt2.state for p in params2)
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    for m, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        m(_tokens()).pow(2).mean().backward()
        o.step()
    for p, q in zip(params2, net.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_nested_objects_keep_types_and_shared_tensors():
    shared = fg.arange(3.0)
    grad = fg.ones(2, requires_grad=True)
    obj = {"rec": Record(w=shared, tag="r", n=None), "again": [shared, (shared,)],
           "set": {1, 2}, "fs": frozenset({"a"}), "pt": Point(shared, 2.5),
           "dd": collections.defaultdict(list, {"k": [shared]}), "c": 1 + 2j, "b": b"\x00\xff",
           "odict": collections.OrderedDict(z=1, a=2), "param": nn.Parameter(fg.zeros(1)),
           "grad": grad, "dtype": fg.float16, "size": fg.Size([2, 3]), "dev": fg.device("cpu")}
    r = _roundtrip(obj, weights_only=False)
    assert type(r["rec"]) is Record and r["rec"].tag == "r" and r["rec"].n is None
    t = r["rec"].w
    assert r["again"][0] is t and r["again"][1][0] is t and r["pt"].x is t
    assert r["dd"]["k"][0] is t and type(r["dd"]) is collections.defaultdict
    assert r["dd"].default_factory is list
    assert r["set"] == {1, 2} and r["fs"] == frozenset({"a"}) and r["c"] == 1 + 2j
    assert r["b"] == b"\x00\xff" and type(r["pt"]) is Point and r["pt"].y == 2.5
    assert list(r["odict"]) == ["z", "a"] and type(r["odict"]) is collections.OrderedDict
    assert type(r["param"]) is nn.Parameter and r["param"].requires_grad
    assert r["grad"].requires_grad and r["grad"].is_leaf and type(r["grad"]) is not nn.Parameter
    assert r["dtype"] == fg.float16 and r["size"] == (2, 3) and r["dev"] == fg.device("cpu")
    np.testing.assert_array_equal(t.numpy(), [0.0, 1.0, 2.0])


def test_non_leaf_tensor_loads_as_a_leaf_that_requires_grad():
    x = fg.ones(2, requires_grad=True) * 2
    r = _roundtrip(Record(y=x), weights_only=False).y
    assert r.requires_grad and r.is_leaf and r.grad_fn is None
    np.testing.assert_array_equal(r.detach().numpy(), [2.0, 2.0])


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_every_pickle_protocol_round_trips(protocol):
    if REFERENCE and protocol == 0:
        pytest.skip("torch.load reads the persistent ids of protocols 1 and up only")
    net, _ = _trained_net()
    buf = io.BytesIO()
    fg.save({"net": net, "s": {3}}, buf, pickle_protocol=protocol)
    buf.seek(0)
    r = fg.load(buf, weights_only=False)
    np.testing.assert_array_equal(r["net"](_tokens()).detach().numpy(),
                                  net(_tokens()).detach().numpy())
    # protocols 0 and 1 rebuild objects through copyreg._reconstructor, not allowed by default;
    # PyTorch's weights-only unpickler reads protocol 2 only
    if protocol == 2 or (protocol > 2 and not REFERENCE):
        buf.seek(0)
        with fg.serialization.safe_globals(NET_GLOBALS):
            r = fg.load(buf, weights_only=True)
        assert r["s"] == {3} and r["net"].decoder.weight is r["net"].encoder.weight


def test_explicit_pickle_module_saves_and_loads():
    net, _ = _trained_net()
    buf = io.BytesIO()
    fg.save(net, buf, pickle_module=pickle)
    buf.seek(0)
    back = fg.load(buf, pickle_module=pickle)          # weights_only defaults to False then
    assert type(back) is Net
    buf.seek(0)
    with pytest.raises(RuntimeError, match="Can not safely load weights when explicit "
                                           "pickle_module is specified"):
        fg.load(buf, pickle_module=pickle, weights_only=True)


def test_map_location_applies_to_tensors_inside_objects():
    seen = []

    def where(storage, location):
        seen.append(location)
        return storage
    back = _roundtrip(Record(w=fg.ones(2), v=fg.zeros(1)), weights_only=False,
                      map_location=where)
    assert seen == ["cpu", "cpu"] and back.w.tolist() == [1.0, 1.0]


# ----------------------------------------------------------------------------- weights_only

def _refusal(obj, **load_kw):
    buf = io.BytesIO()
    fg.save(obj, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError) as info:
        fg.load(buf, **load_kw)
    return str(info.value)


@pytest.mark.parametrize("weights_only", [None, True])
def test_module_is_refused_by_default_with_pytorchs_advice(weights_only):
    net, _ = _trained_net()
    msg = _refusal(net, weights_only=weights_only)
    assert "Weights only load failed" in msg
    assert "weights_only=False" in msg or "`weights_only` set to `False`" in msg
    assert "arbitrary code execution" in msg
    assert (f"Unsupported global: GLOBAL {__name__}.Net was not an allowed global by default"
            in msg)
    assert f"serialization.add_safe_globals([{__name__}.Net])" in msg
    assert f"serialization.safe_globals([{__name__}.Net])" in msg


@pytest.mark.parametrize("weights_only", [None, True])
def test_refusal_runs_nothing_from_the_file(weights_only):
    RAN.clear()
    _refusal([1, RunsOnLoadByReduce()], weights_only=weights_only)
    _refusal({"x": RunsOnLoadBySetstate()}, weights_only=weights_only)
    assert RAN == []
    # the same files with weights_only=False do run it: the check above can fail
    assert _roundtrip([1, RunsOnLoadByReduce()], weights_only=False) == [1, "reduce"]
    assert type(_roundtrip({"x": RunsOnLoadBySetstate()}, weights_only=False)["x"]) \
        is RunsOnLoadBySetstate
    assert RAN == ["reduce", "setstate"]


@pytest.mark.skipif(REFERENCE, reason="a crafted fastgrad archive")
def test_refused_global_is_never_imported(tmp_path, monkeypatch):
    """A global the allowlist lacks is refused by name: its module is not even imported."""
    (tmp_path / "planted_on_import.py").write_text("import builtins\nbuiltins.PLANTED = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = b"\x80\x02cplanted_on_import\nanything\n)R."
    with pytest.raises(pickle.UnpicklingError, match="GLOBAL planted_on_import.anything was not"):
        fg.load(_crafted(data, []))
    assert "planted_on_import" not in sys.modules
    assert not hasattr(__import__("builtins"), "PLANTED")


def test_allowlisted_classes_load_with_weights_only():
    net, _ = _trained_net()
    buf = io.BytesIO()
    fg.save({"model": net, "epoch": 3}, buf)
    for missing in NET_GLOBALS:                   # every class in the graph is needed
        buf.seek(0)
        with fg.serialization.safe_globals([g for g in NET_GLOBALS if g is not missing]):
            with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
                fg.load(buf)
    buf.seek(0)
    with fg.serialization.safe_globals(NET_GLOBALS):
        assert set(NET_GLOBALS) <= set(fg.serialization.get_safe_globals())
        r = fg.load(buf)
    assert not set(NET_GLOBALS) & set(fg.serialization.get_safe_globals())   # removed on exit
    assert r["epoch"] == 3 and r["model"].decoder.weight is r["model"].encoder.weight
    np.testing.assert_array_equal(r["model"](_tokens()).detach().numpy(),
                                  net(_tokens()).detach().numpy())
    fg.serialization.add_safe_globals(NET_GLOBALS)
    buf.seek(0)
    assert type(fg.load(buf)["model"]) is Net
    fg.serialization.clear_safe_globals()
    assert fg.serialization.get_safe_globals() == []
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        fg.load(buf)


def test_allowlist_entry_with_an_explicit_path():
    buf = io.BytesIO()
    fg.save(Record(a=1), buf)
    buf.seek(0)
    with fg.serialization.safe_globals([(Record, f"{__name__}.Record")]):
        assert fg.load(buf).a == 1
    buf.seek(0)
    with fg.serialization.safe_globals([(Record, "elsewhere.Record")]):
        with pytest.raises(pickle.UnpicklingError, match=f"GLOBAL {__name__}.Record"):
            fg.load(buf)


def test_allowlisted_setstate_runs_and_unlisted_reduce_does_not():
    RAN.clear()
    buf = io.BytesIO()
    fg.save([RunsOnLoadBySetstate(), RunsOnLoadByReduce()], buf)
    buf.seek(0)
    with fg.serialization.safe_globals([RunsOnLoadBySetstate]):
        with pytest.raises(pickle.UnpicklingError, match=f"GLOBAL {__name__}._mark was not"):
            fg.load(buf)
    assert RAN == ["setstate"]                    # the allowed class only


def test_containers_load_with_weights_only_by_default():
    obj = {"sets": {1, 2}, "od": collections.OrderedDict(a=fg.ones(1)), "c": 2j,
           "counter": collections.Counter("aab"), "ba": bytearray(b"xy"), "t": (fg.zeros(2),),
           "deep": [[[[[fg.ones(1)]]]]] * 30, "dtype": fg.int8, "size": fg.Size([4]),
           "dev": fg.device("cpu")}
    r = _roundtrip(obj, weights_only=True)
    assert r["sets"] == {1, 2} and r["od"]["a"].tolist() == [1.0] and r["c"] == 2j
    assert r["counter"] == collections.Counter("aab") and r["ba"] == bytearray(b"xy")
    assert r["dtype"] == fg.int8 and r["size"] == fg.Size([4]) and r["dev"] == fg.device("cpu")
    assert r["deep"][0] is r["deep"][29]


@pytest.mark.skipif(REFERENCE, reason="PyTorch 2.13 reads the iterator twice: its globals stay")
def test_safe_globals_of_an_iterator_are_removed_on_exit():
    """The iterator was read twice: on exit it was empty, and its globals stayed allowed."""
    before = fg.serialization.get_safe_globals()
    with fg.serialization.safe_globals(g for g in [Record, (Point, f"{__name__}.Point")]):
        assert len(fg.serialization.get_safe_globals()) == len(before) + 2
        r = _roundtrip(Record(w=1, tag="a", n=None), weights_only=True)
        assert type(r) is Record and r.tag == "a"
    assert fg.serialization.get_safe_globals() == before
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        _roundtrip(Record(w=1, tag="a", n=None), weights_only=True)


def test_blocked_modules_stay_refused_when_allowlisted():
    with fg.serialization.safe_globals([os.system]):
        msg = _refusal([os.system])
    assert "Weights only load failed" in msg
    assert f"GLOBAL {os.system.__module__}.system whose module {os.system.__module__} is " \
           f"blocked" in msg
    assert "add_safe_globals" not in msg              # no allowlist helps: not offered


@pytest.mark.skipif(REFERENCE, reason="PyTorch checks allowlist entries when it loads")
def test_malformed_allowlist_entries_are_refused_when_added():
    with pytest.raises(ValueError, match="tuple of length 2"):
        fg.serialization.add_safe_globals([(Record,)])
    with pytest.raises(TypeError, match="full path"):
        fg.serialization.add_safe_globals([(Record, 3)])
    with pytest.raises(TypeError, match="__module__ and __qualname__"):
        fg.serialization.add_safe_globals([3])
    assert fg.serialization.get_safe_globals() == []


@pytest.mark.skipif(REFERENCE, reason="compares with torch itself")
def test_refusal_and_allowlist_match_torch():
    """The same objects in fastgrad and PyTorch: both refuse with the same exception type and key
    phrases, both load once the same classes are allowlisted."""
    torch = reference_torch()
    if torch is None:
        pytest.skip("torch not installed")
    results = []
    for lib in (fg, torch):
        model = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.ReLU())
        buf = io.BytesIO()
        lib.save({"model": model, "epoch": 1}, buf)
        buf.seek(0)
        with pytest.raises(pickle.UnpicklingError) as info:
            lib.load(buf)
        msg = str(info.value)
        results.append((type(info.value), "Weights only load failed" in msg,
                        "was not an allowed global by default" in msg,
                        "weights_only" in msg and "add_safe_globals" in msg))
        buf.seek(0)
        with lib.serialization.safe_globals([lib.nn.Sequential, lib.nn.Linear, lib.nn.ReLU]):
            back = lib.load(buf)
        x = lib.ones(1, 2)
        assert lib.equal(back["model"](x), model(x))
        buf.seek(0)
        assert type(lib.load(buf, weights_only=False)["model"]) is lib.nn.Sequential
    assert results[0] == results[1] == (pickle.UnpicklingError, True, True, True)


# the classes pytorch/examples' word_language_model and super_resolution allowlist before
# torch.load(f), named by PyTorch's module paths
_LM_PATHS = ["nn.modules.dropout.Dropout", "nn.modules.linear.Linear", "nn.modules.rnn.GRU",
             "nn.modules.rnn.LSTM", "nn.modules.rnn.RNN", "nn.modules.sparse.Embedding"]
_TRANSFORMER_PATHS = ["nn.functional.relu", "nn.modules.activation.MultiheadAttention",
                      "nn.modules.container.ModuleList", "nn.modules.dropout.Dropout",
                      "nn.modules.linear.Linear", "nn.modules.linear.NonDynamicallyQuantizableLinear",
                      "nn.modules.normalization.LayerNorm", "nn.modules.sparse.Embedding",
                      "nn.modules.transformer.TransformerEncoder",
                      "nn.modules.transformer.TransformerEncoderLayer"]
_SR_PATHS = ["nn.modules.activation.ReLU", "nn.modules.conv.Conv2d",
             "nn.modules.pixelshuffle.PixelShuffle"]


def _resolve(path):
    return functools.reduce(getattr, path.split("."), fg)


class TransformerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 8)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2)
        self.decoder = nn.Linear(8, 7)

    def forward(self, tokens):
        return self.decoder(self.encoder(self.emb(tokens)))


class SuperResolutionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 4, (3, 3), (1, 1), (1, 1))
        self.conv2 = nn.Conv2d(4, 4, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.pixel_shuffle(self.conv2(self.relu(self.conv1(x))))


@pytest.mark.parametrize("model, paths, x", [
    (Net, _LM_PATHS, _tokens),
    (TransformerNet, _TRANSFORMER_PATHS, _tokens),
    (SuperResolutionNet, _SR_PATHS, lambda: fg.rand(1, 1, 5, 6))])
def test_pytorch_examples_safe_globals_lists_load_their_models(tmp_path, model, paths, x):
    """`with torch.serialization.safe_globals([...]): model = torch.load(f)` with the lists the
    examples name (PyTorch's module paths resolve to the classes their pickles name)."""
    fg.manual_seed(0)
    m = model()
    m.eval()
    path = tmp_path / "model.pt"
    fg.save(m, path)
    with open(path, "rb") as f:
        with pytest.raises(pickle.UnpicklingError, match=f"GLOBAL {__name__}.{model.__name__}"):
            fg.load(f)
        f.seek(0)
        with fg.serialization.safe_globals([model] + [_resolve(p) for p in paths]):
            back = fg.load(f)
    inp = x()
    np.testing.assert_array_equal(back(inp).detach().numpy(), m(inp).detach().numpy())


# ----------------------------------------------------------------------------- files

def _read_members(buf):
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        return {n: np.load(io.BytesIO(z.read(n)), allow_pickle=False) for n in z.namelist()}


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
def test_tensors_are_npy_members_and_never_pickled_bytes():
    w = fg.from_numpy(np.array([1.25, -7.5, 3.0e-3, 123.0], np.float64))
    rec = Record(w=w, again=w, grad=fg.zeros(3, requires_grad=True))
    buf = io.BytesIO()
    fg.save(rec, buf)
    members = _read_members(buf)
    manifest = json.loads(bytes(members["__manifest__.npy"]))
    assert manifest["version"] == 2 and manifest["root"]["t"] == "pickle"
    assert [n["key"] for n in manifest["root"]["tensors"]] == ["t0", "t1"]
    assert manifest["root"]["tensors"][1]["requires_grad"] is True
    np.testing.assert_array_equal(members["t0.npy"], w.numpy())
    data = members["__pickle__.npy"].tobytes()
    assert w.numpy().tobytes() not in data and b"numpy" not in data
    assert sorted(members) == ["__manifest__.npy", "__pickle__.npy", "t0.npy", "t1.npy"]


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
def test_tensor_containers_keep_the_pickle_free_format():
    """What the first format described is still written with it (and loads with any
    weights_only, pickle_module included, as before)."""
    sd = {"w": fg.ones(2), "n": 3, "opt": {"betas": (0.9, 0.99)}}
    buf = io.BytesIO()
    fg.save(sd, buf)
    members = _read_members(buf)
    assert json.loads(bytes(members["__manifest__.npy"]))["version"] == 1
    assert "__pickle__.npy" not in members
    for kw in [{}, {"weights_only": True}, {"weights_only": False},
               {"pickle_module": pickle, "weights_only": True}]:
        buf.seek(0)
        r = fg.load(buf, **kw)
        assert r["n"] == 3 and r["w"].tolist() == [1.0, 1.0] and r["opt"]["betas"] == (0.9, 0.99)


@pytest.mark.skipif(REFERENCE, reason="PyTorch writes in place")
def test_unpicklable_module_keeps_the_previous_file(tmp_path):
    path = tmp_path / "net.pt"
    net, _ = _trained_net()
    fg.save(net, path)
    before = path.read_bytes()
    net.callback = lambda: 0
    with pytest.raises(AttributeError, match="Can't pickle local object"):
        fg.save(net, path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["net.pt"]
    with open(tmp_path / "other.pt", "wb") as f:
        with pytest.raises(AttributeError):
            fg.save(net, f)
        assert f.tell() == 0                      # pickled before anything is written


# ----------------------------------------------------------------------------- damaged and crafted

def _crafted(data, tensors, manifest_root=None, version=2, extra=None):
    """A version-2 archive with pickle bytes `data` and tensor members `tensors` (arrays)."""
    members = {f"t{i}": np.ascontiguousarray(a) for i, a in enumerate(tensors)}
    members.update(extra or {})
    members["__pickle__"] = np.frombuffer(data, np.uint8)
    nodes = [{"t": "tensor", "key": f"t{i}", "dtype": a.dtype.name, "requires_grad": False,
              "param": False} for i, a in enumerate(tensors)]
    root = {"t": "pickle", "tensors": nodes} if manifest_root is None else manifest_root
    text = json.dumps({"format": "fastgrad-npz", "version": version, "root": root}).encode()
    members["__manifest__"] = np.frombuffer(text, np.uint8)
    buf = io.BytesIO()
    _npz_archive.write(buf, members)
    buf.seek(0)
    return buf


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
def test_damaged_object_file_raises_checkpoint_error():
    net, _ = _trained_net()
    buf = io.BytesIO()
    fg.save({"model": net, "epoch": 1}, buf)
    good = buf.getvalue()
    start = good.index(b"__pickle__.npy") + len("__pickle__.npy") + 128   # inside the pickle
    damaged = [good[:n] for n in (0, 10, len(good) // 2, len(good) - 30, len(good) - 1)]
    damaged += [good[:i] + bytes([good[i] ^ 0x41]) + good[i + 1:] for i in
                (start, start + 7, start + 40)]
    for data in damaged:
        for weights_only in (True, False):
            with pytest.raises(CheckpointError, match="not a valid fastgrad checkpoint"):
                with fg.serialization.safe_globals(NET_GLOBALS):
                    fg.load(io.BytesIO(data), weights_only=weights_only)


_NONE = b"\x80\x02N."


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
@pytest.mark.parametrize("data, tensors, why", [
    (b"\x80\x02.", [], "stack empty"),
    (b"\x80\x02h\x05.", [], "memo index 5"),
    (b"\x80\x02K\x07Q.", [np.ones(1)], "tensor 7"),
    (b"\x80\x02X\x01\x00\x00\x00aQ.", [np.ones(1)], "tensor 'a'"),
    pytest.param(b"P" + b"0" * 5000 + b"1\n.", [np.ones(1)], "tensor '0000",    # int() raised
                 id="persistent-id-of-5001-digits"),                                # ValueError
    pytest.param(b"\x80\x04ccollections\nCounter\n)}K\x01K\x02s\x92.", [],
                 "keyword arguments by name", id="NEWOBJ_EX-int-keyword"),     # raised TypeError
    (b"\x80\x02K\x00Q.", [np.ones(1), np.zeros(2)], "'t1.npy' is listed"),
    (b"\x80\x02U\x03abc.", [], "opcode SHORT_BINSTRING"),
    (b"\x80\x02(K\x01K\x02.", [], "left on the stack"),
    (b"\x80\x02K\x01", [], "unreadable pickle"),
    (b"\x80\x02\xff.", [], "unreadable pickle"),
    (b"\x80\x02t.", [], "MARK"),
    (b"\x80\x02K\x05K\x01K\x02s.", [], "set items of dicts"),
    (b"\x80\x02c__builtin__\nset\n)RK\x01K\x02s.", [], "applies __setitem__ to a set"),
    (b"\x80\x02cfastgrad._core.dtypes\nfrom_name\nX\x03\x00\x00\x00badq\x00\x85R.", [],
     "from_name failed"),
])
def test_crafted_pickles_raise_checkpoint_error_or_refuse(data, tensors, why):
    buf = _crafted(data, tensors)
    with pytest.raises((CheckpointError, pickle.UnpicklingError), match=why):
        fg.load(buf, weights_only=True)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
def test_crafted_manifests_of_the_pickled_kind():
    with pytest.raises(CheckpointError, match="has no __pickle__ member"):
        buf = _crafted(_NONE, [])
        members = _read_members(buf)
        del members["__pickle__.npy"]
        out = io.BytesIO()
        _npz_archive.write(out, {k[:-4]: v for k, v in members.items()})
        out.seek(0)
        fg.load(out)
    for root, why in [({"t": "none"}, "version-2 manifest is not"),
                      ({"t": "pickle", "tensors": {}}, "'tensors' is not a list"),
                      ({"t": "pickle", "tensors": [{"t": "int", "v": 1}]}, "not a tensor node"),
                      ({"t": "pickle", "tensors": [], "x": 1}, "version-2 manifest is not")]:
        with pytest.raises(CheckpointError, match=why):
            fg.load(_crafted(_NONE, [], manifest_root=root))
    with pytest.raises(CheckpointError, match="no known type"):      # version 1 has no pickles
        fg.load(_crafted(_NONE, [], version=1, manifest_root={"t": "pickle", "tensors": []}))
    with pytest.raises(CheckpointError, match="is not referenced"):
        fg.load(_crafted(_NONE, [], extra={"stray": np.zeros(1)}))
    assert fg.load(_crafted(_NONE, [])) is None


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
def test_crafted_calls_of_objects_that_are_not_allowlisted_are_refused():
    """Only allowlisted globals may be called or built: not a tensor, not a dtype object."""
    t = [np.ones(1)]
    for data, why in [(b"\x80\x02K\x00Q)R.", "Trying to call"),         # tensor(*())
                      (b"\x80\x02K\x00Q}b.", "Can only build"),         # BUILD on a tensor
                      (b"\x80\x02K\x00QK\x01a.", "Can only append"),    # tensor.append(1)
                      (b"\x80\x02K\x00Q(K\x01\x90.", "Can only add")]:  # ADDITEMS
        with pytest.raises(pickle.UnpicklingError, match=why):
            fg.load(_crafted(data, t))


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
@pytest.mark.parametrize("protocol", [2, 4])
def test_mutated_pickles_load_or_raise_checkpoint_error_or_refuse(protocol):
    """Random changes to the pickle of a model checkpoint, written with a valid CRC (a crafted
    file): weights_only load gives an object, CheckpointError or UnpicklingError, nothing
    else (no AttributeError from an operation applied to the wrong object, no hang)."""
    net, opt = _trained_net()
    obj = {"m": net, "o": opt.state_dict(), "s": {1, 2}, "c": collections.Counter("ab"),
           "z": 2j, "d": fg.float16, "size": fg.Size([2])}
    buf = io.BytesIO()
    fg.save(obj, buf, pickle_protocol=protocol)
    members = {k[:-4]: v for k, v in _read_members(buf).items()}
    data = members["__pickle__"].tobytes()
    rng = random.Random(protocol)
    outcomes = collections.Counter()
    for _ in range(300):
        d = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i, r = rng.randrange(len(d)), rng.random()
            if r < 0.6:
                d[i] = rng.randrange(256)
            elif r < 0.8:
                del d[i:i + rng.randint(1, 8)]
            else:
                d[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        members["__pickle__"] = np.frombuffer(bytes(d), np.uint8)
        out = io.BytesIO()
        _npz_archive.write(out, members)
        out.seek(0)
        try:
            with fg.serialization.safe_globals(NET_GLOBALS):
                fg.load(out)
            outcomes["loaded"] += 1
        except (CheckpointError, pickle.UnpicklingError) as e:
            outcomes[type(e).__name__] += 1
    assert outcomes["CheckpointError"] > 100 and outcomes["UnpicklingError"] > 10


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_tuples_of_four_or_more_and_lists_built_at_a_mark_load_with_weights_only(protocol):
    """Tuples longer than 3 (and, in protocols 0/1, every list and tuple) are built from the
    items above a MARK: the container must land on the stack below it."""
    if REFERENCE and protocol > 3:
        pytest.skip("PyTorch's weights-only unpickler reads protocols 2 and 3")
    obj = {"s": {3}, "t": (1, 2, 3, 4, 5), "l": [1, [2, (3, 4, 5, fg.ones(2))]], "e": ()}
    buf = io.BytesIO()
    fg.save(obj, buf, pickle_protocol=protocol)
    buf.seek(0)
    r = fg.load(buf)
    assert r["s"] == {3} and r["t"] == (1, 2, 3, 4, 5) and r["e"] == ()
    assert r["l"][0] == 1 and r["l"][1][1][:3] == (3, 4, 5)
    np.testing.assert_array_equal(r["l"][1][1][3].numpy(), [1.0, 1.0])


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
def test_marked_tuple_and_list_opcodes_of_protocol_0_load_with_weights_only():
    data = b"((I1\nI2\nI3\nI4\nt(I5\nlp0\n(I6\nttp1\n."         # ((1, 2, 3, 4), [5], (6,))
    assert fg.load(_crafted(data, [])) == ((1, 2, 3, 4), [5], (6,))


_COUNTER = b"\x80\x02ccollections\nCounter\n)R"


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
@pytest.mark.parametrize("data, why", [
    (_COUNTER + b"K\x00Qb.", "needs a dict of its state"),            # BUILD(tensor)
    (_COUNTER + b"K\x00QN\x86b.", "needs a dict of its state"),       # BUILD((tensor, None))
    (_COUNTER + b"NK\x00Q\x86b.", "needs a dict of its state"),       # BUILD((None, tensor))
    (_COUNTER + b"K\x05b.", "needs a dict of its state"),             # BUILD(5)
])
def test_build_state_that_is_not_a_dict_raises_checkpoint_error(data, why):
    """A tensor as BUILD state once raised the tensor's own RuntimeError (its truth value)."""
    with pytest.raises(CheckpointError, match=why):
        fg.load(_crafted(data, [np.arange(6, dtype=np.float32)]))


def _call(func, args):
    return b"\x80\x02c" + func + b"\n" + args + b"R."


def _encode_call(inner, codec):
    return (b"c_codecs\nencode\n(" + inner + b"X" + len(codec).to_bytes(4, "little") + codec
            + b"tR")


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
@pytest.mark.parametrize("data", [
    _call(b"__builtin__\nbytearray", b"J\x00\x00\x00\x40\x85"),       # bytearray(2**30)
    _call(b"__builtin__\nbytearray", b"\x8a\x06\x00\x00\x00\x00\x00\x01\x85"),   # 2**40
    # 30 chained hex encodings would turn 1 byte into 2**30
    b"\x80\x02" + functools.reduce(_encode_call, [b"hex"] * 30,
                                   _encode_call(b"X\x01\x00\x00\x00a", b"latin1")) + b".",
    b"\x80\x02" + _encode_call(b"X\x01\x00\x00\x00a", b"idna") + b".",   # imports a codec
    _call(b"__builtin__\nbytearray", b"K\x01X\x01\x00\x00\x00a\x86"),
], ids=["bytearray-1GiB", "bytearray-1TiB", "hex-chain", "codec-lookup", "bytearray-int-str"])
def test_default_globals_take_only_the_arguments_pickle_writes(data):
    """bytearray and _codecs.encode are allowed for what pickle writes for bytes and
    bytearray objects; other arguments could allocate any amount of memory from a few bytes."""
    with pytest.raises(pickle.UnpicklingError, match="which pickle never writes for it"):
        fg.load(_crafted(data, []))
    for func in (b"_codecs\nencode", b"__builtin__\nbytearray"):      # f("a", tensor)
        with pytest.raises(pickle.UnpicklingError, match="which pickle never writes for it"):
            fg.load(_crafted(_call(func, b"X\x01\x00\x00\x00aK\x00Q\x86"), [np.ones(3)]))
    for good in (b"\x80\x02" + _encode_call(b"X\x02\x00\x00\x00ab", b"latin1") + b".",
                 _call(b"__builtin__\nbytearray", b"X\x01\x00\x00\x00aX\x07\x00\x00\x00latin-1"
                       b"\x86"),
                 _call(b"__builtin__\nbytearray", b"C\x02ab\x85"),
                 _call(b"__builtin__\nbytearray", b")")):
        assert fg.load(_crafted(good, [])) in (b"ab", bytearray(b"a"), bytearray(b"ab"),
                                                bytearray())


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own file format")
@pytest.mark.parametrize("depth", [1001, 200_000])
def test_deeply_nested_tuple_as_a_key_raises_instead_of_crashing(depth):
    """Hashing a tuple recurses in C once per level: 200,000 levels used as a dict key
    overflowed the C stack (a segfault). 1000 levels load."""
    nest = b")" + b"\x85" * (depth - 1)                                 # ((...(),),)
    with pytest.raises(CheckpointError, match="nests tuples deeper than 1000"):
        fg.load(_crafted(b"\x80\x02}" + nest + b"Ns.", []))
    sized = b"cfastgrad._core.size\nSize\n" + b"(" + nest + b"tR"      # inside a Size
    with pytest.raises(CheckpointError, match="nests tuples deeper than 1000"):
        fg.load(_crafted(b"\x80\x02(" + sized + b"\x91.", []))
    r = fg.load(_crafted(b"\x80\x02}" + b")" + b"\x85" * 999 + b"Ns.", []))
    (key,) = r
    for _ in range(999):
        (key,) = key
    assert key == ()

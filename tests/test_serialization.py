"""fastgrad.save / fastgrad.load: round trips of tensors, state dicts and optimizer-style nested
containers; the format is a pickle-free .npz with a JSON manifest."""
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
    with pytest.raises(RuntimeError, match="not a fastgrad file"):
        fg.load(path)


@pytest.mark.skipif(REFERENCE, reason="torch pickles arbitrary objects")
def test_save_rejects_unsupported():
    with pytest.raises(TypeError, match="cannot save"):
        fg.save({"f": lambda: 0}, io.BytesIO())

"""nn modules: registration, traversal, state_dict, modes, dtype, reprs, and each layer against
PyTorch (same weights copied in) and float64 finite differences."""
import copy

import numpy as np
import pytest

from _backend import fg
from _fd import check_grad

nn = fg.nn


def _copy_into(mf, mt, torch):
    """Copy torch module mt's state into fastgrad module mf."""
    mf.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in mt.state_dict().items()})


def _mlp(lib):
    return lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.ReLU(), lib.nn.Linear(4, 2))


# --- Module machinery ----------------------------------------------------------------------------

def test_registration_and_traversal():
    m = _mlp(fg)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(list(m.parameters())) == 4
    assert [n for n, _ in m.named_children()] == ["0", "1", "2"]
    assert [n for n, _ in m.named_modules()] == ["", "0", "1", "2"]
    assert all(isinstance(p, nn.Parameter) and p.is_leaf and p.requires_grad
               for p in m.parameters())
    shared = nn.Linear(2, 2)
    s = nn.Sequential(shared, shared)
    assert len(list(s.parameters())) == 2


def test_buffers_and_state_dict_keys():
    bn = nn.BatchNorm1d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var",
                                                  "num_batches_tracked"]
    m = nn.Module()
    m.register_buffer("tmp", fg.zeros(2), persistent=False)
    assert "tmp" not in m.state_dict() and len(list(m.buffers())) == 1


def test_setattr_errors():
    lin = nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"cannot assign 'torch.FloatTensor' as parameter "
                                        r"'weight' \(torch.nn.Parameter or None expected\)"):
        lin.weight = fg.zeros(2, 3)
    with pytest.raises(TypeError, match="object to parameter 'w'"):
        lin.register_parameter("w", fg.zeros(2))


def test_nonleaf_parameter_rejected():
    x = fg.zeros(2, requires_grad=True) * 2
    p = nn.Parameter(x)
    assert p.is_leaf and p.requires_grad       # Parameter() detaches, as torch does
    lin = nn.Linear(2, 2)
    q = nn.Parameter(fg.zeros(2))
    object.__setattr__  # noqa: B018
    # a Parameter that became non-leaf cannot be registered
    y = q * 1
    with pytest.raises((TypeError, ValueError)):
        lin.register_parameter("bad", y)


def test_load_state_dict_strict_and_missing():
    lin = nn.Linear(3, 2)
    assert repr(lin.load_state_dict(lin.state_dict())) == "<All keys matched successfully>"
    with pytest.raises(RuntimeError) as e:
        lin.load_state_dict({"weight": fg.zeros(3, 3), "foo": fg.zeros(1)})
    msg = str(e.value)
    assert msg.startswith("Error(s) in loading state_dict for Linear:")
    assert 'Missing key(s) in state_dict: "bias".' in msg
    assert 'Unexpected key(s) in state_dict: "foo".' in msg
    assert ("size mismatch for weight: copying a param with shape torch.Size([3, 3]) from "
            "checkpoint, the shape in current model is torch.Size([2, 3]).") in msg
    r = lin.load_state_dict({"weight": fg.ones(2, 3), "foo": fg.zeros(1)}, strict=False)
    assert r.missing_keys == ["bias"] and r.unexpected_keys == ["foo"]
    np.testing.assert_array_equal(lin.weight.detach().numpy(), np.ones((2, 3)))


def test_state_dict_round_trip_shares_nothing_after_load():
    a, b = _mlp(fg), _mlp(fg)
    b.load_state_dict(a.state_dict())
    x = fg.randn(5, 3)
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())
    w = b[0].weight
    b.load_state_dict(_mlp(fg).state_dict())
    assert b[0].weight is w                    # loaded in place


def test_train_eval_zero_grad_apply():
    m = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    assert m.training and m[1].training
    m.eval()
    assert not m.training and not m[1].training
    x = fg.randn(4, 3)
    np.testing.assert_array_equal(m(x).detach().numpy(), m[0](x).detach().numpy())
    m.train()
    m(x).sum().backward()
    assert m[0].weight.grad is not None
    m.zero_grad()
    assert m[0].weight.grad is None
    m(x).sum().backward()
    m.zero_grad(set_to_none=False)
    assert float(m[0].weight.grad.abs().sum()) == 0.0
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "Dropout", "Sequential"]


def test_to_double_keeps_parameter_identity():
    lin = nn.Linear(3, 2)
    w = lin.weight
    lin.double()
    assert lin.weight is w and w.dtype == fg.float64 and isinstance(w, nn.Parameter)
    assert lin(fg.randn(2, 3, dtype=fg.float64)).dtype == fg.float64
    lin.to(fg.float32)
    assert lin.bias.dtype == fg.float32


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    h = lin.register_forward_hook(lambda mod, args, out: calls.append(out.shape))
    lin(fg.zeros(1, 2))
    h.remove()
    lin(fg.zeros(1, 2))
    assert len(calls) == 1


def test_forward_pre_hooks_and_hook_replacements():
    """Pre-hooks may replace the args (a non-tuple result becomes a 1-tuple), forward hooks the
    output; hooks see the replaced args; keyword arguments reach forward; removal works."""
    class Add(nn.Module):
        def forward(self, x, y=0, *, scale=1):
            return (x + y) * scale

    m = Add()
    seen = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 10,))
    h2 = m.register_forward_pre_hook(lambda mod, args: args[0] + 1)
    h3 = m.register_forward_hook(lambda mod, args, out: seen.append((args[0].item(), out.item())))
    h4 = m.register_forward_hook(lambda mod, args, out: out * 2)
    x = fg.tensor(1.0)
    assert m(x, scale=3).item() == ((1 * 10 + 1) * 3) * 2
    assert seen == [(11.0, 33.0)]
    for h in (h1, h2, h3, h4):
        h.remove()
    assert m(x, fg.tensor(2.0), scale=2).item() == 6
    assert m(x).item() == 1 and seen == [(11.0, 33.0)]
    m.forward = lambda x: x - 1                 # an instance attribute overrides forward
    assert m(x).item() == 0


def test_module_pickles_with_compiled_call():
    import pickle
    m = _mlp(fg)
    c = pickle.loads(pickle.dumps(m))
    x = fg.randn(5, 3)
    np.testing.assert_array_equal(c(x).detach().numpy(), m(x).detach().numpy())


def test_containers():
    s = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    s.append(nn.Tanh())
    assert len(s) == 3 and isinstance(s[-1], nn.Tanh)
    assert isinstance(s[1:], nn.Sequential) and len(s[1:]) == 2
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(ml.parameters())) == 6 and len(ml[:2]) == 2
    md = nn.ModuleDict({"a": nn.ReLU(), "b": nn.Linear(1, 1)})
    assert list(md.keys()) == ["a", "b"] and len(list(md.parameters())) == 2
    del s[0]
    assert [n for n, _ in s.named_children()] == ["0", "1"]


def test_deepcopy():
    m = _mlp(fg)
    c = copy.deepcopy(m)
    assert c[0].weight is not m[0].weight
    np.testing.assert_array_equal(c[0].weight.detach().numpy(), m[0].weight.detach().numpy())
    assert isinstance(c[0].weight, nn.Parameter)


# --- reprs (exactly torch's) ---------------------------------------------------------------------

REPRS = [
    (lambda L: L.nn.Linear(3, 2), "Linear(in_features=3, out_features=2, bias=True)"),
    (lambda L: L.nn.Linear(3, 2, bias=False), None), (lambda L: L.nn.Identity(), None),
    (lambda L: L.nn.Flatten(), None), (lambda L: L.nn.Dropout(0.2), None),
    (lambda L: L.nn.Embedding(10, 3, padding_idx=0), None),
    (lambda L: L.nn.LayerNorm(4), None), (lambda L: L.nn.LayerNorm((2, 3), elementwise_affine=False), None),
    (lambda L: L.nn.BatchNorm1d(4), None), (lambda L: L.nn.BatchNorm1d(4, affine=False), None),
    (lambda L: L.nn.Softmax(dim=1), None), (lambda L: L.nn.LogSoftmax(1), None),
    (lambda L: L.nn.Softmax(), None), (lambda L: L.nn.ReLU(inplace=True), None),
    (_mlp, None), (lambda L: L.nn.Sequential(), None),
    (lambda L: L.nn.ModuleList([L.nn.Linear(2, 2), L.nn.Linear(2, 2), L.nn.ReLU()]), None),
    (lambda L: L.nn.ModuleDict({"a": L.nn.ReLU(), "b": L.nn.Sequential(L.nn.Tanh())}), None),
]


@pytest.mark.parametrize("make, text", REPRS)
def test_repr_matches_torch(make, text):
    if text is not None:
        assert repr(make(fg)) == text
    torch = pytest.importorskip("torch")
    assert repr(make(fg)) == repr(make(torch))


def test_parameter_repr():
    p = nn.Parameter(fg.ones(2))
    assert repr(p) == "Parameter containing:\ntensor([1., 1.], requires_grad=True)"
    assert repr(nn.Parameter(fg.ones(2), requires_grad=False)) == \
        "Parameter containing:\ntensor([1., 1.])"


# --- layers vs torch ------------------------------------------------------------------------------

LAYERS = [
    (lambda L: L.nn.Linear(5, 3), (4, 5)),
    (lambda L: L.nn.Sequential(L.nn.Linear(5, 8), L.nn.GELU(), L.nn.Linear(8, 2)), (4, 5)),
    (lambda L: L.nn.LayerNorm(5), (4, 5)),
    (lambda L: L.nn.LayerNorm((3, 5)), (2, 3, 5)),
    (lambda L: L.nn.BatchNorm1d(5), (6, 5)),
    (lambda L: L.nn.BatchNorm1d(3), (4, 3, 2)),
    (lambda L: L.nn.Softmax(dim=1), (4, 5)),
    (lambda L: L.nn.LogSoftmax(dim=-1), (4, 5)),
    (lambda L: L.nn.Flatten(), (2, 3, 4)),
]


@pytest.mark.parametrize("make, shape", LAYERS)
@pytest.mark.parametrize("train", [True, False])
def test_layer_vs_torch(rng, make, shape, train):
    torch = pytest.importorskip("torch")
    mt, mf = make(torch), make(fg)
    _copy_into(mf, mt, torch)
    mt.train(train)
    mf.train(train)
    x = rng.standard_normal(shape).astype(np.float32)
    xt, xf = torch.tensor(x, requires_grad=True), fg.tensor(x, requires_grad=True)
    yt, yf = mt(xt), mf(xf)
    np.testing.assert_allclose(yf.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(g))
    yf.backward(fg.tensor(g))
    np.testing.assert_allclose(xf.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    pt = dict(mt.named_parameters())
    for name, p in mf.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), pt[name].grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    for k, v in mt.state_dict().items():          # running statistics
        np.testing.assert_allclose(mf.state_dict()[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=k)


def test_embedding_vs_torch(rng):
    torch = pytest.importorskip("torch")
    mt, mf = torch.nn.Embedding(6, 3, padding_idx=1), nn.Embedding(6, 3, padding_idx=1)
    _copy_into(mf, mt, torch)
    idx = np.array([[0, 1, 5], [5, 2, 2]])
    yt, yf = mt(torch.tensor(idx)), mf(fg.tensor(idx))
    np.testing.assert_allclose(yf.detach().numpy(), yt.detach().numpy())
    yt.sum().backward()
    yf.sum().backward()
    np.testing.assert_allclose(mf.weight.grad.numpy(), mt.weight.grad.numpy())


def test_linear_default_init_bounds():
    fg.manual_seed(0)
    lin = nn.Linear(16, 8)
    bound = 1 / np.sqrt(16)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.8 * bound       # uniform over the whole range


def test_dropout_train_scaling():
    fg.manual_seed(1)
    x = fg.ones(10000)
    y = nn.Dropout(0.25)(x).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.03
    d = nn.Dropout(0.25).eval()
    assert d(x) is x


def test_batchnorm_eval_uses_running_stats(rng):
    bn = nn.BatchNorm1d(2)
    x = fg.tensor((rng.standard_normal((8, 2)) * 3 + 1).astype(np.float32))
    bn(x)
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    rm, rv = bn.running_mean.numpy(), bn.running_var.numpy()
    expected = (x.numpy() - rm) / np.sqrt(rv + 1e-5)
    np.testing.assert_allclose(bn(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


# --- finite differences ---------------------------------------------------------------------------

def test_layer_norm_fd(rng):
    F = nn.functional
    check_grad(lambda x, w, b: F.layer_norm(x, (4,), w, b),
               [rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(4)])


def test_batch_norm_fd(rng):
    F = nn.functional
    check_grad(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
               [rng.standard_normal((5, 3)), rng.standard_normal(3), rng.standard_normal(3)])


def test_linear_fd(rng):
    F = nn.functional
    check_grad(lambda x, w, b: F.linear(x, w, b),
               [rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(2)])


def test_training_step_reduces_loss(rng):
    fg.manual_seed(0)
    m = _mlp(fg)
    x = fg.tensor(rng.standard_normal((16, 3)).astype(np.float32))
    y = fg.tensor(rng.integers(0, 2, 16))
    crit = nn.CrossEntropyLoss()
    losses = []
    for _ in range(30):
        m.zero_grad()
        loss = crit(m(x), y)
        loss.backward()
        with fg.no_grad():
            for p in m.parameters():
                p -= 0.5 * p.grad
        losses.append(loss.item())
    assert losses[-1] < losses[0]

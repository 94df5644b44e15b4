"""A model trained in PyTorch, saved with `torch.save`, loads into the same fastgrad model.

The user's path: `torch.save(model.state_dict(), path)` in a PyTorch program, then in a
fastgrad one `torch.load(path)` (PyTorch's) and `.numpy()` on each entry, and
`load_state_dict` of those arrays. Parameter names, shapes and layouts must match PyTorch's
for the outputs to agree -- a transposed gate block or a misnamed bias fails here."""
import numpy as np
import pytest

import fastgrad as fg

torch = pytest.importorskip("torch")


def _round_trip(tmp_path, tmodel, fmodel):
    path = tmp_path / "model.pt"
    torch.save(tmodel.state_dict(), path)
    loaded = torch.load(path, weights_only=True)
    fmodel.load_state_dict({k: fg.tensor(v.numpy()) for k, v in loaded.items()})
    assert set(fmodel.state_dict()) == set(loaded)


def _models(name):
    torch.manual_seed(0)
    if name == "conv":
        def build(nn):
            return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.MaxPool2d(2), nn.Conv2d(8, 4, 3, groups=2, dilation=2))
        shape = (2, 3, 12, 12)
    elif name == "lstm":
        def build(nn):
            return nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True)
        shape = (3, 6, 5)
    else:
        def build(nn):
            return nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0,
                                              batch_first=True)
        shape = (2, 5, 16)
    tmodel = build(torch.nn)
    with torch.no_grad():                 # move running statistics off their defaults
        tmodel.train()
        tmodel(torch.randn(shape))
    tmodel.eval()
    return tmodel, build(fg.nn).eval(), shape


@pytest.mark.parametrize("name", ["conv", "lstm", "transformer"])
def test_torch_saved_state_dict_gives_the_same_outputs(tmp_path, name):
    tmodel, fmodel, shape = _models(name)
    _round_trip(tmp_path, tmodel, fmodel)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    ty = tmodel(torch.from_numpy(x))
    fy = fmodel(fg.tensor(x))
    if name == "lstm":
        ty, fy = ty[0], fy[0]
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_a_wrong_shape_in_a_torch_state_dict_is_refused(tmp_path):
    tmodel = torch.nn.LSTM(5, 7)
    fmodel = fg.nn.LSTM(5, 8)
    path = tmp_path / "m.pt"
    torch.save(tmodel.state_dict(), path)
    with pytest.raises(RuntimeError, match="size mismatch"):
        fmodel.load_state_dict({k: fg.tensor(v.numpy())
                                for k, v in torch.load(path, weights_only=True).items()})

"""nn.ParameterList, nn.ParameterDict and nn.Unflatten: registration, state_dict names, reprs
identical to PyTorch's, conversion of plain tensors, and PyTorch's errors."""
from collections import OrderedDict

import numpy as np
import pytest

from _backend import fg

nn = fg.nn


def test_parameter_list_registers_and_converts():
    pl = nn.ParameterList([nn.Parameter(fg.zeros(2)), fg.ones(3)])
    assert len(pl) == 2 and isinstance(pl[1], nn.Parameter) and pl[1].requires_grad
    pl.append(fg.zeros(1, dtype=fg.float64))
    pl += [fg.ones(4)]
    pl.append("not a tensor")
    assert len(pl) == 5 and pl[4] == "not a tensor" and pl[-1] == "not a tensor"
    assert list(pl.state_dict()) == ["0", "1", "2", "3"]
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2", "3"]
    pl[0] = fg.full((2,), 7.0)
    assert isinstance(pl[0], nn.Parameter) and float(pl[0][0]) == 7.0
    sliced = pl[1:3]
    assert type(sliced) is nn.ParameterList and len(sliced) == 2 and sliced[0] is pl[1]
    assert [p.shape[0] for p in list(pl)[:4]] == [2, 3, 1, 4]
    with pytest.raises(IndexError, match="index 9 is out of range"):
        pl[9]
    with pytest.raises(TypeError, match="should be called with an iterable, but got int"):
        nn.ParameterList(3)
    with pytest.raises(RuntimeError, match="ParameterList should not be called"):
        pl(1)


def test_parameter_list_repr():
    pl = nn.ParameterList([nn.Parameter(fg.zeros(2)), nn.Parameter(fg.zeros(3, dtype=fg.float64))])
    pl.append(3)
    assert repr(pl) == ("ParameterList(\n"
                        "    (0): Parameter containing: [torch.float32 of size 2]\n"
                        "    (1): Parameter containing: [torch.float64 of size 3]\n"
                        "    (2): Object of type: int\n)")
    one = nn.ParameterList([nn.Parameter(fg.zeros(2, 3))])
    assert repr(one) == "ParameterList(  (0): Parameter containing: [torch.float32 of size 2x3])"
    assert repr(nn.ParameterList()) == "ParameterList()"


def test_parameter_dict_registers_orders_and_converts():
    pd = nn.ParameterDict({"b": fg.ones(1), "a": nn.Parameter(fg.zeros(2))})
    assert list(pd.keys()) == ["a", "b"]                      # a plain dict: sorted, as torch
    pd = nn.ParameterDict(OrderedDict([("b", fg.ones(1)), ("a", fg.zeros(2))]))
    assert list(pd) == ["b", "a"] and isinstance(pd["b"], nn.Parameter)
    pd["c"] = fg.zeros(3)
    pd.update([("d", fg.ones(2))])
    assert list(pd.state_dict()) == ["b", "a", "c", "d"]
    assert "c" in pd and len(pd) == 4 and pd.get("zz", 5) == 5
    assert tuple(pd.pop("a").shape) == (2,) and list(pd.keys()) == ["b", "c", "d"]
    assert pd.popitem()[0] == "d" and list(reversed(pd)) == ["c", "b"]
    assert [k for k, _ in pd.items()] == ["b", "c"] and len(list(pd.values())) == 2
    merged = pd | {"z": fg.ones(1)}
    assert list(merged) == ["b", "c", "z"] and list(pd) == ["b", "c"]
    assert pd.setdefault("e", fg.ones(1)) is pd["e"]
    pd.clear()
    assert len(pd) == 0 and list(pd.parameters()) == []


def test_parameter_dict_errors_and_repr():
    pd = nn.ParameterDict({"w": nn.Parameter(fg.zeros(2, 3))})
    assert repr(pd) == "ParameterDict(  (w): Parameter containing: [torch.FloatTensor of size 2x3])"
    pd["v"] = fg.zeros(1, dtype=fg.float64)
    assert repr(pd) == ("ParameterDict(\n"
                        "    (w): Parameter containing: [torch.FloatTensor of size 2x3]\n"
                        "    (v): Parameter containing: [torch.DoubleTensor of size 1]\n)")
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        pd["missing"]
    with pytest.raises(TypeError, match="not a string"):
        nn.ParameterDict([(1, fg.ones(1))])
    with pytest.raises(ValueError, match="has length 1; 2 is required"):
        nn.ParameterDict([("a",)])
    with pytest.raises(TypeError):
        nn.ParameterDict(3)
    with pytest.raises(KeyError):
        nn.ParameterDict().popitem()


def test_containers_inside_a_model_train():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.scales = nn.ParameterList([fg.ones(3), fg.full((3,), 2.0)])
            self.shifts = nn.ParameterDict({"s": fg.zeros(3)})

        def forward(self, x):
            return x * self.scales[0] * self.scales[1] + self.shifts["s"]

    m = Model()
    assert list(m.state_dict()) == ["scales.0", "scales.1", "shifts.s"]
    m(fg.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(m.scales[0].grad.numpy(), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(m.shifts["s"].grad.numpy(), [1.0, 1.0, 1.0])
    m2 = Model()
    m2.load_state_dict(m.state_dict())
    m.double()
    assert m.scales[1].dtype == fg.float64 and m.shifts["s"].dtype == fg.float64


def test_unflatten_module():
    x = fg.arange(20.0).reshape(2, 10)
    m = nn.Unflatten(1, (2, 5))
    assert tuple(m(x).shape) == (2, 2, 5) and repr(m) == "Unflatten(dim=1, unflattened_size=(2, 5))"
    assert tuple(nn.Unflatten(-1, [5, -1])(x).shape) == (2, 5, 2)
    assert repr(nn.Unflatten(1, fg.Size([2, 5]))) == \
        "Unflatten(dim=1, unflattened_size=torch.Size([2, 5]))"
    with pytest.raises(TypeError, match="must be a tuple of ints, but found type int"):
        nn.Unflatten(1, 2)
    with pytest.raises(TypeError, match="found element of type float at pos 0"):
        nn.Unflatten(1, (2.0, 5))
    y = fg.arange(20.0, requires_grad=True).reshape(2, 10)
    (m(y) * 2).sum().backward()

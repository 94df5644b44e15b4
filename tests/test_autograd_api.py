"""autograd.grad / backward(inputs=...), tensor and node hooks, retain_grad, graph helpers."""
import warnings

import numpy as np
import pytest

from _backend import fg, REFERENCE


def _x(*vals):
    return fg.tensor(list(vals), requires_grad=True)


def test_grad_leaves_dot_grad_untouched_and_unused_input_errors():
    x, y = _x(1.0, 2.0), _x(3.0)
    (gx,) = fg.autograd.grad((x * x).sum(), x)
    np.testing.assert_allclose(gx.numpy(), [2.0, 4.0])
    assert x.grad is None
    with pytest.raises(RuntimeError, match="index 1 appears to not have been used in the graph"):
        fg.autograd.grad((x * 2).sum(), (x, y))
    gx, gy = fg.autograd.grad((x * 2).sum(), (x, y), allow_unused=True)
    assert gy is None
    gx, gy = fg.autograd.grad((x * 2).sum(), (x, y), materialize_grads=True)
    np.testing.assert_allclose(gy.numpy(), [0.0])


def test_backward_inputs_accumulates_only_there():
    x, y = _x(1.0, 2.0), _x(3.0, 4.0)
    (x * y).sum().backward(inputs=[x])
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    assert y.grad is None
    fg.autograd.backward([(x * y).sum()], inputs=[y])
    np.testing.assert_allclose(y.grad.numpy(), [1.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])


def test_backward_inputs_non_leaf():
    x = _x(1.0, 2.0)
    h = x * 2
    (h * h).sum().backward(inputs=[h])
    np.testing.assert_allclose(h.grad.numpy(), [4.0, 8.0])
    assert x.grad is None


def test_hook_doubles_leaf_gradient_and_is_removed():
    x = _x(1.0, 2.0)
    h = x.register_hook(lambda g: g * 2)
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])
    h.remove()
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_hook_replaces_non_leaf_gradient_upstream():
    x = _x(1.0, 2.0)
    h = x * 1
    h.register_hook(lambda g: fg.ones_like(g) * 10)
    (h * h).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [10.0, 10.0])


def test_hook_observes_without_changing():
    seen = []
    x = _x(1.0, 2.0)
    h = x.exp()
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    (h * 2).sum().backward()
    np.testing.assert_allclose(seen[0], [2.0, 2.0])
    np.testing.assert_allclose(seen[1], 2 * np.exp([1.0, 2.0]), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), seen[1])


def test_retain_grad_and_post_accumulate_hook():
    x = _x(1.0, 2.0)
    h = x * 3
    h.retain_grad()
    calls = []
    x.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.numpy().copy()))
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(calls[0], [18.0, 36.0])


def test_node_hooks():
    x = _x(1.0, 2.0)
    y = x * 2
    got = {}
    y.grad_fn.register_prehook(lambda go: got.update(pre=go[0].numpy().copy()))
    y.grad_fn.register_hook(lambda gi, go: got.update(post=gi[0].numpy().copy()))
    y.sum().backward()
    np.testing.assert_allclose(got["pre"], [1.0, 1.0])
    np.testing.assert_allclose(got["post"], [2.0, 2.0])


def test_node_hook_replaces_and_bad_return_is_a_type_error():
    x = _x(1.0, 2.0)
    y = x * 2
    y.grad_fn.register_hook(lambda gi, go: (gi[0] * 5, None))
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [10.0, 10.0])
    z = x * 2
    z.grad_fn.register_hook(lambda gi, go: np.ones(2))
    with pytest.raises(TypeError):
        z.sum().backward()


def test_graph_helpers():
    x = _x(1.0)
    y = (x * 2).exp().sum()
    assert isinstance(y.grad_fn, fg.autograd.graph.Node)
    edge = fg.autograd.graph.get_gradient_edge(y)
    assert edge.node is y.grad_fn and edge.output_nr == 0
    names, stack = [], [y.grad_fn]
    while stack:                         # the walk PyTorch documents, over next_functions
        n = stack.pop()
        names.append(n.name())
        stack.extend(f for f, _ in n.next_functions if f is not None)
    assert names == ["SumBackward0", "ExpBackward0", "MulBackward0",
                     "torch::autograd::AccumulateGrad" if REFERENCE else "AccumulateGrad"]


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own walkers and viz")
def test_walk_and_to_dot():
    from fastgrad.autograd.graph import walk, leaves
    from fastgrad.viz import to_dot
    x, w = _x(1.0, 2.0), _x(3.0, 4.0)
    y = (x * w).tanh().sum()
    assert [n.name() for n in walk(y)][:3] == ["SumBackward0", "TanhBackward0", "MulBackward0"]
    assert {id(t) for t in leaves(y)} == {id(x), id(w)}
    dot = to_dot(y, params={"w": w})
    assert dot.startswith("digraph") and "TanhBackward0" in dot and "MulBackward0" in dot
    assert '"w\\n[2] requires_grad"' in dot and dot.count("requires_grad") == 2
    assert dot.count("->") == 5


@pytest.mark.skipif(REFERENCE, reason="fastgrad's viz")
def test_render_without_graphviz_says_what_to_install(tmp_path):
    pytest.importorskip("fastgrad")
    try:
        import graphviz  # noqa: F401
        pytest.skip("graphviz installed")
    except ImportError:
        pass
    from fastgrad.viz import render
    with pytest.raises(ImportError, match="pip install graphviz"):
        render((_x(1.0) * 2).sum(), tmp_path / "g")


def test_inference_mode_records_nothing():
    x = _x(1.0, 2.0)
    with fg.inference_mode():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert fg.autograd.inference_mode is fg.inference_mode


def test_exports():
    ag = fg.autograd
    for name in ["Function", "grad", "backward", "functional", "gradcheck", "gradgradcheck",
                 "detect_anomaly", "set_detect_anomaly", "graph"]:
        assert hasattr(ag, name), name
    from importlib import import_module
    mod = import_module(fg.__name__ + ".autograd.gradcheck")
    assert issubclass(mod.GradcheckError, RuntimeError)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert callable(ag.functional.jacobian)

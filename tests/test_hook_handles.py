"""Hook handles: every register_*hook returns one type, utils.hooks.RemovableHandle, with
PyTorch's behaviour (remove() once or twice, a context manager, a unique id, a handle per
registration even of the same function, hooks kept in registration order)."""
import pickle

import pytest

from _backend import fg

RemovableHandle = fg.utils.hooks.RemovableHandle


def _every_registration():
    """(what, handle) for each register_*hook of tensors, nodes, modules and optimizers."""
    x = fg.ones(2, requires_grad=True)
    y = x * 2
    lin = fg.nn.Linear(1, 1)
    opt = fg.optim.SGD(lin.parameters(), lr=0.1)
    return [
        ("leaf tensor hook", x.register_hook(lambda g: None)),
        ("non-leaf tensor hook", y.register_hook(lambda g: None)),
        ("post-accumulate hook", x.register_post_accumulate_grad_hook(lambda t: None)),
        ("node hook", y.grad_fn.register_hook(lambda gi, go: None)),
        ("node prehook", y.grad_fn.register_prehook(lambda go: None)),
        ("forward hook", lin.register_forward_hook(lambda m, a, o: None)),
        ("forward pre-hook", lin.register_forward_pre_hook(lambda m, a: None)),
        ("step pre-hook", opt.register_step_pre_hook(lambda o, a, k: None)),
        ("step post-hook", opt.register_step_post_hook(lambda o, a, k: None)),
        ("multi grad hook", fg.autograd.graph.register_multi_grad_hook([x, y], lambda gs: None)),
    ]


def test_every_register_hook_returns_the_one_handle_type():
    for what, handle in _every_registration():
        assert isinstance(handle, RemovableHandle), what
        handle.remove()
        handle.remove()                          # a second remove does nothing


def test_ids_are_unique_and_increasing():
    ids = [h.id for _, h in _every_registration() if hasattr(h, "id")]
    assert len(ids) >= 9 and ids == sorted(ids) and len(set(ids)) == len(ids)


def _grad_through_hooks(hooks, remove=()):
    """x.grad of sum(x) with `hooks` registered on x in order, after removing the handles at
    the positions in `remove`."""
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    handles = [x.register_hook(h) for h in hooks]
    for i in remove:
        handles[i].remove()
    x.sum().backward()
    return x.grad.tolist()


def test_same_function_twice_removes_the_registration_the_handle_names():
    """double, inc, double: removing the second registration of double leaves double then inc
    (2g + 1 = 3), not inc then double (2(g + 1) = 4): hooks keep their order. (A handle that
    removed the first equal hook from a list gave 4.)"""
    def double(g):
        return g * 2

    def inc(g):
        return g + 1

    assert _grad_through_hooks([double, inc, double]) == [6.0, 6.0]     # ((1*2)+1)*2
    assert _grad_through_hooks([double, inc, double], remove=[2]) == [3.0, 3.0]
    assert _grad_through_hooks([double, inc, double], remove=[0]) == [4.0, 4.0]
    assert _grad_through_hooks([double, inc, double], remove=[0, 2]) == [2.0, 2.0]


def test_node_prehooks_keep_their_order_after_a_removal():
    def double(go):
        return (go[0] * 2,)

    def inc(go):
        return (go[0] + 1,)

    x = fg.tensor([1.0], requires_grad=True)
    y = x * 3
    handles = [y.grad_fn.register_prehook(h) for h in (double, inc, double)]
    handles[2].remove()
    y.sum().backward()
    assert x.grad.tolist() == [9.0]              # (1*2 + 1) * 3


def test_handle_as_context_manager_removes_on_exit():
    lin = fg.nn.Linear(2, 2)
    calls = []
    with lin.register_forward_hook(lambda m, a, o: calls.append(1)) as h:
        lin(fg.zeros(1, 2))
    assert isinstance(h, RemovableHandle)
    lin(fg.zeros(1, 2))
    assert calls == [1]


def test_optimizer_step_hooks_removed_by_handle():
    w = fg.nn.Parameter(fg.ones(1))
    opt = fg.optim.SGD([w], lr=0.5)
    seen = []
    h1 = opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    h2 = opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    w.grad = fg.ones(1)
    opt.step()
    h1.remove()
    h2.remove()
    opt.step()
    assert seen == ["pre", "post"] and w.item() == 0.0


def test_multi_grad_hook_handle_removes_every_tensors_hook():
    x = fg.tensor([1.0], requires_grad=True)
    z = fg.tensor([2.0], requires_grad=True)
    calls = []
    h = fg.autograd.graph.register_multi_grad_hook([x, z], lambda gs: calls.append(len(gs)))
    (x * z).sum().backward()
    h.remove()
    (x * z).sum().backward()
    assert calls == [2]


def test_handle_does_not_keep_the_hooks_alive_and_pickles():
    x = fg.ones(2, requires_grad=True)
    h = x.register_hook(lambda g: g)
    del x
    h.remove()                                   # the tensor is gone: nothing to remove
    d = __import__("collections").OrderedDict()
    h = RemovableHandle(d)
    d[h.id] = print
    h2 = pickle.loads(pickle.dumps(h))
    assert h2.id == h.id
    h.remove()
    assert not d


def test_a_plain_dict_is_refused_as_in_pytorch():
    with pytest.raises(TypeError, match="weak reference"):
        RemovableHandle({})

"""Graph introspection, as torch.autograd.graph: Node, GradientEdge, get_gradient_edge, and
iterative walkers over `grad_fn.next_functions` (never recursive: graphs may be 1e6 nodes deep).

    y = (x * 2).exp().sum()
    [n.name() for n in walk(y.grad_fn)]   # ['SumBackward0', 'ExpBackward0', 'MulBackward0',
                                          #  'AccumulateGrad']
"""
from collections import namedtuple

from fastgrad._core.hooks import joined
from fastgrad._core.node import Node as _CoreNode
from fastgrad._core.tensor import TensorBase
from fastgrad._core.recording import _get_accumulator

__all__ = ["Node", "GradientEdge", "get_gradient_edge", "increment_version", "walk", "edges",
           "topological_order", "leaves", "register_multi_grad_hook"]


class _NodeMeta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, _CoreNode)

    def __subclasscheck__(cls, sub):
        return isinstance(sub, type) and issubclass(sub, _CoreNode)


class Node(metaclass=_NodeMeta):
    """The abstract type of every graph node (`grad_fn`): isinstance(y.grad_fn, Node) is True.
    Nodes have name(), next_functions, metadata, register_hook and register_prehook."""


GradientEdge = namedtuple("GradientEdge", ["node", "output_nr"])
GradientEdge.__doc__ = "Where a tensor's gradient enters the graph: (node, output slot)."


def get_gradient_edge(tensor):
    """The GradientEdge of `tensor`: (grad_fn, output_nr), or (AccumulateGrad, 0) for a leaf."""
    if not tensor.requires_grad:
        raise RuntimeError("It is not possible to get the gradient edge for a Tensor that does "
                           "not require gradients")
    if tensor.grad_fn is not None:
        return GradientEdge(tensor.grad_fn, tensor.output_nr)
    return GradientEdge(_get_accumulator(tensor), 0)


def increment_version(tensor):
    """Bump the version counter, as an in-place op would (for ops that write behind autograd)."""
    tensors = (tensor,) if isinstance(tensor, TensorBase) else tensor
    for t in tensors:
        t.detach().mul_(1)    # an in-place no-op on an alias that shares the version counter


def _root(obj):
    if isinstance(obj, TensorBase):
        return obj.grad_fn if obj.grad_fn is not None else (
            _get_accumulator(obj) if obj.requires_grad else None)
    return obj


def edges(root):
    """Every edge (node, input_index, next_node, output_nr) reachable from `root` (a tensor or
    a node), each node visited once, depth-first in next_functions order."""
    start = _root(root)
    if start is None:
        return
    seen = {id(start)}
    stack = [start]
    while stack:
        node = stack.pop()
        for i, (nxt, nr) in enumerate(node.next_functions):
            if nxt is None:
                continue
            yield node, i, nxt, nr
            if id(nxt) not in seen:
                seen.add(id(nxt))
                stack.append(nxt)


def walk(root):
    """Every node reachable from `root` (a tensor or a node) once, root first, then in
    breadth-first order of next_functions."""
    start = _root(root)
    if start is None:
        return []
    out = [start]
    seen = {id(start)}
    i = 0
    while i < len(out):
        for nxt, _ in out[i].next_functions:
            if nxt is not None and id(nxt) not in seen:
                seen.add(id(nxt))
                out.append(nxt)
        i += 1
    return out


def topological_order(root):
    """Nodes in the order the engine may run them: every node before the nodes it feeds."""
    nodes = walk(root)
    indeg = {id(n): 0 for n in nodes}
    for n in nodes:
        for nxt, _ in n.next_functions:
            if nxt is not None:
                indeg[id(nxt)] += 1
    ready = [n for n in nodes if indeg[id(n)] == 0]
    order = []
    while ready:
        n = ready.pop()
        order.append(n)
        for nxt, _ in n.next_functions:
            if nxt is not None:
                indeg[id(nxt)] -= 1
                if indeg[id(nxt)] == 0:
                    ready.append(nxt)
    return order


def leaves(root):
    """The leaf tensors that require grad and that `root` depends on (via AccumulateGrad)."""
    return [n.variable for n in walk(root) if type(n).__name__ == "AccumulateGrad"]


def register_multi_grad_hook(tensors, fn, *, mode="all"):
    """fn(grads) once per backward after the gradients of all `tensors` that the backward
    reaches are computed (mode="all"), or fn(grad) on the first one (mode="any").

    Simplified from PyTorch: "all" fires when every tensor of the list got its gradient in this
    backward; tensors the backward does not reach keep the call waiting until the next one."""
    tensors = list(tensors)
    if mode not in ("all", "any"):
        raise ValueError(f"Expects mode to be one of ('all', 'any') but got {mode}")
    state = {"grads": [None] * len(tensors), "count": 0, "fired": False}

    def make(i):
        def hook(g):
            if mode == "any":
                if not state["fired"]:
                    state["fired"] = True
                    fn(g)
                return None
            state["grads"][i] = g
            state["count"] += 1
            if state["count"] == len(tensors):
                grads, state["grads"], state["count"] = state["grads"], [None] * len(tensors), 0
                fn(tuple(grads))
            return None
        return hook

    return joined([t.register_hook(make(i)) for i, t in enumerate(tensors)])

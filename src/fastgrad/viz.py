"""Draw a tensor's autograd graph: `to_dot(y)` returns Graphviz DOT text; `render(y, path)` writes
SVG/PNG through the `graphviz` Python package (pip install graphviz, plus the dot program).

Boxes are graph nodes (grad_fn names as PyTorch prints them: MulBackward0, AccumulateGrad ...);
light blue boxes are leaf tensors that require grad, with their shape; the green box is the
output. Edges point the way gradients flow (output towards leaves). Iterative: any depth.
"""
from fastgrad.autograd.graph import walk

__all__ = ["to_dot", "render"]


def _shape(t):
    return "[" + ", ".join(str(d) for d in t.shape) + "]"


def _q(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(tensor, name="output", params=None):
    """Graphviz DOT source of the graph that produced `tensor`.

    params: optional {name: tensor} to label leaves (e.g. dict(model.named_parameters()))."""
    labels = {id(t): n for n, t in (params or {}).items()}
    lines = ["digraph autograd {", '    node [shape=box, fontname="monospace", fontsize=10];',
             "    rankdir=TB;"]
    out_id = "t_out"
    lines.append(f'    {out_id} [label={_q(f"{name} {_shape(tensor)}")}, style=filled, '
                 f'fillcolor="darkolivegreen1"];')
    root = tensor.grad_fn
    if root is None and not tensor.requires_grad:
        lines.append("}")
        return "\n".join(lines) + "\n"
    nodes = walk(tensor)
    ids = {id(n): f"n{i}" for i, n in enumerate(nodes)}
    for n in nodes:
        nid = ids[id(n)]
        if type(n).__name__ == "AccumulateGrad":
            var = n.variable
            label = labels.get(id(var), "")
            text = (label + "\n" if label else "") + f"{_shape(var)} requires_grad"
            lines.append(f'    {nid} [label={_q(text)}, style=filled, fillcolor="lightblue"];')
        else:
            lines.append(f"    {nid} [label={_q(n.name())}];")
    lines.append(f"    {out_id} -> {ids[id(nodes[0])]};")
    for n in nodes:
        for nxt, _ in n.next_functions:
            if nxt is not None:
                lines.append(f"    {ids[id(n)]} -> {ids[id(nxt)]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(tensor, path, format="svg", **kwargs):
    """Write the graph of `tensor` to `path` (+ .svg/.png ...) with the graphviz package;
    returns the written file's path."""
    try:
        import graphviz
    except ImportError:
        raise ImportError("fastgrad.viz.render needs the 'graphviz' Python package (pip install "
                          "graphviz) and Graphviz's 'dot' program; fastgrad.viz.to_dot(tensor) "
                          "gives the DOT text without them") from None
    src = graphviz.Source(to_dot(tensor, **kwargs))
    return src.render(outfile=None, filename=str(path), format=format, cleanup=True)

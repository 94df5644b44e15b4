"""The elementwise op table: each op's code, forward formula and backward formula, written once.

setup.py expands kernels.pyx.tp and kernels.pxd.tp (Cython.Tempita) with the names below before
cythonize; every loop shape of kernels.pyx (contiguous, scalar operand, strided and broadcast,
unary, fused backward) and both element types take their formulas from here. tests/test_kernels.py
reads the table too, so an op added here is an op the kernel tests must cover.

A formula is one C expression in the element type, over locals the driver has loaded:
  x  the (first) operand's element        y  the other operand's element, or the scalar
  g  the incoming gradient's element      r  the saved forward result's element
and the math functions as {sqrt}, {pow}, ... which become sqrtf/sqrt, powf/pow per element type.
"""


class Op:
    """One elementwise op: its OP_ code (kernels.pxd) and formulas.

    fwd      out = fwd, or None when `vmath` names the vmath.h loop (FG_VM_*) that computes it
    vmath    see fwd
    bwd      the gradient from the saved result: grad_in = bwd(g, r); None: the op's node does it
    scalar   (exponent, formula) pairs the scalar-operand loop runs instead of fwd when the
             scalar equals the exponent, compared as the caller gave it (a double)
    shapes   the loop shapes this op runs in: "contiguous", "strided" (which includes broadcast)
             and "scalar" for binary ops; "unary" for unary ones
    note     the comment kernels.pxd carries beside the code
    """

    def __init__(self, name, code, fwd=None, *, vmath=None, bwd=None, scalar=(), shapes=(),
                 note=""):
        self.name, self.code, self.fwd, self.vmath, self.bwd = name, code, fwd, vmath, bwd
        self.scalar, self.shapes, self.note = tuple(scalar), tuple(shapes), note

    def __repr__(self):
        return f"Op({self.name})"


# Element types: (C type, name suffix of the generated drivers, its math function names)
DTYPES = [
    ("float", "f32", {"sqrt": "sqrtf", "pow": "powf", "sin": "sinf", "cos": "cosf",
                      "fabs": "fabsf"}),
    ("double", "f64", {"sqrt": "sqrt", "pow": "pow", "sin": "sin", "cos": "cos", "fabs": "fabs"}),
]

BINARY_SHAPES = ("contiguous", "strided", "scalar")

BINARY = [
    Op("ADD", 0, "x + y", shapes=BINARY_SHAPES),
    Op("SUB", 1, "x - y", shapes=BINARY_SHAPES),
    Op("MUL", 2, "x * y", shapes=BINARY_SHAPES),
    Op("DIV", 3, "x / y", shapes=BINARY_SHAPES),
    Op("RSUB", 4, "y - x", shapes=("scalar",), note="s - a (scalar on the left)"),
    Op("RDIV", 5, "y / x", shapes=("scalar",), note="s / a"),
    # PyTorch computes these exponents by products and divisions (bit-identical to it); 0.5 is a
    # square root as PyTorch's, so -0.0 ** 0.5 is -0.0 and -0.0 ** -0.5 is -inf
    Op("POW", 21, "{pow}(x, y)", shapes=BINARY_SHAPES, note="a ** s (binary: a ** b)",
       scalar=[("2", "x * x"), ("3", "x * x * x"), ("-1", "1 / x"), ("-2", "1 / (x * x)"),
               ("0.5", "{sqrt}(x)"), ("-0.5", "1 / {sqrt}(x)")]),
]

UNARY = [
    Op("NEG", 10, "-x", shapes=("unary",)),
    Op("ABS", 11, "{fabs}(x)", shapes=("unary",)),
    Op("EXP", 12, vmath="FG_VM_EXP", bwd="g * r", shapes=("unary",)),
    Op("LOG", 13, vmath="FG_VM_LOG", shapes=("unary",)),
    Op("SQRT", 14, "{sqrt}(x)", shapes=("unary",)),
    Op("SIN", 15, "{sin}(x)", shapes=("unary",)),
    Op("COS", 16, "{cos}(x)", shapes=("unary",)),
    Op("TANH", 17, vmath="FG_VM_TANH", bwd="g * (1 - r * r)", shapes=("unary",)),
    Op("SIGMOID", 18, vmath="FG_VM_SIGMOID", bwd="g * r * (1 - r)", shapes=("unary",)),
    # NaN and -0.0 pass through, as PyTorch; the backward is a select that reads g whatever r
    # is, so it vectorises (Note [Selecting, not masking, gradients]), and a NaN r passes g
    Op("RELU", 19, "0 if x < 0 else x", bwd="0 if r <= 0 else g", shapes=("unary",)),
    # PyTorch's grouping: inf * (tiny**2 == 0) is NaN
    Op("RECIPROCAL", 20, "1 / x", bwd="-g * (r * r)", shapes=("unary",)),
]

OPS = sorted(BINARY + UNARY, key=lambda op: op.code)


def ops_for(shape):
    """The ops that run in a loop shape, in table order."""
    return [op for op in BINARY + UNARY if shape in op.shapes]


def with_backward():
    """The unary ops whose gradient from the saved result is a kernel."""
    return [op for op in UNARY if op.bwd is not None]


def c(formula, math):
    """A formula with the element type's math function names filled in."""
    return formula.format(**math)

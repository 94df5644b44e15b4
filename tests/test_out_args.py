"""out= arguments (fastgrad._core.ops_out): a product refuses an out of another dtype with
PyTorch's message, which names both dtypes by their C type (the one dtype table's c_name)."""
import pytest

from _backend import fg

C_NAMES = {"float16": "c10::Half", "float32": "float", "float64": "double", "int8": "signed char",
           "uint8": "unsigned char", "int16": "short int", "int32": "int", "int64": "long int",
           "bool": "bool"}


@pytest.mark.parametrize("out_dtype", [d for d in C_NAMES if d != "float64"])
def test_product_out_of_another_dtype_names_both_c_types(out_dtype):
    a = fg.ones(2, 2, dtype=fg.float64)
    out = fg.empty(2, 2, dtype=getattr(fg, out_dtype))
    with pytest.raises(RuntimeError, match=f"^Expected out tensor to have dtype double, but got "
                                           f"{C_NAMES[out_dtype]} instead$"):
        fg.mm(a, a, out=out)


@pytest.mark.parametrize("in_dtype", ["float32", "float16"])
def test_product_out_names_the_result_c_type(in_dtype):
    a = fg.ones(2, 2, dtype=getattr(fg, in_dtype))
    out = fg.empty(2, 2, dtype=fg.float64)
    with pytest.raises(RuntimeError, match=f"^Expected out tensor to have dtype "
                                           f"{C_NAMES[in_dtype]}, but got double instead$"):
        fg.mm(a, a, out=out)

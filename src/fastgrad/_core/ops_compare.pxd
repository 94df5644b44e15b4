# Comparisons, integer division and remainders, bitwise and logical ops.
cdef object compare(int op, object a, object b)   # op: tensor.pxd's CMP_EQ .. CMP_GE

"""The arithmetic slots of a Python subclass of a compiled class (fastgrad.Tensor over
TensorBase): `a + b` on the subclass calls the compiled operator directly. Nothing here knows
tensors."""


cdef extern from *:
    """
    static void fg_copy_nb_slot(PyTypeObject *sub, PyTypeObject *base, int i) {
        PyNumberMethods *s = sub->tp_as_number, *b = base->tp_as_number;
        if (!s || !b) return;
        switch (i) {
        case 0: s->nb_add = b->nb_add; break;
        case 1: s->nb_subtract = b->nb_subtract; break;
        case 2: s->nb_multiply = b->nb_multiply; break;
        case 3: s->nb_true_divide = b->nb_true_divide; break;
        case 4: s->nb_power = b->nb_power; break;
        case 5: s->nb_negative = b->nb_negative; break;
        case 6: s->nb_positive = b->nb_positive; break;
        case 7: s->nb_absolute = b->nb_absolute; break;
        case 8: s->nb_inplace_add = b->nb_inplace_add; break;
        case 9: s->nb_inplace_subtract = b->nb_inplace_subtract; break;
        case 10: s->nb_inplace_multiply = b->nb_inplace_multiply; break;
        case 11: s->nb_inplace_true_divide = b->nb_inplace_true_divide; break;
        }
        PyType_Modified(sub);
    }
    """
    void fg_copy_nb_slot(type sub, type base, int i)


# the dunders behind each slot fg_copy_nb_slot copies, in its order
cdef tuple _NB_SLOTS = (("__add__", "__radd__"), ("__sub__", "__rsub__"), ("__mul__", "__rmul__"),
                        ("__truediv__", "__rtruediv__"), ("__pow__", "__rpow__"), ("__neg__",),
                        ("__pos__",), ("__abs__",), ("__iadd__",), ("__isub__",), ("__imul__",),
                        ("__itruediv__",))



def inherit_number_slots(cls, base):
    """Point the arithmetic slots of `cls`, a Python subclass of the compiled class `base`, at
    base's C functions where no class in between defines the operator. CPython otherwise fills
    them with its generic slot_nb_* (a method lookup and call per `a * b`), as Cython's
    operators are method objects."""
    if not issubclass(cls, base) or cls is base:
        return
    for i in range(len(_NB_SLOTS)):
        if not any(name in k.__dict__ for k in cls.__mro__
                   if k is not base and issubclass(k, base) for name in _NB_SLOTS[i]):
            fg_copy_nb_slot(<type>cls, <type>base, i)   # unchecked: cls's metaclass may subclass type

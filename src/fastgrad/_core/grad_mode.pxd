# The grad-enabled flag behind no_grad / enable_grad / set_grad_enabled.
# Thread-local, as in PyTorch: each thread records (or not) on its own.

cdef bint grad_enabled() noexcept nogil
cdef void set_grad_enabled_c(bint enabled) noexcept nogil
cdef bint inference_mode_c() noexcept nogil

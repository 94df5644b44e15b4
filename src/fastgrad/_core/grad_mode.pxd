# The grad-enabled flag behind no_grad / enable_grad / set_grad_enabled, and inference mode.
# Thread-local, as in PyTorch: each thread records (or not) on its own.

cdef bint grad_enabled() noexcept nogil          # ops record a graph (grad mode on, not inference)
cdef bint grad_mode_flag() noexcept nogil        # the grad-mode flag itself (is_grad_enabled)
cdef void set_grad_enabled_c(bint enabled) noexcept nogil
cdef bint inference_mode_c() noexcept nogil

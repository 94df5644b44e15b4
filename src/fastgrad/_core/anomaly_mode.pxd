# Anomaly detection's flags (torch.autograd.set_detect_anomaly): their one home. The graph
# recorders (recording.pyx, function.pyx) ask anomaly_enabled() whether to keep the forward stack
# in each new node; the engine asks it, and anomaly_check_nan(), after each node's backward.

cdef bint anomaly_enabled() noexcept nogil
cdef bint anomaly_check_nan() noexcept nogil
cdef str forward_trace()                     # the Python stack that is running, as text

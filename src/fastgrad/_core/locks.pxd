# Locks for state that two threads' backward calls can reach at once (Note [Backward from
# several threads] in engine.pyx): a C lock taken with the GIL held, released while waiting.
from cpython.pythread cimport (PyThread_type_lock, PyThread_acquire_lock, PyThread_release_lock,
                               NOWAIT_LOCK, WAIT_LOCK)


cdef inline void acquire(PyThread_type_lock lock) noexcept:
    """Take `lock`; if another thread holds it, wait with the GIL released so that thread (which
    may need the GIL to finish) can run."""
    if not PyThread_acquire_lock(lock, NOWAIT_LOCK):
        with nogil:
            PyThread_acquire_lock(lock, WAIT_LOCK)


cdef inline void release(PyThread_type_lock lock) noexcept:
    PyThread_release_lock(lock)

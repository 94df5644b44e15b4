"""no_grad / enable_grad / set_grad_enabled / inference_mode: context managers and decorators
over the compiled, thread-local grad-enabled flag."""
import functools

from fastgrad._core import grad_mode as _gm

is_grad_enabled = _gm.is_grad_enabled
is_inference_mode_enabled = _gm.is_inference_mode_enabled


class _GradModeContext:
    """Base: sets the flag on enter, restores it on exit; usable as a decorator."""
    _enabled = True

    def __enter__(self):
        self._prev = _gm._set_grad_enabled(self._enabled)
        return self

    def __exit__(self, *exc):
        _gm._set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper

    def clone(self):
        return self.__class__()


class no_grad(_GradModeContext):
    """Operations inside record nothing: results have requires_grad=False."""
    _enabled = False

    def __init__(self, orig_func=None):
        self._orig = orig_func

    def __new__(cls, orig_func=None):
        self = super().__new__(cls)
        if callable(orig_func):               # used as @no_grad without parentheses
            self.__init__()
            return self(orig_func)
        return self


class enable_grad(_GradModeContext):
    """Turn recording back on inside a no_grad block."""
    _enabled = True


class set_grad_enabled(_GradModeContext):
    """set_grad_enabled(False) acts at once (as a function) and as a context manager."""

    def __init__(self, mode):
        self._enabled = bool(mode)
        self._prev = _gm._set_grad_enabled(self._enabled)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _gm._set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        mode = self._enabled
        _gm._set_grad_enabled(self._prev)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper

    def clone(self):
        return set_grad_enabled(self._enabled)


class inference_mode(_GradModeContext):
    """Like no_grad, for code that only evaluates: nothing records (even under enable_grad),
    and tensors made inside are inference tensors (Tensor.is_inference()), which cannot be
    saved for backward or updated in place outside inference mode. `inference_mode(False)`
    turns it off inside an enclosing block (grad mode on). Also a decorator, with or without
    parentheses."""

    def __new__(cls, mode=True):
        if mode is None or isinstance(mode, bool):
            return super().__new__(cls)
        return cls()(mode)                    # @inference_mode without parentheses

    def __init__(self, mode=True):
        self._mode = bool(mode)

    def __enter__(self):
        self._prev = _gm._set_grad_enabled(not self._mode)
        self._prev_inf = _gm._set_inference_mode(self._mode)
        return self

    def __exit__(self, *exc):
        _gm._set_inference_mode(self._prev_inf)
        _gm._set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)
        return wrapper

    def clone(self):
        return inference_mode(self._mode)

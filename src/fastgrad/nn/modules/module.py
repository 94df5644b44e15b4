"""Module: the base of every layer, with PyTorch's registration rules and state_dict format.

Attributes are registered by assignment, as in torch: a Parameter goes to `_parameters`, a Module
to `_modules`, a tensor assigned to a registered buffer name to `_buffers`; `__getattr__` finds
them. state_dict keys are dotted paths ("0.weight"); values are detached tensors sharing storage.
"""
from collections import OrderedDict, namedtuple
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from fastgrad._core.hooks import add_hook, hook_dict
from fastgrad._core.tensor import TensorBase
from fastgrad.nn.parameter import Parameter

from fastgrad._core.module_call import ModuleCall as _CallBase

_IncompatibleKeysBase = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class _IncompatibleKeys(_IncompatibleKeysBase):
    """load_state_dict's result: the keys the module expected but did not get, and the rest."""
    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (f"_IncompatibleKeys(missing_keys={self.missing_keys}, "
                f"unexpected_keys={self.unexpected_keys})")

    __str__ = __repr__


def _addindent(s_, num_spaces):
    s = s_.split("\n")
    if len(s) == 1:
        return s_
    first = s.pop(0)
    s = [(num_spaces * " ") + line if line.strip() else "" for line in s]
    return first + "\n" + "\n".join(s)


def _torch_type_name(t):
    from fastgrad._core.tensor import dtype_legacy_name
    return dtype_legacy_name(t)


_R_co = TypeVar("_R_co", covariant=True)


class _Forward(Protocol[_R_co]):
    def forward(self, *args: Any, **kwargs: Any) -> _R_co: ...


class Module(_CallBase):
    """Base class for all neural network modules; subclasses define `forward`.

    `module(*args)` runs forward pre-hooks, `forward` and forward hooks (the compiled
    `ModuleCall.__call__`; with no hooks registered it is one C call to `forward`)."""

    training: bool
    _version = 1

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments; "
                            f"Module.__init__ takes none")
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = {}
        d["_forward_hooks"] = hook_dict()
        d["_forward_pre_hooks"] = hook_dict()

    def forward(self, *input: Any, **kwargs: Any) -> Any:  # any signature may override it
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  f'"forward" function')

    if TYPE_CHECKING:
        # module(x) has the type forward(x) returns (a forward without annotations: Any)
        def __call__(self: _Forward[_R_co], *args: Any, **kwargs: Any) -> _R_co: ...

    def register_forward_hook(self, hook):
        """hook(module, args, output) runs after forward; a non-None result replaces output."""
        return add_hook(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook):
        """hook(module, args) runs before forward; a non-None result replaces args."""
        return add_hook(self._forward_pre_hooks, hook)

    # -- registration ---------------------------------------------------------------------------
    def _check_init(self, what):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call")

    def register_parameter(self, name, param):
        self._check_init("parameter")
        self._check_name(name, "parameter", self._parameters)
        if param is None:
            self._parameters[name] = None
            return
        if not isinstance(param, Parameter):
            got = _torch_type_name(param) if isinstance(param, TensorBase) else type(param).__name__
            raise TypeError(f"cannot assign '{got}' "
                            f"object to parameter '{name}' (torch.nn.Parameter or None required)")
        if param.grad_fn is not None:
            raise ValueError(f"Cannot assign non-leaf Tensor to parameter '{name}'. Model "
                             f"parameters must be created explicitly. To express '{name}' as a "
                             f"function of another Tensor, compute the value in the forward() "
                             f"method.")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        self._check_init("buffers")
        self._check_name(name, "buffer", self._buffers)
        if tensor is not None and not isinstance(tensor, TensorBase):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            f"(torch Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_init("child module")
        self._check_name(name, "module", self._modules)
        self._modules[name] = module

    register_module = add_module

    def _check_name(self, name, kind, own):
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
        if hasattr(type(self), name) or (name in self.__dict__ and name not in own):
            raise KeyError(f"attribute '{name}' already exists")

    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._remove_from(name, d, d["_buffers"], d["_modules"])
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                tn = _torch_type_name(value) if isinstance(value, TensorBase) else type(value).__name__
                raise TypeError(f"cannot assign '{tn}' as parameter '{name}' "
                                f"(torch.nn.Parameter or None expected)")
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._remove_from(name, d, params, d["_buffers"])
            d["_modules"][name] = value
        elif params is not None and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module "
                                f"'{name}' (torch.nn.Module or None expected)")
            d["_modules"][name] = value
        elif params is not None and name in d["_buffers"]:
            if value is not None and not isinstance(value, TensorBase):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                f"(torch.Tensor or None expected)")
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    @staticmethod
    def _remove_from(name, *dicts):
        for dct in dicts:
            if name in dct:
                del dct[name]

    def __getattr__(self, name):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if key in d and name in d[key]:
                return d[key][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for key in ("_parameters", "_buffers", "_modules"):
            dct = self.__dict__.get(key)
            if dct is not None and name in dct:
                del dct[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = list(super().__dir__())
        keys += list(self._parameters) + list(self._modules) + list(self._buffers)
        return sorted(k for k in set(keys) if not k[0].isdigit())

    # -- traversal ------------------------------------------------------------------------------
    def _named_members(self, get_members, prefix="", recurse=True, remove_duplicate=True):
        memo = set()
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else [(prefix, self)])
        for module_prefix, module in modules:
            for k, v in get_members(module):
                if v is None or (remove_duplicate and id(v) in memo):
                    continue
                if remove_duplicate:
                    memo.add(id(v))
                yield (module_prefix + ("." if module_prefix else "") + k, v)

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members(lambda m: m._parameters.items(), prefix, recurse,
                                   remove_duplicate)

    def parameters(self, recurse=True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members(lambda m: m._buffers.items(), prefix, recurse,
                                   remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def named_children(self):
        memo = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in memo:
                memo.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module and every descendant, depth first, iteratively."""
        if memo is None:
            memo = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if remove_duplicate:
                if id(m) in memo:
                    continue
                memo.add(id(m))
            yield name, m
            kids = [(name + ("." if name else "") + k, c) for k, c in m._modules.items()
                    if c is not None]
            stack.extend(reversed(kids))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def get_submodule(self, target):
        if target == "":
            return self
        mod = self
        for item in target.split("."):
            if item not in mod._modules:
                raise AttributeError(f"{mod._get_name()} has no attribute `{item}`")
            mod = mod._modules[item]
        return mod

    def get_parameter(self, target):
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters:
            raise AttributeError(f"`{name}` is not an nn.Parameter")
        return mod._parameters[name]

    # -- modes and grads ------------------------------------------------------------------------
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                g = p.grad
                if g.grad_fn is not None:
                    g.detach_()
                else:
                    g.requires_grad_(False)
                g.zero_()

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- dtype ----------------------------------------------------------------------------------
    def _apply(self, fn):
        """Apply fn to every parameter's and buffer's data in place (Parameters keep identity)."""
        for m in self.modules():
            for _k, p in m._parameters.items():
                if p is None:
                    continue
                p.data = fn(p.detach())
                if p.grad is not None:
                    p.grad = fn(p.grad.detach())
            for k, b in m._buffers.items():
                if b is not None:
                    m._buffers[k] = fn(b)
        return self

    def to(self, *args, **kwargs):
        """to(dtype) / to(device) / to(device, dtype) / to(tensor): casts floating parameters
        and buffers; devices other than the CPU raise (fastgrad runs on the CPU)."""
        from fastgrad import _dtypes, _device
        dtype = kwargs.get("dtype")
        for a in args:
            if isinstance(a, TensorBase):
                dtype = a.dtype
            elif isinstance(a, _dtypes.dtype):
                dtype = a
            elif a is not None and not isinstance(a, bool):
                _device.check(a, "move")
        _device.check(kwargs.get("device"), "move")
        if dtype is None:
            return self
        if not dtype.is_floating_point:
            raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but "
                            f"got desired dtype={dtype}")
        return self._apply(lambda t: t.to(dtype) if t.is_floating_point() else t)

    def double(self):
        from fastgrad import float64
        return self._apply(lambda t: t.to(float64) if t.is_floating_point() else t)

    def float(self):
        from fastgrad import float32
        return self._apply(lambda t: t.to(float32) if t.is_floating_point() else t)

    def half(self):
        from fastgrad import float16
        return self._apply(lambda t: t.to(float16) if t.is_floating_point() else t)

    def type(self, dst_type):
        return self._apply(lambda t: t.to(dst_type))

    def cpu(self):
        return self

    def share_memory(self):
        """Move every parameter, gradient and buffer into shared memory (Tensor.share_memory_),
        so processes forked afterwards or sent the module through fastgrad.multiprocessing train
        it together (Hogwild)."""
        return self._apply(lambda t: t.share_memory_())

    def cuda(self, device=None):
        from fastgrad import _device
        _device.check("cuda", "move")

    # -- state dict -----------------------------------------------------------------------------
    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """OrderedDict of every parameter and persistent buffer by dotted name (detached,
        sharing storage unless keep_vars)."""
        if args:
            destination = args[0] if len(args) > 0 else destination
            prefix = args[1] if len(args) > 1 else prefix
            keep_vars = args[2] if len(args) > 2 else keep_vars
        if destination is None:
            destination = OrderedDict()
        for name, m in self.named_modules(prefix=prefix.rstrip("."), remove_duplicate=False):
            pre = name + "." if name else ""
            for k, p in m._parameters.items():
                if p is not None:
                    destination[pre + k] = p if keep_vars else p.detach()
            for k, b in m._buffers.items():
                if b is not None and k not in m._non_persistent_buffers_set:
                    destination[pre + k] = b if keep_vars else b.detach()
        return destination

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy tensors from `state_dict` into parameters and buffers (in place, under no_grad).
        Returns (missing_keys, unexpected_keys); with strict, raises RuntimeError naming them.
        Shape mismatches always raise."""
        from fastgrad.autograd.grad_mode import no_grad
        if not isinstance(state_dict, dict):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        missing, error_msgs, expected = [], [], set()
        with no_grad():
            for name, m in self.named_modules(remove_duplicate=False):
                pre = name + "." if name else ""
                local = [(k, v, m._parameters) for k, v in m._parameters.items()]
                local += [(k, v, m._buffers) for k, v in m._buffers.items()
                          if k not in m._non_persistent_buffers_set]
                for k, cur, owner in local:
                    if cur is None:
                        continue
                    key = pre + k
                    expected.add(key)
                    if key not in state_dict:
                        missing.append(key)
                        continue
                    src = state_dict[key]
                    if not isinstance(src, TensorBase):
                        error_msgs.append(f'While copying the parameter named "{key}", expected '
                                          f'torch.Tensor or Tensor-like object from checkpoint '
                                          f'but received {type(src)}')
                        continue
                    if tuple(src.shape) != tuple(cur.shape):
                        error_msgs.append(f"size mismatch for {key}: copying a param with shape "
                                          f"{src.shape} from checkpoint, the shape in current "
                                          f"model is {cur.shape}.")
                        continue
                    if assign:
                        if isinstance(cur, Parameter):
                            owner[k] = Parameter(src, cur.requires_grad)
                        else:
                            owner[k] = src
                    else:
                        cur.copy_(src)
        unexpected = [k for k in state_dict if k not in expected]
        if strict:
            if unexpected:
                error_msgs.insert(0, "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                error_msgs.insert(0, "Missing key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in missing)))
        if error_msgs:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(
                self._get_name(), "\n\t".join(error_msgs)))
        return _IncompatibleKeys(missing, unexpected)

    # -- repr -----------------------------------------------------------------------------------
    def _get_name(self):
        return type(self).__name__

    def extra_repr(self):
        return ""

    def __repr__(self):
        extra_lines = []
        extra = self.extra_repr()
        if extra:
            extra_lines = extra.split("\n")
        child_lines = []
        for key, module in self._modules.items():
            mod_str = _addindent(repr(module), 2)
            child_lines.append("(" + key + "): " + mod_str)
        lines = extra_lines + child_lines
        main_str = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main_str += extra_lines[0]
            else:
                main_str += "\n  " + "\n  ".join(lines) + "\n"
        return main_str + ")"

    def __getstate__(self):
        return self.__dict__.copy()

    def __reduce_ex__(self, protocol):
        # pickle protocols 0 and 1 would copy the compiled base ModuleCall, which has no state;
        # protocol 2's form (class + __dict__) serves every protocol
        return object.__reduce_ex__(self, max(protocol, 2))

    def __setstate__(self, state):
        self.__dict__.update(state)

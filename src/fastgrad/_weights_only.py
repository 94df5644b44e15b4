"""The unpickler behind ``fastgrad.load(weights_only=True)`` and the allowlist it consults.

A checkpoint that holds more than tensors and containers (a whole module, an optimizer) keeps
its object graph as a pickle. Unpickling with Python's own unpickler runs whatever callables the
file names, so a weights-only load interprets the pickle opcodes here instead, as PyTorch's
weights-only unpickler does:

- a global (``GLOBAL``, ``STACK_GLOBAL``, ``INST``) is looked up by its dotted name in the
  allowlist, never imported: stdlib containers and fastgrad's dtype, device and Size by
  default, plus what the user allowed with ``add_safe_globals`` / ``safe_globals``. Any other
  name is refused (``pickle.UnpicklingError``) before anything from it is imported or run.
  The modules ``sys``, ``os``, ``posix`` and ``nt`` are refused even when allowlisted.
- only an allowlisted callable may be called (``REDUCE``, ``NEWOBJ``, ``OBJ``), only an
  instance of an allowlisted class may have its state set (``BUILD``), only lists (or allowed
  classes) appended to and only dicts (or allowed classes) have items set.
- the default callables take only the arguments pickle writes for them: bytearray and
  ``_codecs.encode`` rebuild bytes objects, never allocate a size the file names or run a
  codec chain that grows its input.
- tuples nest at most 1000 deep: hashing a deeper one (a dict key) overflows the C stack.
- persistent ids are the indices of the file's tensors, resolved by the caller.

A refusal raises ``pickle.UnpicklingError``; a pickle that breaks the opcode rules (a stack
that runs out, an unknown memo index, a truncated opcode) raises ``Malformed``. Errors raised
by the code of a class the user allowlisted reach the caller unchanged.
"""
import _compat_pickle
import codecs
import collections
import pickle
import pickletools
import types

from fastgrad._npz_archive import Malformed

_BLOCKED_MODULES = frozenset(("sys", "os", "posix", "nt"))

_user_globals = set()


class Blocked(pickle.UnpicklingError):
    """The file names a global of a module that is never allowed (sys, os, posix, nt)."""


class _UserCodeError(Exception):
    """Carries an exception raised by the code of a user-allowlisted class or function."""


# ----------------------------------------------------------------------------- the allowlist

def _full_path(entry):
    """'module.qualname' of an allowlist entry: a callable, or a (callable, 'full.path') pair."""
    if isinstance(entry, tuple):
        if len(entry) != 2:
            raise ValueError(f"add_safe_globals: expected a tuple of length 2 (global, str of "
                             f"its full path), but got a tuple of length {len(entry)}")
        if type(entry[1]) is not str:
            raise TypeError(f"add_safe_globals: expected the second item of the tuple to be the "
                            f"str of the global's full path, but got {type(entry[1]).__name__}")
        return entry[1]
    module, name = getattr(entry, "__module__", None), getattr(entry, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(name, str):
        raise TypeError(f"add_safe_globals: {entry!r} has no __module__ and __qualname__ to name "
                        f"it by; pass a class or function, or a (global, 'module.name') tuple")
    return f"{module}.{name}"


def add_safe_globals(safe_globals):
    """Mark classes/functions (or ``(global, 'module.name')`` pairs) as safe for
    ``load(weights_only=True)``: they may then be called and their instances given state."""
    entries = list(safe_globals)
    for entry in entries:
        _full_path(entry)
    _user_globals.update(entries)


def get_safe_globals():
    """The list of globals the user marked as safe for ``load(weights_only=True)``."""
    return list(_user_globals)


def clear_safe_globals():
    """Forget every global marked as safe with ``add_safe_globals`` or ``safe_globals``."""
    _user_globals.clear()


class safe_globals:
    """Context manager: the given globals are safe for ``load(weights_only=True)`` inside the
    block (as PyTorch, they are removed from the allowlist on exit)."""

    def __init__(self, safe_globals):
        self.safe_globals = list(safe_globals)      # an iterator would be empty on exit

    def __enter__(self):
        add_safe_globals(self.safe_globals)

    def __exit__(self, exc_type, exc_value, traceback):
        _user_globals.difference_update(self.safe_globals)


def _default_globals():
    from fastgrad._core import dtypes, size
    from fastgrad import _device
    table = {"collections.OrderedDict": collections.OrderedDict,
             "collections.Counter": collections.Counter,
             "builtins.set": set, "builtins.bytearray": bytearray, "builtins.complex": complex,
             "_codecs.encode": codecs.encode}
    for obj in (dtypes.from_name, _device.device, size.Size):
        table[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return table


def _named(obj):
    """A class or function by name, anything else by its type (no repr: it could run code)."""
    if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
        return obj.__qualname__
    return f"an object of type {type(obj).__name__}"


def _method(obj, name):
    """obj.name, or Malformed: the pickle applies an operation its object does not have."""
    try:
        return getattr(obj, name)
    except AttributeError:
        raise Malformed(f"the pickle applies {name} to a {type(obj).__name__}, which has no "
                        f"{name}") from None


def _shown(path):
    """How a refused global is written in Python: builtins without their module."""
    return path[len("builtins."):] if path.startswith("builtins.") else path


# ----------------------------------------------------------------------------- the interpreter

class _Interpreter:
    """One weights-only unpickling of `data`; `persistent_load(pid)` resolves tensor ids."""

    def __init__(self, data, persistent_load):
        self.data = data
        self.persistent_load = persistent_load
        self.defaults = _default_globals()
        self.users = {_full_path(e): (e[0] if isinstance(e, tuple) else e)
                      for e in _user_globals}
        self.default_ids = {id(v) for v in self.defaults.values()}
        self.user_ids = {id(v) for v in self.users.values()}
        self.stack, self.marks, self.memo, self.proto = [], [], {}, 0
        self.depths = {}        # id of a tuple nesting tuples -> (its depth, the tuple)

    # -- stack

    def pop(self):
        if not self.stack:
            raise Malformed("an opcode finds the stack empty")
        return self.stack.pop()

    def top(self):
        if not self.stack:
            raise Malformed("an opcode finds the stack empty")
        return self.stack[-1]

    def pop_mark(self):
        if not self.marks:
            raise Malformed("an opcode needs a MARK that is not there")
        items, self.stack = self.stack, self.marks.pop()
        return items

    # -- checks

    def refuse(self, why):
        raise pickle.UnpicklingError(why)

    def lookup(self, module, name):
        if self.proto < 3:                   # names written for Python 2, as pickle maps them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        path = f"{module}.{name}"
        if module in _BLOCKED_MODULES:
            raise Blocked(f"Trying to load unsupported GLOBAL {path} whose module {module} is "
                          f"blocked (never allowed, even when allowlisted).")
        if path in self.users:
            return self.users[path]
        if path in self.defaults:
            return self.defaults[path]
        shown = _shown(path)
        self.refuse(f"Unsupported global: GLOBAL {shown} was not an allowed global by default. "
                    f"Please use `fastgrad.serialization.add_safe_globals([{shown}])` or the "
                    f"`fastgrad.serialization.safe_globals([{shown}])` context manager to "
                    f"allowlist this global if you trust this class/function.")

    def nested(self, obj):
        """`obj`, if it is not a tuple nesting tuples deeper than _MAX_TUPLE_DEPTH: hashing one
        (as a dict key, a set item) recurses in C once per level and overflows its stack."""
        if not isinstance(obj, tuple):
            return obj
        depths = self.depths
        depth = 1 + max((depths[id(x)][0] if id(x) in depths else 1
                         for x in obj if isinstance(x, tuple)), default=0)
        if depth > _MAX_TUPLE_DEPTH:
            raise Malformed(f"the pickle nests tuples deeper than {_MAX_TUPLE_DEPTH}")
        if depth > 1:
            depths[id(obj)] = (depth, obj)      # holds obj: its id stays its own
        return obj

    def allowed(self, obj):
        """'user', 'default' or None: who allowed calling `obj` (or building its instances)."""
        if id(obj) in self.user_ids:
            return "user"
        return "default" if id(obj) in self.default_ids else None

    def call(self, func, args, kwargs=None):
        who = self.allowed(func)
        if who is None:
            self.refuse(f"Trying to call {_named(func)}, which is not an allowed global; only "
                        f"allowlisted classes and functions may be called.")
        if who == "default" and func in _ARGUMENT_CHECKS and not _ARGUMENT_CHECKS[func](args):
            self.refuse(f"Trying to call {_named(func)} with arguments {_described(args)}, which "
                        f"pickle never writes for it (only {_ARGUMENT_RULES[func]}).")
        return self.nested(self._run(who, func, *args, **(kwargs or {})))

    def _run(self, who, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as e:
            if who == "user":
                raise _UserCodeError() from e
            raise Malformed(f"{getattr(func, '__qualname__', func)!s} failed on the pickled "
                            f"arguments ({type(e).__name__}: {e})") from None

    # -- opcodes

    def build(self, state):
        inst = self.top()
        who = self.allowed(type(inst))
        if who is None:
            self.refuse(f"Can only build instances of allowlisted classes (add them with "
                        f"add_safe_globals), but got {type(inst).__name__}")
        setstate = getattr(inst, "__setstate__", None)
        if setstate is not None:
            self._run(who, setstate, state)
            return
        slotstate = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slotstate = state
        if not (state is None or type(state) is dict) or not (slotstate is None
                                                              or type(slotstate) is dict):
            raise Malformed(f"BUILD of a {type(inst).__name__} without a __setstate__ needs a "
                            f"dict of its state and one of its slots, or None, but got "
                            f"{type(state).__name__} and {type(slotstate).__name__}")
        if state:
            self._run("default", _method(inst, "__dict__").update, state)
        if slotstate:
            for k, v in self._run("default", lambda: list(slotstate.items())):
                self._run(who, setattr, inst, k, v)

    def extend(self, items, one=False):
        """APPEND (`one`) or APPENDS, as pickle does them: extend(), else append() each."""
        target = self.top()
        who = "default" if type(target) is list else self.allowed(type(target))
        if who is None:
            self.refuse(f"Can only append to lists (or allowlisted classes), but got "
                        f"{type(target).__name__}")
        if type(target) is list:
            target.extend(items)
        elif one or not hasattr(type(target), "extend"):
            append = _method(target, "append")
            for item in items:
                self._run(who, append, item)
        else:
            self._run(who, target.extend, items)

    def set_items(self, items):
        target = self.top()
        kind = type(target)
        who = ("default" if kind in (dict, collections.OrderedDict, collections.Counter)
               else self.allowed(kind))
        if who is None:
            self.refuse(f"Can only set items of dicts (or allowlisted classes), but got "
                        f"{kind.__name__}")
        if len(items) % 2:
            raise Malformed("SETITEMS with an odd number of items")
        setitem = _method(target, "__setitem__")
        for i in range(0, len(items), 2):
            self._run(who, setitem, items[i], items[i + 1])

    def add_items(self, items):
        target = self.top()
        who = "default" if type(target) is set else self.allowed(type(target))
        if who is None:
            self.refuse(f"Can only add to sets (or allowlisted classes), but got "
                        f"{type(target).__name__}")
        add = _method(target, "add")
        for item in items:
            self._run(who, add, item)

    def step(self, name, arg):
        stack = self.stack
        if name in _CONSTANT_OPS:
            stack.append(arg)
        elif name in _NO_OPS:
            pass
        elif name == "PROTO":
            self.proto = arg
        elif name == "NONE":
            stack.append(None)
        elif name == "NEWTRUE":
            stack.append(True)
        elif name == "NEWFALSE":
            stack.append(False)
        elif name == "BYTEARRAY8":
            stack.append(bytearray(arg))
        elif name == "MARK":
            self.marks.append(stack)
            self.stack = []
        elif name == "POP":
            if stack:
                self.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            stack.append(self.top())
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise Malformed(f"memo index {arg} is read before it is written")
            stack.append(self.memo[arg])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            if arg < 0:
                raise Malformed("negative memo index")
            self.memo[arg] = self.top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top()
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "TUPLE":
            items = self.pop_mark()             # before self.stack is read: it is replaced
            self.stack.append(self.nested(tuple(items)))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                raise Malformed(f"{name} finds fewer than {n} items on the stack")
            stack[-n:] = [self.nested(tuple(stack[-n:]))]
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "LIST":
            items = self.pop_mark()
            self.stack.append(items)
        elif name == "APPEND":
            item = self.pop()
            self.extend([item], one=True)
        elif name == "APPENDS":
            items = self.pop_mark()
            self.extend(items)
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "DICT":
            items = self.pop_mark()
            self.stack.append({})
            self.set_items(items)
        elif name == "SETITEM":
            value = self.pop()
            key = self.pop()
            self.set_items([key, value])
        elif name == "SETITEMS":
            items = self.pop_mark()
            self.set_items(items)
        elif name == "EMPTY_SET":
            stack.append(set())
        elif name == "ADDITEMS":
            items = self.pop_mark()
            self.add_items(items)
        elif name == "FROZENSET":
            items = self.pop_mark()
            self.stack.append(self._run("default", frozenset, items))
        elif name == "GLOBAL":
            module, _, qualname = arg.partition(" ")
            stack.append(self.lookup(module, qualname))
        elif name == "STACK_GLOBAL":
            qualname = self.pop()
            module = self.pop()
            if type(module) is not str or type(qualname) is not str:
                raise Malformed("STACK_GLOBAL needs two strings")
            stack.append(self.lookup(module, qualname))
        elif name == "REDUCE":
            args = self.pop()
            func = self.pop()
            if type(args) is not tuple:
                raise Malformed("REDUCE needs a tuple of arguments")
            stack.append(self.call(func, args))
        elif name in ("NEWOBJ", "NEWOBJ_EX"):
            kwargs = self.pop() if name == "NEWOBJ_EX" else {}
            args = self.pop()
            cls = self.pop()
            if (type(args) is not tuple or type(kwargs) is not dict
                    or not all(type(k) is str for k in kwargs)):
                raise Malformed(f"{name} needs a tuple of arguments (and a dict of keyword "
                                f"arguments by name)")
            if not isinstance(cls, type):
                raise Malformed(f"{name} needs a class")
            who = self.allowed(cls)
            if who is None:
                self.refuse(f"Can only create new objects of allowlisted classes (add them with "
                            f"add_safe_globals), but got {_named(cls)}")
            stack.append(self.nested(self._run(who, cls.__new__, cls, *args, **kwargs)))
        elif name == "INST":
            module, _, qualname = arg.partition(" ")
            cls = self.lookup(module, qualname)
            args = tuple(self.pop_mark())
            self.stack.append(self.call(cls, args))
        elif name == "OBJ":
            items = self.pop_mark()
            if not items:
                raise Malformed("OBJ needs a class")
            self.stack.append(self.call(items[0], tuple(items[1:])))
        elif name == "BUILD":
            self.build(self.pop())
        elif name == "PERSID":
            stack.append(self.persistent_load(arg))
        elif name == "BINPERSID":
            stack.append(self.persistent_load(self.pop()))
        else:
            raise Malformed(f"the pickle uses the opcode {name}, which fastgrad.save never "
                            f"writes")

    def run(self):
        ops = pickletools.genops(self.data)
        while True:
            try:
                opcode, arg, _ = next(ops)
            except StopIteration:
                raise Malformed("the pickle ends without a STOP opcode") from None
            except Exception as e:          # genops: truncated or unknown opcodes
                raise Malformed(f"unreadable pickle ({type(e).__name__}: {e})") from None
            if opcode.name == "STOP":
                result = self.pop()
                if self.stack or self.marks:
                    raise Malformed("items are left on the stack at STOP")
                return result
            try:
                self.step(opcode.name, arg)
            except _UserCodeError as e:
                raise e.__cause__ from None


def _described(args):
    """The types of call arguments (their values could be huge, or run code when shown)."""
    return "(" + ", ".join(type(a).__name__ for a in args) + ")"


# Arguments a default global accepts: what pickle writes for a bytes or bytearray object.
# Others are refused: bytearray(n) allocates n bytes, and chained codecs.encode calls (hex
# doubles its input) grow a few bytes of file into any amount of memory.
_ARGUMENT_CHECKS = {
    bytearray: lambda args: (len(args) == 0 or (len(args) == 1 and type(args[0]) is bytes)
                             or (len(args) == 2 and type(args[0]) is str
                                 and type(args[1]) is str and args[1] == "latin-1")),
    codecs.encode: lambda args: (len(args) == 2 and type(args[0]) is str
                                 and type(args[1]) is str and args[1] == "latin1"),
}
_ARGUMENT_RULES = {bytearray: "bytearray(), bytearray(bytes) and bytearray(str, 'latin-1')",
                   codecs.encode: "_codecs.encode(str, 'latin1')"}
_MAX_TUPLE_DEPTH = 1000

# opcodes that push their argument as it is; opcodes with no effect on the result
_CONSTANT_OPS = frozenset(("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
                           "FLOAT", "BINFLOAT", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
                           "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"))
_NO_OPS = frozenset(("FRAME",))


def load(data, persistent_load):
    """The object pickled in `data` (bytes), refusing any global the allowlist lacks."""
    return _Interpreter(data, persistent_load).run()

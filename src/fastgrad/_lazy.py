"""Lazy package attributes (PEP 562): submodules and names that load on first access, so that
`import fastgrad` stays cheap (W8) while `fastgrad.nn`, `import fastgrad.nn`, `fastgrad.save`
and `fastgrad.autograd.functional` all keep working."""
import importlib


def attach(package, namespace, modules, attrs):
    """Return (__getattr__, __dir__) for `package` whose globals are `namespace`.

    modules: names of submodules loaded on first access (`package.name`);
    attrs:   name -> (module, attribute) for objects loaded on first access (then cached)."""

    def __getattr__(name):
        if name in modules:
            return importlib.import_module(f"{package}.{name}")   # the import binds it too
        if name in attrs:
            module, attr = attrs[name]
            value = getattr(importlib.import_module(module), attr)
            namespace[name] = value
            return value
        raise AttributeError(f"module '{package}' has no attribute '{name}'")

    def __dir__():
        return sorted(set(namespace) | set(modules) | set(attrs))

    return __getattr__, __dir__

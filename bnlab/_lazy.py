"""Package attributes imported on first use, so that `import bnlab` does not import torch.

The command line builds its `--help` tree from light modules; were the package `__init__`s
to import their public API eagerly, every `bnlab ... --help` would first load torch, SciPy
and matplotlib (seconds). After `attach`, `bnlab.BatchNorm2d` and `from bnlab import
BatchNorm2d` work as before: the first access imports the module that defines the name.

Several exported functions share their module's name (`bnlab.data.fetch`, the function in
`bnlab/data/fetch.py`). An eager `from bnlab.data.fetch import fetch` in `__init__` leaves
the function bound; here a submodule imported later would rebind the name to the module
(the import system sets it on the package), so the package keeps the function instead.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterable, Mapping


class LazyPackage(types.ModuleType):
    """A package whose public names are imported from their modules on first access."""

    def __getattr__(self, name: str) -> object:  # only called when `name` is not bound yet
        lazy = self.__dict__.get("_lazy", {})
        if name not in lazy:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        module = importlib.import_module(lazy[name] or f"{self.__name__}.{name}")
        value = module if lazy[name] is None else getattr(module, name)
        self.__dict__[name] = value  # later accesses are plain lookups
        return value

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and self.__dict__.get("_lazy", {}).get(name):
            return  # a submodule named like an exported function: the function keeps the name
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*self.__dict__, *self.__dict__.get("_lazy", {})})


def attach(
    package: str, attributes: Mapping[str, str], submodules: Iterable[str] = ()
) -> list[str]:
    """Make `package` (its `__name__`) lazy and return its sorted `__all__`.

    attributes: public name -> the module that defines it ("BatchNorm2d": "bnlab.modules");
    submodules: public submodules ("reference" for bnlab.reference).
    """
    lazy: dict[str, str | None] = {**dict.fromkeys(submodules), **attributes}
    module = sys.modules[package]
    module.__dict__["_lazy"] = lazy
    module.__class__ = LazyPackage
    return sorted(lazy)

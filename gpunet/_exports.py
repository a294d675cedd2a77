"""Public names that load their module on first use, for a package's ``__init__``."""
from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]
                 ) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """(``__all__``, ``__getattr__``, ``__dir__``) for ``package``, whose names
    ``exports`` lists by module: each is imported from its module when first
    asked for, and kept in the package from then on."""
    module_of = {name: module for module, names in exports.items() for name in names}
    public = sorted(module_of)

    def getattr_(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module_of[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        """The public names, the dunders, and the public submodules loaded so far."""
        names = vars(sys.modules[package])
        return sorted({*public, *(name for name in names if name.startswith("__")),
                       *(name for name, value in names.items() if not name.startswith("_")
                         and isinstance(value, ModuleType)
                         and value.__name__ == f"{package}.{name}")})

    return public, getattr_, dir_

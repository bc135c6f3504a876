"""Optional parts that need an extra (pyproject's [project.optional-dependencies]): importing one that is
missing says which extra to install instead of ending in a bare ModuleNotFoundError."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names it, what needs it and the extra."""


def require(module: str, extra: str, needed_for: str) -> ModuleType:
    """import_module(module), or MissingExtraError: `<module>: needed for <needed_for>: install the extra
    with pip install 'latentvar[<extra>]'`. An installed module whose own import fails (cairosvg raises
    OSError when the cairo C library is absent) counts as missing, with the reason kept."""
    try:
        return import_module(module)
    except (ImportError, OSError) as err:
        raise MissingExtraError(
            f"{module}: needed for {needed_for} but not importable ({' '.join(str(err).split())}): "
            f"install the extra with pip install 'latentvar[{extra}]'",
            name=module,
        ) from err

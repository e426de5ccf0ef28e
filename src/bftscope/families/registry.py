"""The one registry of chain families; the only module outside a family's own package that names one.

Families are loaded through one hook, the same for the built-in families and for outside plugins: a
module attribute holding a :class:`~bftscope.families.base.ChainFamily`, named by an ``module:attribute``
string. The built-ins are listed in :data:`BUILTIN`; a package adds its own under the
``bftscope.families`` entry-point group (``[project.entry-points."bftscope.families"]``), and a test or an
embedding program calls :func:`register`. Loading is lazy (the first question asked), so importing a
layer never imports a family and a family's modules may import the layers freely.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from bftscope.errors import InputError
from bftscope.model import NEUTRAL_KINDS

if TYPE_CHECKING:
    from bftscope.families.base import ChainFamily
    from bftscope.ingest.source import FileFormat
    from bftscope.store.base import Store

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "all_formats", "all_kinds", "default_family", "families", "family",
           "family_of_format", "family_of_run", "format_by_name", "register", "registered", "unregister"]  # fmt: skip

ENTRY_POINT_GROUP = "bftscope.families"
# The built-in families, loaded through the same hook as a plugin's entry point. The first is the default
# (the family of a run none of whose files says otherwise).
BUILTIN = ("bftscope.families.cometbft.family:FAMILY", "bftscope.families.casper.family:FAMILY")

_families: dict[str, ChainFamily] = {}
_loaded = False


def _load_hook(spec: str) -> ChainFamily:
    module, _, attr = spec.partition(":")
    fam: ChainFamily = getattr(importlib.import_module(module), attr)
    return fam


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for spec in BUILTIN:
        register(_load_hook(spec))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        register(ep.load())


def register(fam: ChainFamily) -> ChainFamily:
    """Add a family (its name, kinds and format names must be new); returns it."""
    _ensure_loaded()
    if fam.name in _families:
        if _families[fam.name] is fam:
            return fam
        raise ValueError(f"a chain family named {fam.name!r} is already registered")
    taken = {f.name for other in _families.values() for f in other.formats}
    if clash := [f.name for f in fam.formats if f.name in taken]:
        raise ValueError(f"family {fam.name!r}: format {clash[0]!r} is already registered")
    _families[fam.name] = fam
    return fam


def unregister(name: str) -> None:
    _families.pop(name, None)


@contextmanager
def registered(fam: ChainFamily) -> Iterator[ChainFamily]:
    """The family registered for the duration of a ``with`` (tests, embedding programs)."""
    register(fam)
    try:
        yield fam
    finally:
        unregister(fam.name)


def families() -> list[ChainFamily]:
    _ensure_loaded()
    return list(_families.values())


def default_family() -> ChainFamily:
    return families()[0]


def family(name: str) -> ChainFamily:
    """The family of a chain name (``runs.chain``)."""
    _ensure_loaded()
    try:
        return _families[name]
    except KeyError:
        raise InputError(f"unknown chain family {name!r}; known: {', '.join(_families)}") from None


def family_of_run(store: Store, run_id: int) -> ChainFamily:
    """The family of a stored run (the default family for a run id the store does not hold)."""
    rows = store.query("SELECT chain FROM runs WHERE id = ?", [run_id])
    return family(str(rows[0][0])) if rows else default_family()


def all_formats() -> list[FileFormat]:
    """Every family's formats, families in registration order, each family's in its own order."""
    return [f for fam in families() for f in fam.formats]


def format_by_name(name: str) -> FileFormat:
    for f in all_formats():
        if f.name == name:
            return f
    raise KeyError(name)


def family_of_format(name: str) -> ChainFamily:
    for fam in families():
        if any(f.name == name for f in fam.formats):
            return fam
    raise KeyError(name)


def all_kinds() -> list[str]:
    """Every registered kind, each once, in registration order, then the chain-neutral ones."""
    seen: dict[str, None] = {}
    for fam in families():
        seen.update(dict.fromkeys(fam.kinds))
    seen.update(dict.fromkeys(NEUTRAL_KINDS))
    return list(seen)

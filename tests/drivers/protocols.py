"""Structural Protocol checks without calling properties (isinstance() on Python < 3.12 does)."""

from __future__ import annotations

import inspect


def implements(obj, protocol) -> bool:
    """Whether `obj` has every member `protocol` declares (looked up statically)."""
    members = {
        name for klass in protocol.__mro__[:-1] if klass.__name__ not in ("Protocol", "Generic")
        for name in list(vars(klass)) + list(getattr(klass, "__annotations__", {}))
        if not name.startswith("_") or name in ("__enter__", "__exit__")
    }
    missing = [name for name in members if _missing(obj, name)]
    assert not missing, f"{type(obj).__name__} lacks {sorted(missing)} of {protocol.__name__}"
    return True


def _missing(obj, name: str) -> bool:
    try:
        inspect.getattr_static(obj, name)
        return False
    except AttributeError:
        return True

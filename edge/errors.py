"""The error tree for user-facing failures.

Every error a user can cause (bad path, corrupted file, wrong device) is an `EdgeError` whose
message is one line saying what is wrong and, where it helps, what to do. The CLI prints it
without a traceback and exits non-zero.
"""


class EdgeError(Exception):
    """A user-facing failure with a one-line explanation."""

    exit_code = 1



class CheckpointError(EdgeError):
    """A training output or checkpoint that cannot be loaded or does not verify."""


class BundleError(EdgeError):
    """A bundle that is missing, corrupted or cannot run here."""


class ProfileError(EdgeError):
    """A deployment profile that does not exist or does not validate."""


class MissingDependency(EdgeError):
    """An optional dependency is not installed; the message names the extra."""

    @classmethod
    def for_module(cls, module: str, extra: str) -> "MissingDependency":
        return cls(f"{module} is not installed: pip install 'tinyvla-edge[{extra}]'")


def require(module: str, extra: str):
    """Import an optional heavy dependency, or raise a clear error naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependency.for_module(module, extra) from e


def first_invalid_field(error: Exception) -> str:
    """One line for a validation failure: "field 'a.b': reason" for pydantic, else its first line."""
    if callable(getattr(error, "errors", None)):
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        return f"field '{field[:120]}': {validation_reason(error)}"
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def validation_reason(error: Exception) -> str:
    """The reason of a pydantic validation failure's first error, without pydantic's
    "Value error, " wrapping or its "For further information" line (at most 200 characters)."""
    return str(error.errors()[0]["msg"]).removeprefix("Value error, ")[:200]

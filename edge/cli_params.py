"""What the command line checks while it parses, before any command imports torch or a model.

Choices are `Literal` types (shown in `--help`, completed by the shell, refused by the parser
with the valid values); input paths must exist; profile names and camera specs are resolved
by the same functions the commands use later, so a typo costs milliseconds, not the 10 s of
imports a command needs before it would notice. Each check raises `typer.BadParameter`, which
the CLI prints as one line and exit code 1, like every other refusal.
"""

from __future__ import annotations

import difflib
from typing import Literal

import typer

from edge.errors import EdgeError

# The choices of options whose values are fixed sets (the profile schema's own for precision).
ArmSpace = Literal["ee", "joint"]
PowerSource = Literal["ina3221", "tegrastats", "nvml", "rapl", "none"]


def suggestion(word: str, known: list[str]) -> str:
    """"; did you mean 'x'?" for the closest known word, or "" when nothing is close."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def complete_profile(incomplete: str) -> list[str]:
    """Shell completion for --profile: the profile names on the search path."""
    from edge.config import available_profiles

    return [name for name in available_profiles() if name.startswith(incomplete)]


def check_profile(value: str | None) -> str | None:
    """A profile name or YAML path that resolves, or BadParameter with the closest name."""
    if value is None:
        return None
    from edge.config import available_profiles, resolve_profile_path

    try:
        resolve_profile_path(value)
    except EdgeError as e:
        raise typer.BadParameter(f"{e}{suggestion(value, available_profiles())}") from None
    return value


def check_profiles(values: list[str] | None) -> list[str] | None:
    """`check_profile` for each value of a repeated --profile."""
    for value in values or ():
        check_profile(value)
    return values


def check_cameras(values: list[str] | None) -> list[str] | None:
    """Camera specs that parse (kind, size, names): a bad spec is refused before any import."""
    if values:
        from drivers.camera.configs import parse_named_specs
        from drivers.errors import DriverError

        try:
            parse_named_specs(values)
        except DriverError as e:
            raise typer.BadParameter(str(e)) from None
    return values


def check_camera(value: str | None) -> str | None:
    """`check_cameras` for an option that takes one camera."""
    return value if value is None else check_cameras([value])[0]


def hide_flag_types(command) -> None:
    """Show on/off flags and counters bare in help, not as `<bool>`/`<int>` options that seem to
    want a value (typer labels every option with its type). Walks a click group and its
    subcommands, including the help option click creates per context."""
    for param in getattr(command, "params", ()):
        _bare_flag(param)
    make_help_option = command.get_help_option
    command.get_help_option = lambda ctx: _bare_flag(make_help_option(ctx))
    for sub in getattr(command, "commands", {}).values():
        hide_flag_types(sub)


def _bare_flag(param):
    if param is not None and (getattr(param, "is_flag", False) or getattr(param, "count", False)):
        if param.metavar is None:
            param.metavar = ""
        if getattr(param, "count", False):
            param.show_default = False
    return param


def usage_error_line(error) -> str:
    """A click usage error as one line: what is wrong, which option, where the options are listed."""
    command = error.ctx.command_path if getattr(error, "ctx", None) is not None else "tinyvla-edge"
    param = getattr(error, "param", None)
    hint = getattr(error, "param_hint", None) or (param.get_error_hint() if param is not None else None)
    if hint and str(getattr(error, "message", "")).strip():  # a bad value: the reason first, as commands word theirs
        # typer's coercion wraps the real reason in "Value error, ".
        message = " ".join(str(error.message).split()).removeprefix("Value error, ")
        return f"error: {message} (option {hint}; see {command} -h)"
    return f"error: {' '.join(error.format_message().split())} (see {command} -h)"

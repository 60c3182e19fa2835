"""The one exception type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations

__all__ = ["QuantsweepError", "did_you_mean", "first_line"]


class QuantsweepError(Exception):
    """A user-facing error: what is wrong, with which file or value, and how to fix it.

    Args:
        message: what went wrong, naming the offending file or value.
        fix: what the user should do about it (appended after " — ").
    """

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(f"{message} — {fix}" if fix else message)


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """A "Did you mean 'x'?" hint for ``name`` among ``choices`` ('' when nothing is close)."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""


def first_line(exc: BaseException, limit: int = 200, default: str = "") -> str:
    """The first non-empty line of ``str(exc)``, at most ``limit`` characters (``default`` when empty)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else default

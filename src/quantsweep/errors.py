"""The one exception type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations

__all__ = ["QuantsweepError", "did_you_mean", "first_line"]


class QuantsweepError(Exception):
    """A user-facing error: what is wrong, with which file or value, and how to fix it.

    Args:
        message: what went wrong, naming the offending file or value. The library speaks in its own
            terms (``conf must be in [0, 1]``), never in command-line flags.
        fix: what the user should do about it (appended after " — ").
        setting: the parameter the message is about, when it is one (``"conf"``); the CLI shows it
            as its flag (``--conf``) with :meth:`as_flag`.
    """

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None, setting: str | None = None) -> None:
        self.message = message
        self.fix = fix
        self.setting = setting
        super().__init__(f"{message} — {fix}" if fix else message)

    def as_flag(self, flags: dict[str, str] | None = None) -> str:
        """The message with its setting named as the command-line flag (``max_det`` -> ``--max-det``,
        or ``flags[setting]`` where a command names it differently)."""
        import re

        text = str(self)
        if not self.setting:
            return text
        flag = (flags or {}).get(self.setting) or "--" + self.setting.replace("_", "-")
        return re.sub(rf"\b{re.escape(self.setting)}\b", flag, text)


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """A "Did you mean 'x'?" hint for ``name`` among ``choices`` ('' when nothing is close)."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""


def first_line(exc: BaseException, limit: int = 200, default: str = "") -> str:
    """The first non-empty line of ``str(exc)``, at most ``limit`` characters (``default`` when empty)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else default

"""Click options generated from the option dataclasses of :mod:`jfjoch.options` (declared once).

Every option reaches the command as the raw text the user typed (or None when not given), and the
dataclass's own parser validates it, so the command line and the Python API share one set of checks and
one set of defaults. Help panels (rich-click) come from the fields' ``panel`` metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING

import rich_click as click

from ..options import Options, option_fields

__all__ = ["add_options", "option_panels", "options_from_click"]


def _show_default(f) -> str | None:
    d = f.default
    if d is MISSING or d is None or d is False:
        return None
    if isinstance(d, tuple):
        return ",".join(f"{x:g}" for x in d)
    return str(d)


def add_options(cls: type[Options]) -> Callable:
    """Decorator adding one click option per option field of ``cls`` (in declaration order)."""

    def deco(fn: Callable) -> Callable:
        for f in reversed(option_fields(cls)):
            m = f.metadata
            help_text = m["help"]
            shown = _show_default(f)
            if shown is not None and not m["flag"]:
                help_text += f"  [default: {shown}]"
            kw: dict = {"help": help_text, "default": None}
            if m["flag"]:
                kw.update(is_flag=True, default=None, flag_value=True)
            else:
                kw["type"] = str
                if m["metavar"]:
                    kw["metavar"] = m["metavar"]
                if m["flag_value"] is not None:
                    kw.update(is_flag=False, flag_value=str(m["flag_value"]))
            fn = click.option(*m["decls"], f.name, **kw)(fn)
        return fn

    return deco


def options_from_click(cls: type[Options], values: dict) -> Options:
    """The options object from click's values: options not given keep the dataclass defaults."""
    names = {f.name for f in option_fields(cls)}
    given = {k: v for k, v in values.items() if k in names and v is not None}
    return cls(**given).validate()


def option_panels(cls: type[Options], command: str, extra_general: tuple[str, ...] = ("--help", "--version")) -> dict:
    """rich-click OPTION_GROUPS entry for ``command``: one panel per distinct ``panel`` metadata."""
    panels: dict[str, list[str]] = {}
    for f in option_fields(cls):
        longs = [d for d in f.metadata["decls"] if d.startswith("--")]
        panels.setdefault(f.metadata["panel"], []).append(longs[0])
    panels.setdefault("General", []).extend(extra_general)
    return {command: [{"name": name, "options": opts} for name, opts in panels.items()]}

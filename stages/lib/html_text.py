"""Text for the self-contained HTML pages (the drift report, the monitor timeline): escaped values, and numbers
as a person reads them (thousands separated, a dash for a missing or undefined value)."""

from __future__ import annotations

import html
import math
from typing import Any


def escaped(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 3, small_in_g: bool = False) -> str:
    """`value` for a table cell; with `small_in_g`, magnitudes below 0.001 in %g (a p-value of 1e-12 is not 0.000)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if small_in_g and abs(value) < 1e-3 and value != 0:
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}"


def signed(value: float, digits: int = 3) -> str:
    """`value` with its sign, and no sign when it rounds to zero at `digits` decimals (never "-0.000")."""
    text = f"{value:+.{digits}f}"
    return text[1:] if float(text) == 0 else text

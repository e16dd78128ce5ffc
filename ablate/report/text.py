"""Numbers and markdown tables as text: one definition for reports, the bench report and the CLI.

Light on purpose (no pandas, no plotting), so the command line can format a table without
importing the analysis stack. Missing values (None, NaN, pandas' NA) print as "-".
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence


def _isnan(x: Any) -> bool:
    """None, NaN or pandas' NA (recognised by its type's name: pandas is not imported here)."""
    if x is None or type(x).__name__ == "NAType":
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, digits: int = 2, signed: bool = False) -> str:
    if _isnan(x):
        return "-"
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    # Accuracies are multiples of 1/val_size, so means and differences of them often sit exactly on
    # a rounding boundary (0.875 points); the last bits of the float then depend on the order of the
    # arithmetic (numpy's or a BLAS's), and would flip the printed digit. Rounded first to 9
    # decimals, the boundary case rounds one way on every machine (half to even).
    x = round(x, 9) + 0.0  # + 0.0: no "-0.00"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def fmt_p(p: Any) -> str:
    if _isnan(p):
        return "-"
    p = float(p)
    if p < 1e-4:
        return "<0.0001"
    return f"{p:.4f}" if p < 0.1 else f"{p:.3f}".rstrip("0").rstrip(".") if p < 1 else "1"


def _head(mean: Any, scale: float, digits: int, signed: bool) -> str | None:
    """The scaled, formatted mean every "mean ..." cell starts with; None when there is none."""
    return None if _isnan(mean) else fmt(float(mean) * scale, digits, signed)


def fmt_ci(
    mean: Any,
    low: Any,
    high: Any,
    n: int,
    scale: float = 1.0,
    digits: int = 2,
    signed: bool = False,
    compact: bool = False,
) -> str:
    """``"mean [low, high]"``; with fewer than two values, the mean and "no CI (n=1)". ``compact``
    (terminals): ``"mean ±half"`` of the symmetric interval, ``"mean (n=1)"`` without one."""
    head = _head(mean, scale, digits, signed)
    if head is None:
        return "-"
    if n < 2 or _isnan(low):
        return f"{head} (n={n})" if compact else f"{head} (no CI, n={n})"
    if compact:
        return f"{head} ±{fmt((float(high) - float(low)) / 2 * scale, digits)}"
    return f"{head} [{fmt(float(low) * scale, digits, signed)}, {fmt(float(high) * scale, digits, signed)}]"


def fmt_pm(mean: Any, low: Any, high: Any, n: int, scale: float = 1.0, digits: int = 2, signed: bool = False) -> str:
    """:func:`fmt_ci` in its compact form, ``"mean ±half"`` (the CLI's tables)."""
    return fmt_ci(mean, low, high, n, scale, digits, signed, compact=True)


def fmt_sd(mean: Any, sd: Any, scale: float = 1.0, digits: int = 2) -> str:
    """``"mean ± sd"``; the mean alone when there is no sd (one value)."""
    head = _head(mean, scale, digits, False)
    if head is None:
        return "-"
    return head if _isnan(sd) else f"{head} ± {fmt(float(sd) * scale, digits)}"


def level_text(value: Any) -> str:
    """An axis level as variant slugs and experiment files spell it: ``false`` for the bool False
    and for ``"False"`` (how a report's CSV or frame stores it), anything else as ``str``."""
    text = str(value)
    return text.lower() if text in ("True", "False") else text


def code(value: Any) -> str:
    """``value`` as inline markdown code (variant names, file names)."""
    return f"`{value}`"


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured markdown table; ``align`` per column: "l" or "r"."""
    align = list(align or ["l"] + ["r"] * (len(headers) - 1))
    lines = [
        "| " + " | ".join(_md_escape(h) for h in headers) + " |",
        "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
    return "\n".join(lines)

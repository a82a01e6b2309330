"""Tab alignment, as Go's ``text/tabwriter`` does it, and kubectl's PrefixWriter.

kubectl builds a description as lines of tab-separated cells written at an
indentation level, then aligns them with ``tabwriter.NewWriter(out, 0, 8, 2,
' ', 0)``: a run of consecutive lines that have a cell in a column shares
that column's width, and a line without a tab ends the run.
"""

from __future__ import annotations


def tabwrite(text: str, padding: int = 2) -> str:
    """Align tab-separated cells like ``tabwriter.NewWriter(out, 0, 8, padding, ' ', 0)``."""
    rows = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    _format_block(rows, 0, len(rows), [], padding, out)
    return "\n".join(out)


def _format_block(
    rows: list[list[str]], start: int, end: int, widths: list[int], padding: int, out: list[str]
) -> None:
    column = len(widths)
    line0 = this = start
    while this < end:
        if column >= len(rows[this]) - 1:
            this += 1
            continue
        _emit_rows(rows, line0, this, widths, out)
        line0 = this
        width = 0
        while this < end and column < len(rows[this]) - 1:
            width = max(width, len(rows[this][column]) + padding)
            this += 1
        _format_block(rows, line0, this, [*widths, width], padding, out)
        line0 = this
    _emit_rows(rows, line0, end, widths, out)


def _emit_rows(
    rows: list[list[str]], start: int, end: int, widths: list[int], out: list[str]
) -> None:
    for row in rows[start:end]:
        out.append(
            "".join(
                cell.ljust(widths[j]) if j < len(widths) else cell for j, cell in enumerate(row)
            )
        )


class PrefixWriter:
    """kubectl's PrefixWriter: text at two spaces per level, aligned when rendered."""

    def __init__(self) -> None:
        self._segments: list[list[str]] = [[]]

    def write(self, level: int, text: str) -> None:
        self._segments[-1].append("  " * level + text)

    def flush(self) -> None:
        """End the current alignment run, as kubectl does before the events table."""
        self._segments.append([])

    def render(self) -> str:
        return "".join(tabwrite("".join(segment)) for segment in self._segments)

"""Markdown tables, as the commands print them and the README quotes them."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(headings: Sequence[str], rows: Sequence[Sequence[str]], right_aligned: Sequence[bool] = ()) -> str:
    """A GitHub Markdown table of already formatted cells; `right_aligned[i]` aligns column i right (numbers)."""
    alignment = [right_aligned[i] if i < len(right_aligned) else False for i in range(len(headings))]
    lines = [
        "| " + " | ".join(headings) + " |",
        "|" + "|".join("---:" if right else "---" for right in alignment) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"

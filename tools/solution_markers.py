r"""Solution markers in an instructor notebook: ``### BEGIN SOLUTION`` / ``### END SOLUTION`` regions, checked strictly,
and the student's stub that replaces each one (``raise NotImplementedError("TODO: <hint>")``).

>>> print(stub_solutions("x = 1\n# TODO: add one\n### BEGIN SOLUTION\ny = x + 1\n### END SOLUTION"))
x = 1
# TODO: add one
raise NotImplementedError("TODO: add one")
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from nbformat import NotebookNode

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
DEFAULT_HINT = "fill in this cell"
TAG_SOLUTION = "solution"  # instructor tag: this code cell holds solution regions
_TODO_RE = re.compile(r"^\s*#\s*TODO:\s*(.*?)\s*$")

class NotebookMarkerError(ValueError):
    """A solution-marker mistake, located by notebook path, cell index (0-based, all cells) and line (1-based)."""

    def __init__(self, path: str | Path, cell: int, line: int | None, problem: str) -> None:
        self.path, self.cell, self.line = str(path), cell, line
        where = f"{path}: cell {cell}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {problem}")


def marker_kind(line: str) -> str | None:
    """'begin', 'end' or None for one source line (surrounding whitespace ignored).

    >>> marker_kind("    ### BEGIN SOLUTION"), marker_kind("### END SOLUTION"), marker_kind("# BEGIN SOLUTION")
    ('begin', 'end', None)
    """
    text = line.strip()
    return "begin" if text == BEGIN else "end" if text == END else None


def has_markers(source: str) -> bool:
    """True when any line of `source` is a BEGIN or END marker.

    >>> has_markers("x = 1\\n  ### END SOLUTION"), has_markers("x = 1")
    (True, False)
    """
    return any(marker_kind(line) for line in source.splitlines())


def find_regions(source: str, path: str | Path = "<notebook>", cell: int = 0) -> list[tuple[int, int]]:
    """0-based (BEGIN line, END line) pairs in `source`; raises `NotebookMarkerError` on nested or unpaired markers.

    >>> find_regions("a = 1\\n### BEGIN SOLUTION\\nb = 2\\n### END SOLUTION")
    [(1, 3)]
    >>> find_regions("### END SOLUTION", "solutions/01_x.ipynb", 4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tools.solution_markers.NotebookMarkerError: solutions/01_x.ipynb: cell 4, line 1: '### END SOLUTION' without a BEGIN ...
    """
    regions: list[tuple[int, int]] = []
    begin: int | None = None
    for i, line in enumerate(source.splitlines()):
        kind = marker_kind(line)
        if kind == "begin" and begin is not None:
            raise NotebookMarkerError(
                path,
                cell,
                i + 1,
                f"nested '{BEGIN}' (the region opened on line {begin + 1} has no END yet); "
                f"add '{END}' before this line",
            )
        if kind == "begin":
            begin = i
        elif kind == "end" and begin is None:
            raise NotebookMarkerError(
                path,
                cell,
                i + 1,
                f"'{END}' without a BEGIN above it; add '{BEGIN}' before the solution or delete this line",
            )
        elif kind == "end":
            regions.append((begin, i))  # type: ignore[arg-type]  # begin is set here
            begin = None
    if begin is not None:
        raise NotebookMarkerError(
            path, cell, begin + 1, f"'{BEGIN}' without an END; add '{END}' after the solution code"
        )
    return regions


def todo_hint(lines: list[str], begin: int) -> str:
    """Hint for the region opening at `begin`: the whole `# TODO:` comment right above it, its continuation lines
    joined (up to the BEGIN line or an empty `#` line), so the stub never cuts a sentence.

    >>> todo_hint(["# TODO: mask the prompt tokens", "# (labels are -100 there)", "### BEGIN SOLUTION"], 2)
    'mask the prompt tokens (labels are -100 there)'
    >>> todo_hint(["# TODO: not this one", "x = 1", "### BEGIN SOLUTION"], 2)
    'fill in this cell'
    """
    block: list[str] = []
    for line in reversed(lines[:begin]):
        if not line.strip().startswith("#") or marker_kind(line):
            break  # code, a blank line or the previous region's END ends the comment block
        block.insert(0, line)
    start = next((i for i in range(len(block) - 1, -1, -1) if _TODO_RE.match(block[i])), None)
    if start is None:
        return DEFAULT_HINT
    words = [_TODO_RE.match(block[start]).group(1)]  # type: ignore[union-attr]  # matched just above
    for line in block[start + 1:]:
        text = line.strip().lstrip("#").strip()
        if not text:
            break  # an empty comment line ends the TODO's paragraph
        words.append(text)
    return " ".join(w for w in words if w) or DEFAULT_HINT


def stub_line(indent: str, hint: str) -> str:
    """The line that replaces one solution region.

    >>> print(stub_line("    ", 'use "-100"'))
        raise NotImplementedError("TODO: use \\"-100\\"")
    """
    return f"{indent}raise NotImplementedError({json.dumps('TODO: ' + hint, ensure_ascii=False)})"


def stub_solutions(source: str, path: str | Path = "<notebook>", cell: int = 0) -> str:
    """`source` with every solution region replaced by a `NotImplementedError` stub at the BEGIN line's indent.

    >>> source = "def f(x):\\n    # TODO: double x\\n    ### BEGIN SOLUTION\\n    return 2 * x\\n    ### END SOLUTION"
    >>> print(stub_solutions(source))
    def f(x):
        # TODO: double x
        raise NotImplementedError("TODO: double x")
    """
    lines = source.splitlines()
    out: list[str] = []
    done = 0
    for begin, end in find_regions(source, path, cell):
        out += lines[done:begin]
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        out.append(stub_line(indent, todo_hint(lines, begin)))
        done = end + 1
    out += lines[done:]
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


def cell_tags(cell: NotebookNode) -> list[str]:
    """The cell's tags (empty list when it has none)."""
    return list(cell.get("metadata", {}).get("tags", []))


def check_markers(nb: NotebookNode, path: str | Path) -> None:
    """Raise `NotebookMarkerError` for the first marker mistake in `nb` (markdown, untagged, unpaired, nested)."""
    for i, cell in enumerate(nb.cells):
        tagged = TAG_SOLUTION in cell_tags(cell)
        lines = cell.source.splitlines()
        first = next((n for n, line in enumerate(lines) if marker_kind(line)), None)
        if cell.cell_type != "code" and first is not None:
            raise NotebookMarkerError(
                path,
                i,
                first + 1,
                f"solution marker in a {cell.cell_type} cell; only code cells can hold solutions, "
                "so move the solution to a code cell or delete the marker",
            )
        if cell.cell_type != "code":
            continue
        find_regions(cell.source, path, i)  # pairing first: its message is the more precise one
        if first is not None and not tagged:
            raise NotebookMarkerError(
                path,
                i,
                first + 1,
                f"solution markers in a cell without the '{TAG_SOLUTION}' tag; add the tag "
                "(JupyterLab: Property Inspector > Common Tools > Cell Tags)",
            )
        if tagged and first is None:
            head = lines[0] if lines else ""
            raise NotebookMarkerError(
                path,
                i,
                None,
                f"tagged '{TAG_SOLUTION}' but has no '{BEGIN}'/'{END}' markers (first line {head!r}); "
                "add the markers around the solution or remove the tag",
            )

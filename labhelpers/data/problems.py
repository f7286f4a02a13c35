"""What is wrong with a dataset, said so a person can fix it: the error for a bad file and the problem of one row.

Shared by `labhelpers.data.datasets` (loading, validation) and `labhelpers.data.formats` (conversion), which both raise and collect
them; kept apart so neither module imports the other for its error types. Both classes keep their public home,
``labhelpers.data.datasets``, in tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass


class DatasetFileError(ValueError):
    """A dataset file is missing, unreadable or has the wrong shape; the message names the file and the fix."""

    __module__ = "labhelpers.data.datasets"  # students and docs meet it as labhelpers.data.datasets.DatasetFileError


@dataclass(frozen=True)
class RowProblem:
    """What is wrong with one row: where (index, prompt_id, field), what (reason, detail) and the fix."""

    __module__ = "labhelpers.data.datasets"  # its public home

    index: int  # row position in the rows given
    prompt_id: str | None  # the row's prompt_id, if it has one
    field: str  # e.g. "messages[3]" or "messages[0].content"
    reason: str  # short, countable, e.g. "last turn is not 'assistant'"
    detail: str  # the specific case, e.g. "last turn is 'user'"
    fix: str  # e.g. "append an assistant reply or drop the row"

    def __str__(self) -> str:
        """One line: ``row 3 (prompt_id 'ab12…'), messages[1]: detail; fix``."""
        pid = "" if self.prompt_id is None else f" (prompt_id {_short(self.prompt_id)!r})"
        return f"row {self.index}{pid}, {self.field}: {self.detail}; {self.fix}"


def _short(prompt_id: str) -> str:
    """First 8 characters of a long id, with an ellipsis.

    >>> _short("ab12cd34ef56"), _short("r1")
    ('ab12cd34…', 'r1')
    """
    return prompt_id if len(prompt_id) <= 8 else prompt_id[:8] + "…"

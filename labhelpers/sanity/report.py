"""Findings and the report that collects them: a terminal table for scripts, a coloured table for notebooks."""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

Status = Literal["pass", "warn", "fail"]
STATUSES: tuple[str, ...] = ("pass", "warn", "fail")
_COLOURS = {"pass": "#d4edda", "warn": "#fff3cd", "fail": "#f8d7da"}  # background per status (Bootstrap tones)


@dataclass(frozen=True)
class Finding:
    """One check's verdict: a stable snake_case ``check`` id, its status, what was measured and how to fix it.

    >>> Finding("warmup", "warn", "no warmup at lr 2e-4", "set warmup_steps=0.05").status
    'warn'
    >>> Finding("x", "ok", "", "")
    Traceback (most recent call last):
    ...
    ValueError: Finding('x'): status 'ok' is not one of ('pass', 'warn', 'fail'); use one of them
    """

    check: str  # stable snake_case id, e.g. "prompt_tokens_trained"
    status: Status  # "pass", "warn" or "fail"
    message: str  # what was measured, with the numbers
    fix: str = ""  # what to change; empty for a pass

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Finding({self.check!r}): status {self.status!r} is not one of {STATUSES}; use one of them")


@dataclass(repr=False)  # repr is the terminal table (see __repr__), not a wall of dataclass fields
class SanityReport:
    """The findings of a sanity pass, plus optional extras (e.g. ``extras["example"]``, a rendered batch row).

    >>> r = SanityReport([Finding("a", "pass", "fine", ""), Finding("b", "fail", "bad", "fix it")])
    >>> r.ok, [f.check for f in r.failed], r.by_check("a").message
    (False, ['b'], 'fine')
    """

    findings: list[Finding] = field(default_factory=list)
    title: str = "sanity report"
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no finding failed (warnings allowed)."""
        return not self.failed

    @property
    def failed(self) -> list[Finding]:
        """Findings with status 'fail'."""
        return [f for f in self.findings if f.status == "fail"]

    @property
    def warnings(self) -> list[Finding]:
        """Findings with status 'warn'."""
        return [f for f in self.findings if f.status == "warn"]

    def by_check(self, check: str) -> Finding | None:
        """The finding with this check id (the worst one when a check reported several), else None.

        >>> SanityReport([Finding("a", "pass", "", "")]).by_check("zzz") is None
        True
        """
        hits = [f for f in self.findings if f.check == check]
        return max(hits, key=lambda f: STATUSES.index(f.status)) if hits else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (findings as dicts); :meth:`from_dict` rebuilds the report.

        >>> r = SanityReport([Finding("a", "warn", "m", "f")], title="t", extras={"losses": [1.0]})
        >>> SanityReport.from_dict(r.to_dict()).to_dict() == r.to_dict()
        True
        """
        return {"title": self.title, "extras": self.extras, "findings": [dataclasses.asdict(f) for f in self.findings]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SanityReport:
        """The report :meth:`to_dict` described."""
        return cls([Finding(**f) for f in values["findings"]], values["title"], dict(values["extras"]))

    def __repr__(self) -> str:
        return str(self)

    def extend(self, findings: Iterable[Finding]) -> None:
        """Append findings."""
        self.findings.extend(findings)

    def summary(self) -> str:
        """One line: counts per status.

        >>> SanityReport([Finding("a", "warn", "", "")]).summary()
        'sanity report: 0 fail, 1 warn, 0 pass -> OK'
        """
        n = {s: sum(f.status == s for f in self.findings) for s in STATUSES}
        verdict = "OK" if self.ok else "FAIL"
        return f"{self.title}: {n['fail']} fail, {n['warn']} warn, {n['pass']} pass -> {verdict}"

    def __str__(self) -> str:
        rows = [(f.status.upper(), f.check, f.message, f.fix) for f in self.findings]
        headers = ("status", "check", "message", "fix")
        widths = [min(60, max([len(h)] + [len(r[i]) for r in rows])) for i, h in enumerate(headers)]
        def line(cells: Iterable[str]) -> str:
            return " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        out = [line(headers), "-+-".join("-" * w for w in widths)] + [line(r) for r in rows]
        return "\n".join(out + [self.summary()])

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr style='background:{_COLOURS[f.status]}'><td><b>{f.status.upper()}</b></td>"
            f"<td><code>{html.escape(f.check)}</code></td><td>{html.escape(f.message)}</td>"
            f"<td>{html.escape(f.fix)}</td></tr>"
            for f in self.findings
        )
        table = (f"<p><b>{html.escape(self.summary())}</b></p><table><tr><th>status</th><th>check</th>"
                 f"<th>message</th><th>fix</th></tr>{cells}</table>")
        example = self.extras.get("example")
        if example is not None and hasattr(example, "_repr_html_"):
            table += "<p>First training row (green = trained, grey = masked):</p>" + example._repr_html_()
        return table

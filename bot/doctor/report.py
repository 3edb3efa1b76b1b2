"""The doctor's findings: one PASS, WARN or FAIL line each, printed as soon as it is known."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class Mark(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    mark: Mark
    subject: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.mark}  {self.subject}: {self.detail}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


def passed(subject: str, detail: str) -> Finding:
    return Finding(Mark.PASS, subject, detail)


def warned(subject: str, detail: str, fix: str = "") -> Finding:
    return Finding(Mark.WARN, subject, detail, fix)


def failed(subject: str, detail: str, fix: str) -> Finding:
    return Finding(Mark.FAIL, subject, detail, fix)


@dataclass
class Report:
    """Findings in the order they were made; each is printed as soon as it is known."""

    emit: Callable[[str], None] = print
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> Finding:
        self.findings.append(finding)
        self.emit(finding.line())
        return finding

    @property
    def failures(self) -> int:
        return sum(finding.mark is Mark.FAIL for finding in self.findings)

    def summary(self) -> str:
        warnings = sum(finding.mark is Mark.WARN for finding in self.findings)
        if self.failures:
            return f"check failed: {self.failures} problem(s), {warnings} warning(s)"
        return f"check passed ({warnings} warning(s))" if warnings else "check passed"


def short(error: BaseException) -> str:
    """The error's type and first 200 characters, on one line (a driver error's cause)."""
    original = getattr(error, "orig", None) or error
    message = " ".join(str(original).split())[:200]
    return f"{type(original).__name__}: {message}" if message else type(original).__name__

"""Prints the fault suite's counts at the end of the run, whether or not its tests failed."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.e2e.test_faults import REPORTS

    if REPORTS:
        terminalreporter.section("fault suite counts")
        for line in REPORTS:
            terminalreporter.write_line(line)

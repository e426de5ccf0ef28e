"""The README's Quickstart is what CI runs: keep the two in step."""

from __future__ import annotations

import re

from tests.conftest import REPO


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```(?:bash|sh)?\n(.*?)```", quick, re.S)
    lines = [c.strip() for c in commands]
    assert len(lines) == 2, "the Quickstart has exactly two commands"
    ci = (REPO / ".ci" / "run").read_text()
    assert lines[1] in ci

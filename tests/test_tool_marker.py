"""`@pytest.mark.needs_tool(...)`: a test that needs a missing program skips on a developer's machine and
fails in CI (tests/conftest.py decides, in one place)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.conftest import PROJECT, SYSTEM_DEPS_HINT, Tool, find_tool

# A tiny test suite run by a real pytest with this project's configuration (pyproject.toml: the marker's
# registration, --strict-markers) and this project's conftest, loaded as a plugin. `absent` is a tool no
# machine has; `present` is the shell every machine has.
TINY_CONFTEST = """
from pathlib import Path

from tests.conftest import TOOLS, Tool

pytest_plugins = ["tests.conftest"]
TOOLS["absent"] = Tool(("no-such-tool-x1", Path("/no/such/dir/no-such-tool-x2")))
TOOLS["present"] = Tool(("sh",))
"""
TINY_TESTS = """
import shutil

import pytest


@pytest.mark.needs_tool("absent")
def test_needs_the_absent_tool():
    raise AssertionError("ran although its tool is missing")


@pytest.mark.needs_tool("present")
def test_needs_the_present_tool(tools):
    assert tools == {"present": shutil.which("sh")}


@pytest.mark.needs_tool("no-such-name")
def test_names_a_tool_the_table_does_not_know():
    raise AssertionError("ran although its tool is unknown")
"""


def run_tiny_suite(folder: Path, ci: str | None) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """Run the tiny suite with `CI` set to `ci` (None: unset): pytest's result, and each test's outcome
    (passed, skipped, failure or error) from its JUnit XML report."""
    (folder / "conftest.py").write_text(TINY_CONFTEST)
    (folder / "test_tiny.py").write_text(TINY_TESTS)
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "PYTEST_ADDOPTS")}
    env |= {"PYTHONPATH": str(PROJECT), **({"CI": ci} if ci is not None else {})}
    report = folder / "report.xml"
    command = [sys.executable, "-m", "pytest", "-c", str(PROJECT / "pyproject.toml"), "--rootdir", str(folder), "-p", "no:cacheprovider"]
    command += [f"--junitxml={report}", str(folder / "test_tiny.py")]
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    cases = ElementTree.parse(report).getroot().iter("testcase")
    outcomes = {
        case.get("name"): next((child.tag for child in case if child.tag in ("skipped", "failure", "error")), "passed") for case in cases
    }
    return result, outcomes


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_a_missing_tool_skips_the_test_outside_ci(tmp_path, ci):
    result, outcomes = run_tiny_suite(tmp_path, ci)
    assert outcomes == {
        "test_needs_the_absent_tool": "skipped",
        "test_needs_the_present_tool": "passed",
        "test_names_a_tool_the_table_does_not_know": "error",
    }, result.stdout
    assert f"absent is not installed ({SYSTEM_DEPS_HINT})" in result.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_missing_tool_fails_the_test_in_ci(tmp_path, ci):
    result, outcomes = run_tiny_suite(tmp_path, ci)
    assert outcomes == {
        "test_needs_the_absent_tool": "error",  # failed in its set-up, before the test body runs
        "test_needs_the_present_tool": "passed",
        "test_names_a_tool_the_table_does_not_know": "error",
    }, result.stdout
    assert result.returncode == 1
    assert f"absent is not installed ({SYSTEM_DEPS_HINT}); CI must run every test, so this one fails instead of skipping" in result.stdout
    assert "unknown tool 'no-such-name' in needs_tool: add it to TOOLS in tests/conftest.py" in result.stdout


def test_a_tool_is_found_by_name_on_path_or_by_file_path(tmp_path):
    assert find_tool(Tool(("no-such-tool-x1", "sh"))) == shutil.which("sh")
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\n")
    assert find_tool(Tool((tmp_path / "missing", script))) == str(script)
    assert find_tool(Tool(("no-such-tool-x1", tmp_path / "missing"))) is None


def test_tests_name_their_tools_with_the_marker():
    """No test skips on a missing tool by itself (that would pass CI without running), and no test looks for
    a tool except through the marker: `require_tool` is called by tests/conftest.py and the servers only."""
    skips, lookups = [], []
    for path in sorted((PROJECT / "tests").glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"skipif\(.*(which|is None|exists)|pytest\.skip\(", line) and path.name != "conftest.py":
                skips.append(f"{path.name}:{number}")
            if re.search(r"\b(require_tool|shutil\.which)\(", line) and path.name not in ("conftest.py", "servers.py", Path(__file__).name):
                lookups.append(f"{path.name}:{number}")
    assert skips == [] and lookups == []

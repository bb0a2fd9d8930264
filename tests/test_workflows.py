"""The GitHub workflows and CI scripts: linted offline with zero findings, least privilege, pinned, thin."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT

WORKFLOWS = sorted((PROJECT / ".github/workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # actionlint finds shellcheck here


def tool(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / command[0]), *command[1:]], cwd=PROJECT, env=ENV, capture_output=True, text=True, timeout=300)


def test_there_are_ci_and_report_workflows():
    assert [path.name for path in WORKFLOWS] == ["ci.yml", "pr-report.yml"]


def test_actionlint_with_shellcheck_finds_nothing():
    result = tool("actionlint", *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_the_vendored_github_schema():
    result = tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_offline_finds_nothing():
    result = tool("zizmor", "--offline", "--no-progress", ".github/workflows")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout


def test_shellcheck_passes_on_the_ci_scripts():
    scripts = [path for path in (PROJECT / ".ci").iterdir() if path.is_file()]
    result = tool("shellcheck", *map(str, scripts))
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_least_privilege_pinned_and_no_untrusted_expressions_in_run(path):
    workflow = yaml.safe_load(path.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "pull_request_target" not in triggers
    assert workflow["permissions"] == {}  # nothing by default; each job asks for what it needs
    for name, job in workflow["jobs"].items():
        assert set(job["permissions"]) <= {"contents", "pull-requests"}, name
        assert job["permissions"].get("contents") == "read", name
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]  # pinned by commit SHA
            if "run" in step:
                assert "${{" not in step["run"], step["run"]  # expressions go through env:, never into the shell
                assert re.fullmatch(r"(make [\w-]+.*|\.ci/[\w-]+.*)", step["run"].strip()), step["run"]  # thin: make or .ci/
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_only_the_report_job_may_write_and_only_to_pull_requests():
    writers = {
        (path.name, name): job["permissions"]
        for path in WORKFLOWS
        for name, job in yaml.safe_load(path.read_text())["jobs"].items()
        if "write" in job["permissions"].values()
    }
    assert writers == {("pr-report.yml", "report"): {"contents": "read", "pull-requests": "write"}}


def test_make_targets_the_workflows_call_exist():
    targets = set(re.findall(r"^([a-z-]+):", (PROJECT / "Makefile").read_text(), flags=re.MULTILINE))
    runs = [step.get("run", "") for path in WORKFLOWS for job in yaml.safe_load(path.read_text())["jobs"].values() for step in job["steps"]]
    called = {match for run in runs for match in re.findall(r"^make ([a-z-]+)", run)}
    assert called and called <= targets


@pytest.mark.slow
def test_every_pre_commit_hook_passes_on_a_clean_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(clone)], check=True, timeout=120)
    (clone / ".venv").symlink_to(BIN.parent)  # the hooks that are `language: system` use the project's venv
    result = subprocess.run(
        [str(BIN / "pre-commit"), "run", "--all-files"], cwd=clone, env=ENV, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Failed" not in result.stdout


GH_STUB = """#!/usr/bin/env bash
# Stands in for the GitHub CLI (no GitHub here): lists canned comments, records writes.
echo "$*" >> "$STUB_LOG"
if [[ "$*" == *--paginate* ]]; then
  printf '%s' "$STUB_COMMENTS" | jq -r "${@: -1}"  # the --jq filter is the last argument
else
  cat > "$STUB_BODY"
fi
"""


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (`make test` installs it when run as root)")
@pytest.mark.parametrize("existing", [False, True], ids=["creates", "updates"])
def test_pr_comment_creates_one_sticky_comment_then_updates_it(tmp_path, existing):
    """The GitHub API cannot be reached here, so `gh` is a stub; the upsert logic and the body are real."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(GH_STUB)
    (bin_dir / "gh").chmod(0o755)
    report = tmp_path / "report.md"
    report.write_text('<!-- mlops-pr-report -->\n## Report with "quotes" and `code`\n')
    comments = [{"id": 11, "body": "a human comment"}] + ([{"id": 42, "body": "<!-- mlops-pr-report -->\nold"}] if existing else [])
    env = {
        **ENV,
        "PATH": f"{bin_dir}{os.pathsep}{ENV['PATH']}",
        "PR_NUMBER": "7",
        "GITHUB_REPOSITORY": "team/project",
        "STUB_LOG": str(tmp_path / "calls.log"),
        "STUB_BODY": str(tmp_path / "body.json"),
        "STUB_COMMENTS": json.dumps(comments),
    }
    result = subprocess.run([str(PROJECT / ".ci/pr-comment"), str(report)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    write = calls[-1]
    if existing:
        assert write.startswith("api --method PATCH repos/team/project/issues/comments/42")
    else:
        assert write.startswith("api --method POST repos/team/project/issues/7/comments")
    assert json.loads((tmp_path / "body.json").read_text()) == {"body": report.read_text()}


def test_pr_comment_refuses_a_file_without_the_marker(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("# not a report\n")
    env = {**ENV, "PR_NUMBER": "7", "GITHUB_REPOSITORY": "team/project"}
    result = subprocess.run([str(PROJECT / ".ci/pr-comment"), str(report)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "does not start with <!-- mlops-pr-report -->" in result.stderr

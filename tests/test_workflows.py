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

from tests.conftest import PROJECT, tool_env

WORKFLOWS = sorted((PROJECT / ".github/workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # actionlint finds shellcheck here
TOOLS = tool_env()  # real git and dvc in temporary repositories


def tool(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / command[0]), *command[1:]], cwd=PROJECT, env=ENV, capture_output=True, text=True, timeout=300)


def test_there_are_ci_report_and_comment_workflows():
    assert [path.name for path in WORKFLOWS] == ["ci.yml", "pr-comment.yml", "pr-report.yml"]


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
    """Every file in .ci/ but the Python one (ruff checks that), as the pre-commit hook selects them."""
    hook = next(
        hook
        for repo in yaml.safe_load((PROJECT / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
        if hook["id"] == "shellcheck"
    )
    scripts = sorted(path for path in (PROJECT / ".ci").iterdir() if path.is_file() and re.search(hook["files"], f".ci/{path.name}"))
    others = sorted(path.name for path in (PROJECT / ".ci").iterdir() if path.is_file() and path not in scripts)
    assert {path.name for path in scripts} >= {"repro", "pr-comment", "run", "system-deps"} and others == ["remote.py"]
    result = tool("shellcheck", *map(str, scripts))
    assert result.returncode == 0, result.stdout


def load(name: str) -> dict:
    return yaml.safe_load((PROJECT / ".github/workflows" / name).read_text())


def jobs() -> dict[tuple[str, str], dict]:
    return {(path.name, name): job for path in WORKFLOWS for name, job in yaml.safe_load(path.read_text())["jobs"].items()}


def secrets_used(job: dict) -> set[str]:
    return set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(job)))


def runs_pull_request_code(workflow: dict) -> bool:
    """A workflow that `pull_request` triggers checks out and runs the pull request's own code."""
    return "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as true


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_least_privilege_pinned_and_no_untrusted_expressions_in_run(path):
    workflow = yaml.safe_load(path.read_text())
    triggers = workflow[True]
    assert "pull_request_target" not in triggers
    assert workflow["permissions"] == {}  # nothing by default; each job asks for what it needs
    for name, job in workflow["jobs"].items():
        assert set(job["permissions"]) <= {"contents", "pull-requests", "actions"}, name
        assert job["permissions"].get("contents") == "read", name
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]  # pinned by commit SHA
            if "run" in step:
                assert "${{" not in step["run"], step["run"]  # expressions go through env:, never into the shell
                assert re.fullmatch(r"(make [\w-]+.*|\.ci/[\w-]+.*)", step["run"].strip()), step["run"]  # thin: make or .ci/
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize(
    "path", [path for path in WORKFLOWS if runs_pull_request_code(yaml.safe_load(path.read_text()))], ids=lambda p: p.name
)
def test_jobs_that_run_pull_request_code_can_read_only(path):
    """Pull-request code could read any token or secret its job holds: give it nothing that writes."""
    for name, job in yaml.safe_load(path.read_text())["jobs"].items():
        if job.get("if", "").startswith("github.event_name == 'push'"):
            continue  # never runs for a pull request
        assert job["permissions"] == {"contents": "read"}, name
        assert "environment" not in job, name  # environments hold the write secrets
        assert all(secret.startswith("DVC_REMOTE_READ_") for secret in secrets_used(job)), (name, secrets_used(job))


def test_only_the_comment_job_writes_and_only_to_pull_requests():
    writers = {key: job["permissions"] for key, job in jobs().items() if "write" in job["permissions"].values()}
    assert writers == {("pr-comment.yml", "comment"): {"contents": "read", "actions": "read", "pull-requests": "write"}}


def test_the_comment_job_runs_no_pull_request_code_and_only_reads_the_artifact():
    workflow = load("pr-comment.yml")
    assert set(workflow[True]) == {"workflow_run"}  # runs the default branch's workflow, whatever the PR changed
    assert workflow[True]["workflow_run"]["workflows"] == [load("pr-report.yml")["name"]]
    (job,) = workflow["jobs"].values()
    assert "pull_request" in job["if"]
    uses = [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]
    assert uses == ["actions/checkout", "actions/download-artifact"]
    checkout, download = (step for step in job["steps"] if "uses" in step)
    assert set(checkout["with"]) == {"persist-credentials"}  # no ref/repository: the default branch, never the PR head
    assert download["with"]["name"] == "pr-report"
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"  # the run that triggered this one
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs == [".ci/pr-comment pr-report/report.md"]  # the artifact is an argument (data), never a command
    env = next(step["env"] for step in job["steps"] if "run" in step)
    assert env["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}" and "PR_NUMBER" not in env  # the PR from the API
    assert secrets_used(job) == set()
    report_job = load("pr-report.yml")["jobs"]["report"]
    uploads = [step["with"] for step in report_job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert [(upload["name"], upload["path"]) for upload in uploads] == [("pr-report", "reports/pr/")]


def test_write_secrets_only_in_the_publish_job_behind_its_protected_environment():
    holders = {
        key: job for key, job in jobs().items() if secrets_used(job) - {s for s in secrets_used(job) if s.startswith("DVC_REMOTE_READ_")}
    }
    assert list(holders) == [("ci.yml", "publish")]
    publish = holders["ci.yml", "publish"]
    assert publish["environment"] == "dvc-publish"
    assert publish["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    steps = [step.get("run") for step in publish["steps"] if "run" in step]
    assert steps == ["make ci-remote", "make ci-repro", "make push"]  # the remote is configured before anything uses it


def test_concurrency_cancels_superseded_pull_request_runs_but_never_a_publish_run():
    concurrency = load("ci.yml")["concurrency"]
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert load("pr-report.yml")["concurrency"]["cancel-in-progress"] is True  # pull requests only


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
# Stands in for the GitHub CLI (no GitHub here): lists canned pull requests and comments, records writes.
echo "$*" >> "$STUB_LOG"
if [[ "$*" == *--paginate*/pulls?* ]]; then
  printf '%s' "$STUB_PULLS" | jq -r "${@: -1}"  # the --jq filter is the last argument
elif [[ "$*" == *--paginate* ]]; then
  printf '%s' "$STUB_COMMENTS" | jq -r "${@: -1}"
else
  cat > "$STUB_BODY"
fi
"""
BOT = "github-actions[bot]"
MARKER = "<!-- mlops-pr-report -->"
HEAD = "0123456789abcdef0123456789abcdef01234567"


def pr_comment(tmp_path: Path, comments: list[dict], pulls: list[dict] | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run .ci/pr-comment against the stub `gh` (the GitHub API cannot be reached here); jq and the logic are real
    (a test that calls this needs `@pytest.mark.needs_tool("jq")`)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gh").write_text(GH_STUB)
    (bin_dir / "gh").chmod(0o755)
    report = tmp_path / "report.md"
    report.write_text(f'{MARKER}\n## Report with "quotes" and `code`\n')
    environ = {key: value for key, value in ENV.items() if key not in ("PR_NUMBER", "HEAD_SHA", "PR_COMMENT_BOT")}
    environ |= {
        "PATH": f"{bin_dir}{os.pathsep}{ENV['PATH']}",
        "GITHUB_REPOSITORY": "team/project",
        "STUB_LOG": str(tmp_path / "calls.log"),
        "STUB_BODY": str(tmp_path / "body.json"),
        "STUB_COMMENTS": json.dumps(comments),
        "STUB_PULLS": json.dumps(pulls or []),
        **env,
    }
    return subprocess.run([str(PROJECT / ".ci/pr-comment"), str(report)], env=environ, capture_output=True, text=True, timeout=60)


def last_write(tmp_path: Path) -> str:
    return (tmp_path / "calls.log").read_text().splitlines()[-1]


@pytest.mark.needs_tool("jq")
@pytest.mark.parametrize("existing", [False, True], ids=["creates", "updates"])
def test_pr_comment_creates_one_sticky_comment_then_updates_it(tmp_path, existing):
    comments = [{"id": 11, "user": {"login": "alice"}, "body": "a human comment"}]
    comments += [{"id": 42, "user": {"login": BOT}, "body": f"{MARKER}\nold"}] if existing else []
    result = pr_comment(tmp_path, comments, PR_NUMBER="7")
    assert result.returncode == 0, result.stderr
    if existing:
        assert last_write(tmp_path).startswith("api --method PATCH repos/team/project/issues/comments/42")
    else:
        assert last_write(tmp_path).startswith("api --method POST repos/team/project/issues/7/comments")
    assert json.loads((tmp_path / "body.json").read_text()) == {"body": (tmp_path / "report.md").read_text()}


@pytest.mark.needs_tool("jq")
def test_pr_comment_never_edits_a_marked_comment_someone_else_wrote(tmp_path):
    comments = [
        {"id": 5, "user": {"login": "mallory"}, "body": f"{MARKER}\nlooks like the report"},
        {"id": 42, "user": {"login": BOT}, "body": f"{MARKER}\nold"},
    ]
    result = pr_comment(tmp_path, comments, PR_NUMBER="7")
    assert result.returncode == 0, result.stderr
    assert last_write(tmp_path).startswith("api --method PATCH repos/team/project/issues/comments/42")
    only_mallory = pr_comment(tmp_path, comments[:1], PR_NUMBER="7")
    assert only_mallory.returncode == 0, only_mallory.stderr
    assert last_write(tmp_path).startswith("api --method POST repos/team/project/issues/7/comments")


@pytest.mark.needs_tool("jq")
def test_pr_comment_bot_login_is_configurable(tmp_path):
    comments = [{"id": 42, "user": {"login": BOT}, "body": f"{MARKER}\nold"}, {"id": 43, "user": {"login": "my-app[bot]"}, "body": MARKER}]
    result = pr_comment(tmp_path, comments, PR_NUMBER="7", PR_COMMENT_BOT="my-app[bot]")
    assert result.returncode == 0, result.stderr
    assert last_write(tmp_path).startswith("api --method PATCH repos/team/project/issues/comments/43")
    bad = pr_comment(tmp_path, comments, PR_NUMBER="7", PR_COMMENT_BOT='x" or true')
    assert bad.returncode == 2 and "PR_COMMENT_BOT is not a GitHub login" in bad.stderr


@pytest.mark.needs_tool("jq")
def test_pr_comment_finds_the_pull_request_by_the_reports_commit(tmp_path):
    pulls = [{"number": 3, "head": {"sha": "f" * 40}}, {"number": 9, "head": {"sha": HEAD}}]
    result = pr_comment(tmp_path, [], pulls, HEAD_SHA=HEAD)
    assert result.returncode == 0, result.stderr
    assert last_write(tmp_path).startswith("api --method POST repos/team/project/issues/9/comments")
    none = pr_comment(tmp_path, [], pulls[:1], HEAD_SHA=HEAD)
    assert none.returncode == 2 and f"expected one open pull request with head {HEAD}, found: none" in none.stderr
    forged = pr_comment(tmp_path, [], pulls, HEAD_SHA="9; rm -rf /")
    assert forged.returncode == 2 and "HEAD_SHA is not a commit sha" in forged.stderr


def test_pr_comment_refuses_a_file_without_the_marker(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("# not a report\n")
    env = {**ENV, "PR_NUMBER": "7", "GITHUB_REPOSITORY": "team/project"}
    result = subprocess.run([str(PROJECT / ".ci/pr-comment"), str(report)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "does not start with <!-- mlops-pr-report -->" in result.stderr


# --- The DVC remote in CI: `.ci/repro`'s note says what the remote really held -------------------------

STAGE_YAML = "stages:\n  count:\n    cmd: wc -c < in.txt > out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n"


def git_dvc(repo: Path, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`git ...` or `dvc ...` (this venv's) in `repo`; fails the test on a non-zero exit."""
    program = [command[0]] if command[0] == "git" else [sys.executable, "-m", "dvc"]
    result = subprocess.run([*program, *command[1:]], cwd=repo, env=env or TOOLS, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stdout}{result.stderr}"
    return result


def ci_clone(origin: Path, folder: Path, remote_url: str) -> Path:
    """A fresh clone of `origin` as a CI runner gets it: the project's CI scripts and venv, `remote_url` as its remote."""
    git_dvc(origin.parent, "git", "clone", "-q", str(origin), str(folder))
    (folder / ".venv").symlink_to(BIN.parent)
    git_dvc(folder, "dvc", "remote", "add", "--local", "-f", "-d", "team", remote_url)
    return folder


def one_stage_project(origin: Path) -> Path:
    """A git+dvc project in `origin` with the project's CI scripts and one stage (`count`), not yet run."""
    origin.mkdir()
    git_dvc(origin, "git", "init", "-q", "-b", "main")
    git_dvc(origin, "dvc", "init", "-q")
    shutil.copytree(PROJECT / ".ci", origin / ".ci", ignore=shutil.ignore_patterns(".s3rver"))
    (origin / "in.txt").write_text("twelve bytes")
    (origin / "dvc.yaml").write_text(STAGE_YAML)
    (origin / ".gitignore").write_text(".venv\n")
    return origin


@pytest.fixture(scope="module")
def published_once(tmp_path_factory) -> tuple[Path, Path]:
    """A git+dvc project with one stage whose output was pushed to a local folder remote, and that folder."""
    folder = tmp_path_factory.mktemp("published")
    origin, remote = one_stage_project(folder / "origin"), folder / "remote"
    (origin / ".venv").symlink_to(BIN.parent)
    git_dvc(origin, "dvc", "repro", "-q")
    git_dvc(origin, "dvc", "remote", "add", "-d", "team", str(remote))
    git_dvc(origin, "dvc", "push", "-q")
    git_dvc(origin, "git", "add", "-A")
    git_dvc(origin, "git", "commit", "-qm", "pipeline")
    return origin, remote


@pytest.fixture
def published(published_once, tmp_path) -> tuple[Path, Path]:
    """`published_once` with a copy of the project a test may change (a test's .dvc/config.local stays its own);
    the remote is shared and only read (clones pull from it)."""
    origin, remote = published_once
    return Path(shutil.copytree(origin, tmp_path / "origin", symlinks=True)), remote


def ci_repro(repo: Path, **env: str) -> tuple[str, str]:
    """Run `.ci/repro` in `repo`: (the note it wrote, its repro log)."""
    environ = {key: value for key, value in TOOLS.items() if key != "CI"} | env
    result = subprocess.run([str(repo / ".ci/repro")], cwd=repo, env=environ, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return (repo / "reports/pr/remote.txt").read_text().strip(), (repo / "reports/pr/repro.log").read_text()


@pytest.mark.slow  # real git, dvc and make in temporary repositories
def test_ci_repro_pulls_from_a_remote_that_holds_the_outputs_and_says_so(published, tmp_path):
    origin, remote = published
    clone = ci_clone(origin, tmp_path / "clone", str(remote))
    note, log = ci_repro(clone)
    assert note == "DVC remote 'team' available: outputs it holds were pulled, not recomputed (it holds every output of this revision)"
    assert "Running stage 'count'" not in log  # pulled, not recomputed
    assert (clone / "out.txt").read_text().strip() == "12"


@pytest.mark.slow  # real git, dvc and make in temporary repositories
def test_ci_repro_says_not_available_when_the_remote_folder_does_not_exist(published, tmp_path):
    origin, _ = published
    missing = tmp_path / "nowhere"
    clone = ci_clone(origin, tmp_path / "clone", str(missing))
    note, log = ci_repro(clone)
    assert note == f"DVC remote not available (remote 'team': the folder {missing} does not exist): every stage ran here"
    assert "Running stage 'count'" in log
    assert not missing.exists()


@pytest.mark.slow  # real git, dvc and make in temporary repositories
def test_ci_repro_in_ci_refuses_a_local_folder_remote_even_when_it_exists(published, tmp_path):
    origin, remote = published
    clone = ci_clone(origin, tmp_path / "clone", str(remote))
    note, log = ci_repro(clone, CI="true")
    assert note == (
        f"DVC remote not available (remote 'team' is a local folder ({remote}) that a CI runner does not keep; "
        "set DVC_REMOTE_URL): every stage ran here"
    )
    assert "Running stage 'count'" in log


def remote_script(repo: Path, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in TOOLS.items() if key not in ("CI", "DVC_REMOTE_URL", "DVC_REMOTE_ENDPOINT_URL")} | env
    return subprocess.run([sys.executable, ".ci/remote.py", *arguments], cwd=repo, env=environ, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # real git, dvc and make in temporary repositories
def test_publishing_refuses_a_local_folder_in_ci_and_allows_it_on_a_developers_machine(published):
    origin, remote = published
    refused = remote_script(origin, "check-publish", CI="true")
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: the default DVC remote 'team' is a local folder ({remote}), thrown away with the CI runner")
    assert "DVC_REMOTE_URL" in refused.stderr
    assert remote_script(origin, "check-publish").returncode == 0


@pytest.mark.slow  # real git, dvc and make in temporary repositories
def test_configure_makes_the_url_from_the_environment_the_default_remote_in_config_local(published):
    origin, _ = published
    configured = remote_script(
        origin, "configure", CI="true", DVC_REMOTE_URL="s3://bucket/flights", DVC_REMOTE_ENDPOINT_URL="http://127.0.0.1:9"
    )
    assert configured.returncode == 0, configured.stderr
    local = (origin / ".dvc/config.local").read_text()
    assert "remote = ci" in local and "url = s3://bucket/flights" in local and "endpointurl = http://127.0.0.1:9" in local
    assert "s3://" not in (origin / ".dvc/config").read_text()  # the tracked config is untouched
    assert remote_script(origin, "check-publish", CI="true").returncode == 0  # a real remote may be published to
    unset = remote_script(origin, "configure", CI="true")
    assert unset.returncode == 0 and "DVC_REMOTE_URL is not set" in unset.stdout


@pytest.mark.slow  # real git, dvc and make in temporary repositories
def test_ci_repro_says_not_available_when_the_remote_server_does_not_answer(published, tmp_path):
    origin, _ = published
    clone = ci_clone(origin, tmp_path / "clone", "s3://bucket/flights")
    git_dvc(clone, "dvc", "remote", "modify", "--local", "team", "endpointurl", "http://127.0.0.1:9")  # nothing listens there
    note, log = ci_repro(clone, AWS_ACCESS_KEY_ID="unused", AWS_SECRET_ACCESS_KEY="unused")
    assert note.startswith("DVC remote not available (remote 'team' did not answer: ")
    assert note.endswith("): every stage ran here")
    assert "Running stage 'count'" in log


# --- make: values reach commands as one argument, never as shell text -----------------------------------

# A plain `;` (and the way out of double quotes), a backquoted command, a make function (in a value from the
# environment, as a workflow passes it, make must not evaluate it).
PAYLOADS = ['x" ; touch {marker}; echo "', "x `touch {marker}`", "x $(shell touch {marker})"]
TARGETS = [
    ("checkout", "REV"),
    ("report", "BASE"),
    ("predict", "MODEL"),
    ("predict", "OUTPUT"),
    ("register", "VERSION"),
    ("promote", "STAGE"),
]


@pytest.fixture
def scratch_repo(tmp_path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git_dvc(repo, "git", "init", "-q", "-b", "main")
    (repo / "README").write_text("scratch\n")
    git_dvc(repo, "git", "add", "-A")
    git_dvc(repo, "git", "commit", "-qm", "one")
    (repo / ".venv").symlink_to(BIN.parent)
    return repo


@pytest.mark.slow  # real git, dvc and make in temporary repositories
@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize(("target", "variable"), TARGETS, ids=[f"{t}-{v}" for t, v in TARGETS])
def test_make_variables_are_never_executed_as_shell(scratch_repo, tmp_path, target, variable, payload):
    marker = tmp_path / "injected"
    env = {**TOOLS, "PYTHONPATH": str(PROJECT), "STAGE": "prod", variable: payload.format(marker=marker)}
    # -o: the venv counts as installed (never reinstall the shared one); the recipe's own command may fail.
    subprocess.run(
        ["make", "-f", str(PROJECT / "Makefile"), "-o", ".venv/.installed", target],
        cwd=scratch_repo, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert not marker.exists(), f"make {target} ran a command hidden in {variable}"


@pytest.mark.parametrize("source", ["command line", "environment"])
@pytest.mark.slow  # real git, dvc and make in temporary repositories
def test_make_passes_a_value_with_spaces_and_semicolons_as_one_argument(scratch_repo, tmp_path, source):
    value = f"no such; rev $(touch {tmp_path / 'injected'})"
    command = ["make", "-f", str(PROJECT / "Makefile"), "-o", ".venv/.installed", "checkout"]
    env = {**TOOLS, "REV": value} if source == "environment" else TOOLS
    result = subprocess.run(
        command + ([f"REV={value}"] if source == "command line" else []),
        cwd=scratch_repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    shown = value if source == "environment" else "no such; rev "  # make reads $(...) on its own command line as a variable
    assert f"error: REV={shown} is not a tag, branch or commit of this repository" in result.stderr
    assert not (tmp_path / "injected").exists()

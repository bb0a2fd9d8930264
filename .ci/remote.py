"""The DVC remote in CI (and for a developer who wants the same set-up): configure it, check it, pull from it.

    python .ci/remote.py configure          # DVC_REMOTE_URL [+ DVC_REMOTE_ENDPOINT_URL] -> remote `ci` in .dvc/config.local
    python .ci/remote.py check-publish      # fail when CI would push into a local folder (thrown away with the runner)
    python .ci/remote.py pull --note FILE   # pull what the remote really holds; FILE says what happened (for the PR report)

Credentials never go into a file: dvc-s3 reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the
environment (the workflows set them from repository secrets, read-only ones for pull-request code).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CI_REMOTE = "ci"
TIMEOUT = 900  # seconds for one dvc command: an unreachable server must not hang the job
URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Remote:
    name: str
    url: str  # as DVC resolves it (a local path is absolute)

    @property
    def is_local_path(self) -> bool:
        match = URL_SCHEME.match(self.url)
        return match is None or match.group(1).lower() == "file"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def dvc(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *arguments], capture_output=True, text=True, timeout=TIMEOUT)


def first_error(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return lines[0].removeprefix("ERROR: ") if lines else f"dvc exited with {result.returncode}"


def default_remote() -> Remote | None:
    name = dvc("remote", "default").stdout.strip()
    if not name:
        return None
    url = dvc("config", f"remote.{name}.url")
    return Remote(name, url.stdout.strip()) if url.returncode == 0 else None


def configure(environ: dict[str, str]) -> str:
    """Point DVC at DVC_REMOTE_URL (as the default remote `ci`, in the git-ignored .dvc/config.local)."""
    url = environ.get("DVC_REMOTE_URL", "").strip()
    if not url:
        return "DVC_REMOTE_URL is not set: no CI remote configured (pulls find nothing; publishing refuses to run)"
    commands = [["remote", "add", "--local", "--force", "--default", CI_REMOTE, url]]
    if endpoint := environ.get("DVC_REMOTE_ENDPOINT_URL", "").strip():
        commands.append(["remote", "modify", "--local", CI_REMOTE, "endpointurl", endpoint])
    for command in commands:
        result = dvc(*command)
        if result.returncode != 0:
            raise SystemExit(f"error: dvc {' '.join(command[:3])} failed: {first_error(result)}")
    return f"DVC remote '{CI_REMOTE}' set to {url} in .dvc/config.local (credentials come from the environment)"


def publish_problem(remote: Remote | None, ci: bool) -> str | None:
    """Why a push would publish nowhere, or None when it may go ahead."""
    if remote is None:
        return "no default DVC remote: set DVC_REMOTE_URL and run `make ci-remote`"
    if ci and remote.is_local_path:
        return (
            f"the default DVC remote '{remote.name}' is a local folder ({remote.url}), thrown away with the CI runner: "
            "set the repository variable DVC_REMOTE_URL (and the write secrets) so `make ci-remote` configures a real remote"
        )
    return None


def unavailable_reason(remote: Remote | None, ci: bool) -> str | None:
    """Why the remote cannot be pulled from (checked for real), or None when it answers."""
    if remote is None:
        return "no default DVC remote is configured"
    if ci and remote.is_local_path:
        return f"remote '{remote.name}' is a local folder ({remote.url}) that a CI runner does not keep; set DVC_REMOTE_URL"
    if remote.is_local_path and not Path(remote.url.removeprefix("file://")).is_dir():
        return f"remote '{remote.name}': the folder {remote.url} does not exist"
    return None


def lacking(status_json: str) -> list[str]:
    """Outputs of this revision the remote does not hold, from `dvc status --cloud --json`
    (new: only in the local cache; missing: nowhere; deleted: only on the remote; in sync: not listed)."""
    return sorted(path for path, state in json.loads(status_json or "{}").items() if state in ("new", "missing"))


def pull_note(remote: Remote | None, ci: bool) -> str:
    """Pull what the remote holds and say, in one line, what the run could rely on."""
    reason = unavailable_reason(remote, ci)
    if reason is None and remote is not None:  # no reason means a remote (unavailable_reason names a missing one)
        status = dvc("status", "--cloud", "--json")  # talks to the remote: fails when it cannot be reached or read
        if status.returncode != 0:
            reason = f"remote '{remote.name}' did not answer: {first_error(status)}"
    if reason is not None or remote is None:
        return f"DVC remote not available ({reason}): every stage ran here"
    missing = lacking(status.stdout.strip().splitlines()[-1] if status.stdout.strip() else "{}")
    pulled = dvc("pull", "--allow-missing")
    if pulled.returncode != 0:
        return f"DVC remote '{remote.name}' answered but the pull failed ({first_error(pulled)}): every stage ran here"
    held = "it holds every output of this revision" if not missing else f"it lacks {len(missing)}: {', '.join(missing)}"
    return f"DVC remote '{remote.name}' available: outputs it holds were pulled, not recomputed ({held})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("configure", help="set the remote `ci` from DVC_REMOTE_URL (and DVC_REMOTE_ENDPOINT_URL)")
    commands.add_parser("check-publish", help="exit 1 when pushing would publish nowhere (a local folder in CI)")
    pull = commands.add_parser("pull", help="pull what the remote holds and write a one-line note")
    pull.add_argument("--note", type=Path, required=True)
    arguments = parser.parse_args(argv)
    if arguments.command == "configure":
        print(configure(dict(os.environ)))
    elif arguments.command == "check-publish":
        if problem := publish_problem(default_remote(), in_ci()):
            print(f"error: {problem}", file=sys.stderr)
            return 1
    else:
        note = pull_note(default_remote(), in_ci())
        arguments.note.parent.mkdir(parents=True, exist_ok=True)
        arguments.note.write_text(note + "\n")
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())

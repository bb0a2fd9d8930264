"""User-facing errors: one clear line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

USER_ERROR_EXIT = 2


class UserError(Exception):
    """A problem with the user's data or configuration, explained with how to fix it."""


def fail(message: str) -> NoReturn:
    raise UserError(message)


def run_stage(main: Callable[[], object]) -> None:
    """Run a stage's `main()`, turning a `UserError` into one line and exit code 2."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)

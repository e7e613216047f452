"""A stage that fails for a known reason (bad data, bad params, a service it cannot use) ends with that
reason as its last line, and a short stderr: no traceback from Prefect's engine log, none from Python.

Known reasons are exceptions deriving from `StageError`, whose message says all there is to say (the
file and key, the URL). Anything else, a bug, keeps both tracebacks. LIVERSYNTH_TRACEBACK=1 keeps them
for known reasons too. The Prefect API still receives the full traceback (only console handlers are
filtered), so the flow run's logs in the UI keep it.
"""
from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = ["TRACEBACK_ENV", "StageError", "install_short_failures", "short_reason"]

TRACEBACK_ENV = "LIVERSYNTH_TRACEBACK"


class StageError(Exception):
    """A failure whose message is the whole story: shown without a traceback when it ends a stage."""


def _full_tracebacks() -> bool:
    return os.environ.get(TRACEBACK_ENV, "") not in ("", "0", "false")


def short_reason(exc: BaseException) -> str | None:
    """`Type: message` for a known failure (`StageError`), None for anything else."""
    if not isinstance(exc, StageError) or _full_tracebacks():
        return None
    return "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")


class _WithoutTraceback(logging.Filter):
    """On a console handler: a record carrying a known failure is shown without its traceback."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or short_reason(exc) is None:
            return True
        self.handler.handle(logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None}))
        return False


class _ShortExcepthook:
    """sys.excepthook: the one-line reason for a known failure, the previous hook for anything else."""

    def __init__(self, previous: Callable[[type[BaseException], BaseException, TracebackType | None], Any]) -> None:
        self.previous = previous

    def __call__(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        reason = short_reason(exc)
        if reason is None:
            self.previous(kind, exc, tb)
        else:
            print(reason, file=sys.stderr, flush=True)


def install_short_failures() -> None:
    """Apply the rule to this process: Python's excepthook and Prefect's console handlers on the root
    logger (where its engine logs "Encountered exception during execution"). Safe to call again."""
    from prefect.logging.handlers import PrefectConsoleHandler

    if not isinstance(sys.excepthook, _ShortExcepthook):
        sys.excepthook = _ShortExcepthook(sys.excepthook)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and \
                not any(isinstance(f, _WithoutTraceback) for f in handler.filters):
            handler.addFilter(_WithoutTraceback(handler))

"""Silencing third-party chatter (progress prints, warnings, log records) around a library call."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings


@contextlib.contextmanager
def quiet(*logger_names: str):
    """Drop stdout prints, warnings and records below ERROR of the named loggers ("" is the root
    logger) while the block runs; errors still raise."""
    loggers = [logging.getLogger(name or None) for name in logger_names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)

"""Logging set-up shared by the command-line entries."""
from __future__ import annotations

import logging
import os


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def setup_logging(level: str | int | None = None) -> None:
    level = level or os.environ.get("AHA_LOG_LEVEL", "INFO")
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )

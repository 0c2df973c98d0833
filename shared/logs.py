"""Logging: one line per record, identifiers only, never payload values."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str, service: str) -> None:
    """Send logs to stderr as ``time level service logger: message``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Kafka client is chatty about rebalances and retries at INFO.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("pymongo").setLevel(logging.WARNING)
    # HTTP clients log every URL at INFO, query strings included (a subject search holds
    # an e-mail): keep them to warnings.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)

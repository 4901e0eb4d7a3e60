from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from labeling_pipeline import handler
from tests.chaos.simulation import SkipLog


@pytest.fixture
def skip_log() -> Iterator[SkipLog]:
    log = SkipLog()
    logger = logging.getLogger("labeling-launcher")
    logger.addHandler(log)
    yield log
    logger.removeHandler(log)
    # decide_messages is called without the Lambda decorator that flushes metrics: drop what piled up.
    handler.metrics.clear_metrics()

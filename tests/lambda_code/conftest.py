from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from tests.support import World, build_world


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield build_world()

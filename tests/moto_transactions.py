"""A workaround for moto 5.2.5, imported by tests/conftest.py.

moto 5.2.5's DynamoDBBackend.transact_write_items backs the table up for rollback with a deep copy
of the whole table once per action (a 50-action transaction on a 5,000-item table copies 250,000
items), which makes batched ledger claims take seconds each under moto. The backup is taken before
any action runs, so one backup per table per call is the same backup; and when every action is a Put
(Table.put_item only assigns new Item objects into Table.items) on a table without a stream, a copy of
the items mapping holds the same state as the deep copy. Anything else keeps moto's deep copy."""

from __future__ import annotations

import copy
import threading
import types
from collections import defaultdict
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.table import Table

_state = threading.local()


def _backup(table: Table, puts_only: bool) -> Table:
    if not puts_only or table.stream_shard is not None:
        return copy.deepcopy(table)
    snapshot = copy.copy(table)
    if table.range_key_attr is None:
        snapshot.items = copy.copy(table.items)
    else:
        snapshot.items = defaultdict(dict, {hash_key: dict(by_range) for hash_key, by_range in table.items.items()})
    return snapshot


def _deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    backups = getattr(_state, "backups", None)
    if backups is None or not isinstance(value, Table):
        return copy.deepcopy(value, memo)
    if id(value) not in backups:
        backups[id(value)] = _backup(value, _state.puts_only)
    return backups[id(value)]


_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    _state.backups, _state.puts_only = {}, all(set(item) == {"Put"} for item in transact_items)
    try:
        _transact_write_items(self, transact_items)
    finally:
        _state.backups = None


# The module's only other use of copy.deepcopy (an Item, in update_item) passes through unchanged.
dynamodb_models.copy = types.SimpleNamespace(deepcopy=_deepcopy)  # type: ignore[assignment]
dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

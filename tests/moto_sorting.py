"""A workaround for moto 5.2.5, imported by tests/conftest.py.

moto's Table.all_items, which every Query and Scan calls, sorts the whole table by comparing DynamoType
objects, and each comparison converts both values again (DynamoType.cast_value): a Query on a
200,000-item table spends seconds in the sort. This sorts by the same values, converted once per item,
so the order is the same and a query over a large table takes a fraction of a second
(tests/cli/test_no_table_scans.py fills a ledger with 200,000 items)."""

from __future__ import annotations

from typing import Any

from moto.dynamodb.models.table import Item, Table


def _all_items(self: Table) -> list[Item]:
    items: list[Item] = []
    for hash_set in self.items.values():
        if self.range_key_attr:
            items.extend(hash_set.values())
        else:
            items.append(hash_set)  # type: ignore[arg-type]

    def order(item: Item) -> Any:
        # moto's key: (hash_key, range_key) when the item has a range key, else hash_key, compared by
        # DynamoType's operators, which compare cast_value.
        if item.range_key:
            return (item.hash_key.cast_value, item.range_key.cast_value)
        return item.hash_key.cast_value

    return sorted(items, key=order)


Table.all_items = _all_items  # type: ignore[method-assign]

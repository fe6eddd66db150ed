"""Stock: codes in numbered slots, spread over S shards per product (docs/allocation.md).

A shard item counts its slots: `filled` slots hold codes, `cursor` slots have been handed out,
`remaining` = filled - cursor. A checkout takes q slots with one conditional UpdateItem
(`remaining >= q`), so allocation costs O(1) requests whatever the stock size. Delivery binds
each reserved slot to the order, conditional on it being unbound (I1).

One module a job, over the items of `items.py`:
- `allocation.py` (`Allocation`): the hot path, claim, release, bind and read an order's slots;
- `changes.py` (`StockChanges`): the merchant's imports, removals and exports, under a lease
  (`leases.py`); `removal.py` moves codes out of a shard;
- `upkeep.py` (`StockUpkeep`): reconciliation's burned-slot returns and the stock audit (I4).
"""

"""Where the follower's validator sets go: ``validators/history.py`` ``record_set`` (docs/live.md "Validator
sets"), which writes a set only where it changed and keeps the priorities of every height it is given."""

from __future__ import annotations

from collections.abc import Sequence

from bftscope.families.cometbft.live.rpc import RpcValidator
from bftscope.families.cometbft.validators.history import record_set
from bftscope.families.cometbft.validators.validator import Validator
from bftscope.store.base import Store

__all__ = ["record_validator_set"]


def record_validator_set(store: Store, run_id: int, height: int, validators: Sequence[RpcValidator]) -> bool:
    """Store the whole set as fetched at ``height``; True when it changed the history. A set the history refuses
    (a malformed address or power) raises ValueError and nothing is written."""
    members = [Validator(v.address, v.power, v.proposer_priority, v.index) for v in validators]
    return record_set(store, run_id, height, members, source="rpc")

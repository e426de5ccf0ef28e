"""Where the follower's validator sets go: ``validators/history.py`` ``record_set`` (the contract in docs/live.md).

That module is written in parallel (branch ``missed``); until it is on main the call is looked up at run time,
and a set that cannot be stored is counted by the caller (``stored`` False), never an error. Once history.py is
merged this is a plain call.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from bftscope.families.cometbft.live.rpc import RpcValidator
from bftscope.store.base import Store

__all__ = ["record_validator_set"]

_HISTORY = "bftscope.families.cometbft.validators.history"


def record_validator_set(store: Store, run_id: int, height: int, validators: Sequence[RpcValidator]) -> bool:
    """Store the whole set as it is at ``height``; False when the history module is not available."""
    try:
        history = importlib.import_module(_HISTORY)
    except ImportError:
        return False
    make = history.Validator
    history.record_set(store, run_id, height,
                       [make(v.address, v.power, v.proposer_priority, v.index) for v in validators])  # fmt: skip
    return True

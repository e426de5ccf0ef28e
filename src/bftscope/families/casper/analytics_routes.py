"""``/v1/casper/{network}/analytics/…``: a followed Casper network's answers (docs/casper.md "Analytics").

``blocktimes``, ``eras``, ``proposers``, ``signatures`` and ``deploys`` over the blocks whose timestamp is in
``from``..``to`` (RFC 3339, either open). ``{network}`` is the network's name (or its id). A network belongs
to its creator: another user's network, or a network of another chain, answers 404 exactly as one that does
not exist (:func:`casper_network_for`, as :func:`bftscope.api.routes.networks.network_for`). A network whose
follower has stored nothing yet answers empty figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from bftscope.analytics.windows import parse_bounds
from bftscope.api.context import ApiContext
from bftscope.api.deps import Caller, Ctx
from bftscope.api.errors import errors
from bftscope.control import networks
from bftscope.control.networks import NAME_RULE, Network
from bftscope.control.records import User
from bftscope.families.casper import analytics_schemas as sc
from bftscope.families.casper.analytics.blocktimes import block_times
from bftscope.families.casper.analytics.deploys import deploys
from bftscope.families.casper.analytics.eras import eras
from bftscope.families.casper.analytics.proposers import proposers
from bftscope.families.casper.analytics.signatures import signatures
from bftscope.families.casper.analytics.window import Window
from bftscope.families.casper.owned import casper_network
from bftscope.store.base import Store

__all__ = ["casper_network_for", "router"]

router = APIRouter(prefix="/v1/casper/{network}/analytics", tags=["casper"])

NetworkName = Annotated[str, Path(pattern=NAME_RULE, description="The Casper network's name (or id)")]
From = Annotated[str | None, Query(alias="from", max_length=64, description="RFC 3339; default: the first block")]
To = Annotated[str | None, Query(max_length=64, description="RFC 3339; default: the last block")]
_NO_RUN = -1  # a network whose follower wrote nothing yet: a run id no table holds


def casper_network_for(c: ApiContext, who: User, network: str) -> Network:
    """The caller's Casper network named ``network`` (or with that id); 404 otherwise."""
    return casper_network(c.store, who, network, by_id=True)


async def _answer(c: ApiContext, who: User, network: str, from_: str | None, to: str | None,
                  fn: Callable[[Store, int, Window], Any]) -> Any:  # fmt: skip
    window = Window.of(parse_bounds(from_, to))

    def run() -> Any:
        net = casper_network_for(c, who, network)
        run_id = networks.run_id_of(c.store, net)
        return fn(c.store, _NO_RUN if run_id is None else run_id, window)

    return await run_in_threadpool(run)


@router.get("/blocktimes", response_model=sc.BlockTimes, responses=errors(400, 401, 404))
async def casper_blocktimes(network: NetworkName, c: Ctx, who: Caller, from_: From = None,
                            to: To = None) -> sc.BlockTimes:  # fmt: skip
    """Intervals between consecutive heights' block timestamps (gaps are not intervals), overall and per era."""
    return sc.BlockTimes.model_validate(await _answer(c, who, network, from_, to, block_times))


@router.get("/eras", response_model=sc.Eras, responses=errors(400, 401, 404))
async def casper_eras(network: NetworkName, c: Ctx, who: Caller, from_: From = None, to: To = None) -> sc.Eras:
    """Per era: heights, blocks, duration, block times, era end, validators and weights, faults, equivocators."""
    window = Window.of(parse_bounds(from_, to))
    rows = await _answer(c, who, network, from_, to, eras)
    return sc.Eras.model_validate({"window": window.describe(), "data": rows})


@router.get("/proposers", response_model=sc.Proposers, responses=errors(400, 401, 404))
async def casper_proposers(network: NetworkName, c: Ctx, who: Caller, from_: From = None,
                           to: To = None) -> sc.Proposers:  # fmt: skip
    """Each validator's share of proposed blocks against its share of weight, per era and over the window."""
    return sc.Proposers.model_validate(await _answer(c, who, network, from_, to, proposers))


@router.get("/signatures", response_model=sc.Signatures, responses=errors(400, 401, 404))
async def casper_signatures(network: NetworkName, c: Ctx, who: Caller, from_: From = None,
                            to: To = None) -> sc.Signatures:  # fmt: skip
    """Finality-signature delay after each block's first sight, per validator and per node; missing signatures."""
    return sc.Signatures.model_validate(await _answer(c, who, network, from_, to, signatures))


@router.get("/deploys", response_model=sc.Deploys, responses=errors(400, 401, 404))
async def casper_deploys(network: NetworkName, c: Ctx, who: Caller, from_: From = None, to: To = None,
                         byAccount: Annotated[bool, Query(description="per account too")] = False,
                         accounts: Annotated[int, Query(ge=1, le=1000, description="most accounts")] = 50,
                         ) -> sc.Deploys:  # fmt: skip
    """Deploy latency (accepted → processed), failures, expired and pending deploys; optionally per account."""
    return sc.Deploys.model_validate(await _answer(
        c, who, network, from_, to,
        lambda s, r, w: deploys(s, r, w, by_account=byAccount, account_limit=accounts)))  # fmt: skip

"""``/v1/networks``: live networks the server follows, owned like projects, and their live feed.

A network belongs to the user who created it; only that user or an admin may see or change it, and one the
caller may not see answers 404 exactly as one that does not exist. The list shows the caller's own networks
(an admin's: every network). Creating a network starts its follower at once, changing its endpoints or
thresholds restarts it, deleting it stops it and removes its run's data. Endpoint URLs are shown redacted.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from bftscope.api import netschemas as ns
from bftscope.api.context import ApiContext
from bftscope.api.convert import iso
from bftscope.api.deps import Caller, Ctx, HexId, check_id
from bftscope.api.errors import errors
from bftscope.api.schemas import Message
from bftscope.control import networks
from bftscope.control.networks import Network
from bftscope.control.records import User
from bftscope.errors import InputError, NotFoundError
from bftscope.families import registry
from bftscope.live.alerts import defaults, thresholds, thresholds_api
from bftscope.live.endpoints import redact_text, redact_url
from bftscope.live.following import spec_of
from bftscope.live.supervisor import Followed, field_of

router = APIRouter(prefix="/v1", tags=["networks"])

__all__ = ["network_for", "remove_networks_of", "router", "status_of", "view"]


def network_for(c: ApiContext, who: User, network_id: str) -> Network:
    net = networks.get_network(c.store, check_id(network_id, "network"))
    if not who.is_admin and net.user_id != who.id:
        raise NotFoundError("Network not found")
    return net


_COUNTERS = {"duplicates": "duplicates", "backfilled_heights": "backfilledHeights",
             "not_refilled_heights": "notRefilledHeights", "validator_sets": "validatorSets",
             "validator_errors": "validatorErrors", "write_errors": "writeErrors",
             "listener_errors": "listenerErrors"}  # fmt: skip


def _int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return len(value)
    return int(value)  # type: ignore[call-overload, no-any-return]


def status_of(entry: Followed | None) -> ns.NetworkStatus:
    """A followed network's status in the API's shape (every URL and error redacted)."""
    if entry is None:
        return ns.NetworkStatus(state="not_followed")
    st = entry.status()
    out = ns.NetworkStatus(state=entry.state, error=entry.error, restarts=entry.restarts,
                           feedSubscribers=len(entry.feed.subscribers), feedOverflows=entry.feed.overflows,
                           eventsPerSecond=entry.events_per_s(),
                           alerts=[ns.ActiveAlert(rule=a.rule, subject=a.subject, since=a.since, value=a.value,
                                                  message=a.message) for a in entry.engine.active()])  # fmt: skip
    if st is None:
        return out
    height, node_height = _int(field_of(st, "height")), _int(field_of(st, "node_height"))
    step = field_of(st, "step")
    out.height, out.round, out.step = height, _int(field_of(st, "round")), None if step is None else str(step)
    out.stepSince, out.nodeHeight = field_of(st, "step_since"), node_height
    out.lag = node_height - height if node_height is not None and height is not None else None
    out.gaps, out.eventsTotal = _int(field_of(st, "gaps")), _int(field_of(st, "events_total"))
    out.committed = _int(field_of(st, "committed"))
    for name, key in _COUNTERS.items():
        if (value := field_of(st, name)) is not None:
            out.counters[key] = int(value)
    for e in field_of(st, "endpoints", []) or []:
        err = field_of(e, "last_error")
        out.endpoints.append(ns.EndpointStatus(
            url=redact_url(str(field_of(e, "url"))), state=str(field_of(e, "state")), active=field_of(e, "active"),
            frames=_int(field_of(e, "frames")), events=_int(field_of(e, "events")),
            reconnects=_int(field_of(e, "reconnects")), errors=_int(field_of(e, "errors")),
            lastError=None if err is None else redact_text(str(err))))  # fmt: skip
    return out


def view(c: ApiContext, net: Network, *, with_status: bool = False) -> ns.Network:
    status = status_of(c.networks.get(net.id) if c.networks is not None else None) if with_status else None
    return ns.Network(id=net.id, userId=net.user_id, name=net.name, chain=net.chain, run=net.run_name,
                      endpoints=[redact_url(u) for u in net.endpoints],
                      alerts=thresholds_api(thresholds(net.alerts, defaults(c.settings))),
                      createdAt=iso(net.created_at), updatedAt=iso(net.updated_at), status=status)  # fmt: skip


async def _follow(c: ApiContext, net: Network) -> None:
    if c.networks is not None:
        await c.networks.follow(spec_of(net, c.settings))


async def remove_networks_of(c: ApiContext, user_id: str) -> None:
    """Stop following and delete every network of a user (the user is being deleted)."""
    for net in await run_in_threadpool(networks.list_networks, c.store, user_id):
        if c.networks is not None:
            await c.networks.unfollow(net.id)
        await run_in_threadpool(networks.delete_network, c.store, net.id)


@router.post("/networks", status_code=201, response_model=ns.Network, responses=errors(400, 401, 409))
async def create_network(body: ns.NetworkCreate, c: Ctx, who: Caller) -> ns.Network:
    """Follow a network from now on (its run is ``net:<name>``)."""
    family = registry.family(body.chain or registry.default_family().name)
    if not family.can_follow:
        raise InputError(f"the {family.name} family cannot follow a live network")
    net = await run_in_threadpool(
        lambda: networks.create_network(c.store, who.id, body.name, family.name, body.endpoints,
                                        body.alerts.model_dump(exclude_unset=True),
                                        max_endpoints=c.settings.network_max_endpoints,
                                        max_per_user=c.settings.networks_per_user))  # fmt: skip
    await _follow(c, net)
    return view(c, net, with_status=True)


@router.get("/networks", response_model=list[ns.Network], responses=errors(401))
def list_networks(c: Ctx, who: Caller) -> list[ns.Network]:
    """The caller's networks (an admin: every network)."""
    return [view(c, n) for n in networks.list_networks(c.store, None if who.is_admin else who.id)]


@router.get("/networks/{networkId}", response_model=ns.Network, responses=errors(400, 401, 404))
def get_network(networkId: HexId, c: Ctx, who: Caller) -> ns.Network:
    """The network with its live status: height/round/step, lag behind the node, gaps, each endpoint's
    state and counters, active alerts."""
    return view(c, network_for(c, who, networkId), with_status=True)


@router.patch("/networks/{networkId}", response_model=ns.Network, responses=errors(400, 401, 404))
async def update_network(networkId: HexId, body: ns.NetworkUpdate, c: Ctx, who: Caller) -> ns.Network:
    """Replace the endpoints (the follower restarts on them) and/or the alert overrides (retuned in place)."""
    await run_in_threadpool(network_for, c, who, networkId)
    alerts = None if body.alerts is None else body.alerts.model_dump(exclude_unset=True)
    net = await run_in_threadpool(lambda: networks.update_network(
        c.store, networkId, body.endpoints, alerts, max_endpoints=c.settings.network_max_endpoints))  # fmt: skip
    if body.endpoints is not None or alerts is not None:
        await _follow(c, net)
    return view(c, net, with_status=True)


@router.delete("/networks/{networkId}", response_model=Message, responses=errors(400, 401, 404))
async def delete_network(networkId: HexId, c: Ctx, who: Caller) -> Message:
    """Stop following the network and delete it with its run's data."""
    await run_in_threadpool(network_for, c, who, networkId)
    if c.networks is not None:
        await c.networks.unfollow(networkId)
    await run_in_threadpool(networks.delete_network, c.store, networkId)
    return Message(message="Network deleted successfully")

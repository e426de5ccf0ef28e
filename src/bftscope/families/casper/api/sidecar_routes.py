"""The casper-sidecar's REST routes (``shared/reference/live-sources.md`` §C2), under ``sidecar/`` per mount.

The seed and the sidecar both answer ``block/{hash}`` and ``deploy/{hash}``, with different JSON, so the
sidecar's routes live under their own prefix: a sidecar client's base URL is ``…/sidecar``. Answers are the
node's JSON as it was received (the value inside the event's type tag), the deploy aggregate is assembled
from those bytes, and errors are the sidecar's: ``{"code":404,"message":"Query returned no results"}``, 400
``Invalid parameter in query: Expected hex-encoded hash (64 chars), received: … (length: n)`` (public keys:
``(66/68 chars)``), and 400 ``Invalid request path provided`` for any other path under ``sidecar/`` (the
sidecar itself answered 500 for some of them). As in the sidecar, a path segment that is not a hash is read
as a height or an era when it is a ``u64``; a u64 beyond the store's 64-bit columns is simply not found.
"""

# no "from __future__ import annotations": FastAPI reads the routes' annotations, and ``Net`` is local

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from bftscope.families.casper.api import params, payloads
from bftscope.families.casper.api.models import DeployAggregate, SidecarBlock, SidecarPayload
from bftscope.families.casper.api.responses import (
    SIDECAR_RESPONSES,
    SidecarFailure,
    raw_json,
    sidecar_errors,
    sidecar_failure,
)
from bftscope.families.casper.api.scope import CasperScope

__all__ = ["INVALID_PATH", "NO_RESULTS", "add_sidecar_routes", "invalid_path"]

NO_RESULTS = "Query returned no results"
INVALID_PATH = "Invalid request path provided"


def invalid_path() -> Response:
    return sidecar_failure(400, INVALID_PATH)


def _hash(text: str) -> str:
    if not params.is_hash(text):
        raise SidecarFailure(400, f"Invalid parameter in query: Expected hex-encoded hash (64 chars), received: "
                                  f"{text} (length: {len(text)})")  # fmt: skip
    return text


def _found(body: bytes | None) -> Response:
    if body is None:
        raise SidecarFailure(404, NO_RESULTS)
    return raw_json(body)


def _listed(bodies: list[bytes]) -> Response:
    if not bodies:
        raise SidecarFailure(404, NO_RESULTS)
    return raw_json(b"[" + b",".join(bodies) + b"]")


def _int64(value: int) -> int | None:
    return value if value <= params.INT64_MAX else None


def add_sidecar_routes(router: APIRouter, scope: Callable[..., CasperScope]) -> None:
    """The sidecar's routes on ``router`` under ``/sidecar``, reading the network ``scope`` resolves."""
    Net = Annotated[CasperScope, Depends(scope)]

    @router.get("/sidecar/block", response_model=SidecarBlock, responses=SIDECAR_RESPONSES)
    @sidecar_errors
    def sidecar_latest_block(net: Net) -> Response:
        """The block of the greatest height: ``{"block_hash", "block"}`` as the node sent it."""
        return _found(None if net.run_id is None else payloads.latest_block_raw(net.store, net.run_id))

    @router.get("/sidecar/block/{hashOrHeight}", response_model=SidecarBlock, responses=SIDECAR_RESPONSES)
    @sidecar_errors
    def sidecar_block(hashOrHeight: str, net: Net) -> Response:
        """A block by its hash (64 hex digits) or its height."""
        height = None if params.is_hash(hashOrHeight) else params.u64(hashOrHeight)
        if height is None:
            _hash(hashOrHeight)  # neither a hash nor a u64: the sidecar's message for a bad hash
        if net.run_id is None or (height is not None and _int64(height) is None):
            raise SidecarFailure(404, NO_RESULTS)
        if height is None:
            return _found(payloads.block_raw(net.store, net.run_id, block_hash=hashOrHeight))
        return _found(payloads.block_raw(net.store, net.run_id, height=height))

    @router.get("/sidecar/deploy/{deployHash}", response_model=DeployAggregate, responses=SIDECAR_RESPONSES)
    @sidecar_errors
    def sidecar_deploy(deployHash: str, net: Net) -> Response:
        """``{"deploy_hash", "deploy_accepted", "deploy_processed", "deploy_expired"}``; 404 until the deploy
        was accepted. ``deploy_processed`` is null until then (the sidecar's code; its USAGE shows ``{}``)."""
        h = _hash(deployHash)
        accepted = None if net.run_id is None else payloads.deploy_raw(net.store, net.run_id, "accepted", h)
        if accepted is None or net.run_id is None:
            raise SidecarFailure(404, NO_RESULTS)
        processed = payloads.deploy_raw(net.store, net.run_id, "processed", h)
        expired = payloads.expired(net.store, net.run_id, h)
        return raw_json(b'{"deploy_hash":"' + h.lower().encode() + b'","deploy_accepted":' + accepted
                        + b',"deploy_processed":' + (processed if processed is not None else b"null")
                        + b',"deploy_expired":' + (b"true" if expired else b"false") + b"}")  # fmt: skip

    for which in ("accepted", "processed", "expired"):
        _add_deploy_raw(router, scope, which)

    @router.get("/sidecar/faults/{publicKeyOrEra}", response_model=list[SidecarPayload], responses=SIDECAR_RESPONSES)
    @sidecar_errors
    def sidecar_faults(publicKeyOrEra: str, net: Net) -> Response:
        """The faults of a validator (its public key, 66 or 68 hex digits) or of an era."""
        if params.is_public_key(publicKeyOrEra):
            found = [] if net.run_id is None else payloads.faults_raw(net.store, net.run_id, public_key=publicKeyOrEra)
        elif (era := params.u64(publicKeyOrEra)) is not None:
            found = [] if net.run_id is None or _int64(era) is None else payloads.faults_raw(net.store, net.run_id,
                                                                                              era=era)  # fmt: skip
        else:
            raise SidecarFailure(400, "Invalid parameter in query: Expected hex-encoded public key (66/68 chars), "
                                      f"received: {publicKeyOrEra} (length: {len(publicKeyOrEra)})")  # fmt: skip
        return _listed(found)

    @router.get("/sidecar/signatures/{blockHash}", response_model=list[SidecarPayload], responses=SIDECAR_RESPONSES)
    @sidecar_errors
    def sidecar_signatures(blockHash: str, net: Net) -> Response:
        """The finality signatures of a block."""
        h = _hash(blockHash)
        return _listed([] if net.run_id is None else payloads.signatures_raw(net.store, net.run_id, h))

    @router.get("/sidecar/step/{era}", response_model=SidecarPayload, responses=SIDECAR_RESPONSES)
    @sidecar_errors
    def sidecar_step(era: str, net: Net) -> Response:
        """The Step event of an era (its execution effects as the node sent them)."""
        value = params.u64(era)
        if value is None:
            raise SidecarFailure(400, INVALID_PATH)
        return _found(None if net.run_id is None or _int64(value) is None
                      else payloads.step_raw(net.store, net.run_id, value))  # fmt: skip

    del sidecar_latest_block, sidecar_block, sidecar_deploy, sidecar_faults, sidecar_signatures, sidecar_step


def _add_deploy_raw(router: APIRouter, scope: Callable[..., CasperScope], which: str) -> None:
    def sidecar_deploy_raw(deployHash: str, net: Annotated[CasperScope, Depends(scope)]) -> Response:
        h = _hash(deployHash)
        return _found(None if net.run_id is None else payloads.deploy_raw(net.store, net.run_id, which, h))

    sidecar_deploy_raw.__name__ = f"sidecar_deploy_{which}"
    sidecar_deploy_raw.__doc__ = f"The Deploy{which.capitalize()} event of a deploy, as the node sent it."
    router.add_api_route(f"/sidecar/deploy/{which}/{{deployHash}}", sidecar_errors(sidecar_deploy_raw),
                         methods=["GET"], response_model=SidecarPayload, responses=SIDECAR_RESPONSES,
                         name=f"sidecar_deploy_{which}")  # fmt: skip

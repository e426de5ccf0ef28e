"""The CometBFT event kinds: the ``kind`` column of the events table.

Each kind names one observation point in a node. Log lines, WAL records and (later) RPC events
that observe the same thing map to the same kind, so analytics need not care where a run came
from. ``docs/event-model.md`` has the full table with the columns each kind fills.
"""

from __future__ import annotations

__all__ = ["ALL_KINDS", "STEPS", "timeout_extra"]

# Node identity / start-up facts (This node is a validator, P2P Node ID, Started node, Version info).
NODE_INFO = "node_info"
# Entering a consensus step; ``step`` is one of STEPS. Entering new round → step "new_round"
# (``validator`` = that round's proposer when known). Log "Entering X step", WAL round-state
# records, RPC NewRound/NewRoundStep.
STEP = "step"
# A step transition the node refused ("Entering X step with invalid args").
STEP_INVALID = "step_invalid"
# "Propose step; our turn / not our turn to propose": validator = proposer, extra.our_turn.
PROPOSER_TURN = "proposer_turn"
PROPOSAL_SIGNED = "proposal_signed"
# Consensus state accepted a proposal (log "Received proposal"; WAL records it as msg_received).
PROPOSAL_RECEIVED = "proposal_received"
# All parts of the proposal block are in ("Received complete proposal block"; RPC CompleteProposal; derived by
# the WAL parser at the record that completes the part set, extra.derived_from = "wal block parts").
BLOCK_COMPLETE = "block_complete"
VOTE_SIGNED = "vote_signed"  # log "Signed and pushed vote"
VOTE_ADDING = "vote_adding"  # log "Adding vote" (state machine about to add a vote)
VOTE_ADDED = "vote_added"  # log "Added vote to prevote|precommit|last precommits"; RPC Vote; extra.set
VOTE_GOSSIP = "vote_gossip"  # log "Sending vote message" (reactor picked a vote for a peer)
# A consensus message from a peer reached the consensus layer: log "Receive" (reactor) and
# "Receive block part"; WAL MsgInfo with a peer id. ``peer`` = sender, ``msg_type`` = message type.
MSG_RECEIVED = "msg_received"
# The node's own consensus message (WAL MsgInfo without peer id: own votes, proposal, parts).
MSG_INTERNAL = "msg_internal"
# Transport level (p2p MConnection): log "Send"/"TrySend" (hex msgBytes) and "Received bytes"
# (base64 msgBytes), decoded; ``msg_key`` identifies the wire bytes so a send on A can be matched
# with the receive on B.
P2P_SEND = "p2p_send"
P2P_RECV = "p2p_recv"
P2P_PACKET = "p2p_packet"  # log "Read PacketMsg" (one packet of a possibly fragmented message)
# Log "Scheduled timeout"; from a WAL, derived from a fired timeout: its record time minus its duration.
TIMEOUT_SCHEDULED = "timeout_scheduled"
TIMEOUT_FIRED = "timeout_fired"  # log "Timed out"; WAL TimeoutInfo
POLKA_LOCK = "polka_lock"  # "Precommit step: +2/3 prevoted proposal block; locking"
VALID_BLOCK = "valid_block_updated"  # "Updating valid block because of POL"
COMMIT_FINALIZING = "commit_finalizing"  # "Finalizing commit of block"
BLOCK_COMMITTED = "block_committed"  # "Committed block"
BLOCK_EXECUTED = "block_executed"  # text/JSON "Executed block"
STATE_COMMITTED = "state_committed"  # "Committed state"
HEIGHT_END = "height_end"  # WAL EndHeight marker
# The node's process started again after it had been recording: found after ingest from a log's start-up
# lines and from a WAL falling silent before a timeout that was already due (families/cometbft/analytics/restarts.py).
NODE_RESTART = "node_restart"
# One precommit signature of a committed block, from the RPC (``/commit`` or a block's ``last_commit``):
# extra.flag 1 absent, 2 commit, 3 nil (docs/live.md).
COMMIT_SIG = "commit_sig"
# A validator's power changed or it joined/left (RPC ValidatorSetUpdates): extra.power, extra.proposer_priority.
VALIDATOR_UPDATE = "validator_update"

ALL_KINDS: tuple[str, ...] = (
    NODE_INFO, STEP, STEP_INVALID, PROPOSER_TURN, PROPOSAL_SIGNED, PROPOSAL_RECEIVED, BLOCK_COMPLETE,
    VOTE_SIGNED, VOTE_ADDING, VOTE_ADDED, VOTE_GOSSIP, MSG_RECEIVED, MSG_INTERNAL, P2P_SEND, P2P_RECV,
    P2P_PACKET, TIMEOUT_SCHEDULED, TIMEOUT_FIRED, POLKA_LOCK, VALID_BLOCK, COMMIT_FINALIZING,
    BLOCK_COMMITTED, BLOCK_EXECUTED, STATE_COMMITTED, HEIGHT_END, NODE_RESTART, COMMIT_SIG, VALIDATOR_UPDATE,
)  # fmt: skip

STEPS: tuple[str, ...] = (
    "new_height", "new_round", "propose", "prevote", "prevote_wait", "precommit", "precommit_wait", "commit",
)  # fmt: skip


def timeout_extra(duration_ns: int) -> str:
    """``extra`` of a timeout event. A timeout is scheduled relative to the round's start time; when
    that lies in the past (a node that just restarted, or a block that took longer to apply than
    ``timeout_commit``) CometBFT records a negative duration and the timer fires at once. The wait was
    then zero: ``duration_ns`` is 0 and ``overdue_ns`` says how far past due it was."""
    if duration_ns < 0:
        return f'{{"duration_ns":0,"overdue_ns":{-duration_ns}}}'
    return f'{{"duration_ns":{duration_ns}}}'

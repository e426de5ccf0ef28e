"""Shared machinery of the synthetic nodes: clocks and log cursors, proposer rotation, vote sets,
block making, the peer-state view gossip logs, ground-truth recording and the run loop.

Owns everything of the simulation that does not *decide* anything: :class:`.consensus.Engine`
(the state machine) builds on it. Kept apart so the protocol module reads like CometBFT's
``state.go`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TextIO

from bftscope.families.cometbft.synthetic import encode
from bftscope.families.cometbft.synthetic import lines as L
from bftscope.families.cometbft.synthetic.model import Block, NodeState, Setup, VoteSet
from bftscope.families.cometbft.synthetic.p2p import Msg, Net

__all__ = ["Node"]


class Node(Net):
    """The network plus per-node consensus bookkeeping; :meth:`start` is the engine's."""

    def __init__(self, s: Setup) -> None:
        super().__init__(
            s.n,
            latency_us=s.latency_us,
            throttle_us=s.throttle_us,
            gossip_us=s.gossip_us,
            drop=s.drop,
            jitter_us=s.jitter_us,
            base_us=s.base_us,
            node_ids=s.node_ids,
            wires=s.wires,
            seed=s.seed,
        )
        self.s = s
        self.nodes = [NodeState(i) for i in range(s.n)]
        self.total = sum(s.powers)
        self.max_height = s.max_height
        self._prio = [0] * s.n
        self._proposers: list[int] = []
        self.late: dict[tuple[int, int], frozenset[int]] = {}
        # ground truth, collected as the run goes (network.py shapes it into GroundTruth)
        self.proposals: dict[tuple[int, int], dict[str, Any]] = {}
        self.signed: dict[tuple[int, int, int], list[int]] = {}
        self.commits: dict[int, dict[int, dict[str, Any]]] = {}
        self.blocks: dict[int, Block] = {}
        self.drops: dict[int, list[dict[str, Any]]] = {}
        self.committed_all = 0
        self.on_height: Callable[[int], None] | None = None

    # --- helpers -------------------------------------------------------------------------------

    def cur(self, n: NodeState) -> tuple[int, str]:
        """Time and text of the node's next consensus line (lines of one goroutine are µs apart)."""
        t = n.now
        n.now = t + 3
        return t, L.rfc3339(self.base_us[n.idx] + t)

    def log(self, n: NodeState, make: Callable[[str], str]) -> int:
        t, ts = self.cur(n)
        self.emit(n.idx, t, make(ts))
        return t

    def wake(self, n: NodeState) -> None:
        if n.now < self.now:
            n.now = self.now

    @staticmethod
    def hrs(n: NodeState) -> str:
        return f"{n.height}/{n.round}/{L.STEP_NAMES[n.step]}"

    def proposer(self, height: int, round_: int) -> int:
        """Proposer of (height, round): CometBFT's proposer-priority rotation from genesis.

        The state's validator set is incremented once per height and the round's copy once more
        per round, so (height, round) is element ``height - 1 + round`` of one sequence.
        """
        k = height - 1 + round_
        prio, powers = self._prio, self.s.powers
        while len(self._proposers) <= k:
            for v in range(self.n):
                prio[v] += powers[v]
            best = max(range(self.n), key=lambda v: (prio[v], -v))
            prio[best] -= self.total
            self._proposers.append(best)
        return self._proposers[k]

    def vote_set(self, n: NodeState, height: int, round_: int, vtype: int) -> VoteSet:
        key = (height, round_, vtype)
        vs = n.votes.get(key)
        if vs is None:
            vs = n.votes[key] = VoteSet(self.n, self.total, height, round_, vtype)
        return vs

    def short(self, vs: VoteSet) -> str:
        return L.vote_set_short(vs.height, vs.round, vs.vtype, vs.maj_string(), vs.sum / self.total, vs.bit_string())

    # --- blocks and proposals (no state transitions) -----------------------------------------

    def late_peers(self, height: int, round_: int, proposer: int) -> frozenset[int]:
        """Round-escalation heights: peers whose round-0 proposal arrives only after their timeout.

        The rest (with the proposer) gets it in time. The on-time share is kept within [1/3, 2/3] of
        the power, so neither the block nor nil can get +2/3 prevotes: the round goes through
        prevote-wait, nil precommits and precommit-wait into round 1, as when a proposal is slow.
        """
        if round_ != 0 or height not in self.s.escalations:
            return frozenset()
        powers, on_time = self.s.powers, {proposer}
        have = powers[proposer]
        for k in range(1, self.n):
            j = (proposer + k) % self.n
            if have * 3 >= self.total:
                break
            if (have + powers[j]) * 3 <= 2 * self.total:
                on_time.add(j)
                have += powers[j]
        if not (self.total <= have * 3 <= 2 * self.total):
            on_time = {proposer}
        return frozenset(set(range(self.n)) - on_time)

    def make_block(self, n: NodeState, height: int) -> Block:
        s, rng = self.s, self.rng
        lc, prev = n.last_commit, n.last_block
        sigs: list[str] = []
        absent: list[int] = []
        if height == 1 or lc is None or prev is None:
            time_us, lch = s.genesis_us, L.EMPTY_HASH
        else:
            for v in range(self.n):
                vote = lc.votes.get(v)
                if vote is None or (vote.block is not None and vote.block is not prev):
                    sigs.append(L.commit_sig_string(L.ZERO_FP, L.ZERO_FP, 1, L.ZERO_TIME))
                    absent.append(v)
                else:
                    sigs.append(L.commit_sig_string(vote.sig_fp, s.addr_fps[v], 2 if vote.block else 3, vote.ts))
            # BFT time: the voting-power weighted median of the commit's precommit timestamps
            weighted = sorted((vt.ts_us, s.powers[vt.val]) for vt in lc.votes.values() if vt.block is prev)
            median = sum(w for _, w in weighted) // 2
            time_us = weighted[-1][0]
            for ts_us, w in weighted:
                if median <= w:
                    time_us = ts_us
                    break
                median -= w
            lch = rng.randbytes(32).hex().upper()
        size = 300 + 110 * (self.n - len(absent))  # header + LastCommit, as an empty block's encoding
        total = s.block_parts
        per = -(-size // total)
        parts = [rng.randbytes(max(1, min(per, size - k * per))) for k in range(total)]
        depth = (total - 1).bit_length()
        leaves = [rng.randbytes(32) for _ in range(total)]
        aunts = [[rng.randbytes(32) for _ in range(depth)] for _ in range(total)]
        blk = Block(
            height, n.idx, time_us, rng.randbytes(32), rng.randbytes(32), parts, leaves, aunts, sigs, lch, absent
        )
        if prev is not None and height > 1:
            blk.last_block_id, blk.last_round = prev.block_id, n.last_commit_round
        return blk

    def block_text(self, blk: Block) -> str:
        if blk.text is None:
            s = self.s
            last_id = blk.last_block_id
            blk.text = L.block_string(
                chain_id=s.chain_id,
                height=blk.height,
                time_us=blk.time_us,
                last_block_id=last_id,
                last_commit_hash=blk.last_commit_hash,
                validators_hash=s.validators_hash,
                app_hash=s.app_hash,
                consensus_hash=s.consensus_hash,
                proposer=s.addrs[blk.proposer],
                block_hash=blk.hash_hex,
                commit_height=blk.height - 1,
                commit_round=max(blk.last_round, 0),
                commit_block_id=last_id,
                commit_sigs=blk.commit_sigs,
            )
        return blk.text

    def collect_parts(self, n: NodeState, blk: Block) -> None:
        n.parts_block, n.parts_have, n.parts_count = blk, [False] * blk.parts_total, 0

    def proposal_complete(self, n: NodeState) -> bool:
        prop = n.proposal
        if prop is None or n.block is None or n.block is not prop.block:
            return False
        if prop.pol_round < 0:
            return True
        pol = n.votes.get((n.height, prop.pol_round, encode.PREVOTE))
        return pol is not None and pol.maj_set

    def peer_state(self, i: int, j: int) -> str:
        """What i's PeerState for j looks like (built from j's actual state: a close approximation)."""
        nj, ni = self.nodes[j], self.nodes[i]
        prop = nj.proposal
        pv = nj.votes.get((nj.height, nj.round, encode.PREVOTE))
        pc = nj.votes.get((nj.height, nj.round, encode.PRECOMMIT))
        have_parts = prop is not None and nj.parts_block is prop.block
        return L.peer_round_state_json(
            height=nj.height,
            round_=nj.round,
            step=nj.step,
            start_time=self.ts(i, nj.start_time),
            proposal=prop is not None,
            parts_total=prop.block.parts_total if prop is not None else 0,
            parts_hash=prop.block.parts_hash.hex().upper() if prop is not None else "",
            parts_bits="".join("x" if x else "_" for x in nj.parts_have) if have_parts else None,
            prevotes=pv.bit_string() if pv is not None else None,
            precommits=pc.bit_string() if pc is not None else None,
            last_commit_round=nj.last_commit_round,
            last_commit=nj.last_commit.bit_string() if nj.last_commit is not None else None,
            votes=ni.peer_votes.get(j, 0),
            block_parts=ni.peer_parts.get(j, 0),
        )

    def count_peer_vote(self, n: NodeState, sender: int) -> None:
        if sender >= 0:
            n.peer_votes[sender] = n.peer_votes.get(sender, 0) + 1

    def broadcast_valid_block(self, n: NodeState) -> None:
        blk = n.parts_block
        if blk is None:
            return
        have = list(n.parts_have)
        bits = "".join("x" if x else "_" for x in have)
        raw = encode.msg_new_valid_block(n.height, n.round, blk.parts_total, blk.parts_hash, have, False)
        text = (
            f"[ValidBlockMessage H:{n.height} R:{n.round} BP:{blk.parts_total}:{blk.parts_fp} "
            f"BA:BA{{{len(have)}:{bits}}} IsCommit:false]"
        )
        t, _ = self.cur(n)
        self.broadcast(n.idx, t, Msg("new_valid_block", raw, text))

    # --- ground truth ----------------------------------------------------------------------------

    def record_drop(self, height: int, what: dict[str, Any]) -> None:
        self.drops.setdefault(height, []).append(what)

    def record_commit(self, n: NodeState, height: int, blk: Block, t: int) -> None:
        self.blocks.setdefault(height, blk)
        per_node = self.commits.setdefault(height, {})
        per_node[n.idx] = {"round": n.commit_round, "true_us": t, "ts": self.ts(n.idx, t)}
        if len(per_node) == self.n:
            self.committed_all = max(self.committed_all, height)
            old = self.blocks.get(height - 3)
            if old is not None:  # nobody gossips that block any more: drop its parts and messages
                old.prop, old.parts, old.text = None, [], None
            if self.on_height is not None:
                self.on_height(self.now)

    def start(self) -> None:
        raise NotImplementedError  # the engine boots the nodes

    def run_to_end(
        self, outs: Sequence[TextIO], target_chars: int | None, progress: Callable[[int, int], None] | None
    ) -> int:
        """Run until every node committed the last height; returns the characters written.

        Lines are written whenever every node has committed a height (and every 50 000 events
        during long heights): the current event time is a safe watermark, since every line still
        to come is written at or after it.
        """
        written = 0

        def on_flush(upto: int) -> None:
            nonlocal written
            written += self.flush(upto, outs)
            if target_chars is not None and self.max_height is None and written >= target_chars:
                self.max_height = max(node.height for node in self.nodes)
            if progress is not None:
                progress(self.committed_all, written)

        self.on_height = on_flush
        self.start()
        self.run(50_000, on_flush)
        written += self.flush(None, outs)
        if progress is not None:
            progress(self.committed_all, written)
        return written

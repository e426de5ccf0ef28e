"""Proposals, block parts and votes of the synthetic network's consensus: signing, sending, receiving and
adding them (CometBFT v1.0 ``state.go``'s ``defaultDecideProposal``, ``addProposalBlockPart``, ``addVote``,
``signAddVote``) and the reactor's gossip of them.

Kept apart from the state machine's steps (:class:`.consensus.Engine`, which builds on :class:`Messages`) so
each module stays small; the steps this class enters are declared below for the type checker only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bftscope.families.cometbft.synthetic import encode
from bftscope.families.cometbft.synthetic import lines as L
from bftscope.families.cometbft.synthetic.model import (
    COMMIT,
    NEWHEIGHT,
    PREVOTE,
    PROPOSE,
    Block,
    NodeState,
    Proposal,
    Vote,
)
from bftscope.families.cometbft.synthetic.node import Node

__all__ = ["Messages"]


class Messages(Node):
    """Proposals, block parts and votes of every node, and their gossip (the steps are Engine's)."""

    if TYPE_CHECKING:  # the state machine's steps, defined by Engine (consensus.py)
        def enter_commit(self, n: NodeState, height: int, round_: int) -> None: ...
        def enter_new_round(self, n: NodeState, height: int, round_: int) -> None: ...
        def enter_precommit(self, n: NodeState, height: int, round_: int) -> None: ...
        def enter_precommit_wait(self, n: NodeState, height: int, round_: int) -> None: ...
        def enter_prevote(self, n: NodeState, height: int, round_: int) -> None: ...
        def enter_prevote_wait(self, n: NodeState, height: int, round_: int) -> None: ...
        def try_finalize(self, n: NodeState, height: int) -> None: ...

    # --- proposals and block parts -------------------------------------------------------------

    def decide_proposal(self, n: NodeState, height: int, round_: int) -> None:
        i = n.idx
        if i in self.s.silent:
            return  # a silent validator's signer never answers: nothing is proposed
        if n.valid_block is not None:
            block, pol = n.valid_block, n.valid_round
        else:
            block, pol = self.make_block(n, height), -1
        prop = Proposal(block, round_, pol, i, self.rng.randbytes(64))
        n.internal.append((prop, -1))
        n.internal.extend((prop, idx) for idx in range(block.parts_total))
        t = self.log(n, lambda ts: L.signed_proposal_line(height, round_, prop.text, ts))
        self.proposals[(height, round_)] = {"proposer": i, "block_hash": block.hash_hex, "signed_ts": self.ts(i, t)}
        late = self.late_peers(height, round_, i)
        if late:
            self.late[(height, round_)] = late
        for j in self.peers[i]:
            self.when_known(i, j, height, round_, t, self.send_proposal, i, j, prop, None, True, 0)

    def send_proposal(
        self, i: int, j: int, prop: Proposal, parts: list[int] | None, with_proposal: bool, attempt: int
    ) -> None:
        """Data gossip i→j: the Proposal then its parts (back to back, as gossipDataRoutine loops)."""
        s = self.now
        late = self.late.get((prop.height, prop.round))
        nj = self.nodes[j]
        held = late is not None and j in late and attempt == 0
        if held and nj.height == prop.height and nj.round == prop.round and nj.step <= PROPOSE:
            # escalation: hold j's copy back until j has timed out waiting for it
            self.at(s + 100_000, self.send_proposal, i, j, prop, parts, with_proposal, attempt)
            return
        if attempt == 0 and self.moved_past(i, j, prop.height, s):
            return
        force = attempt >= 4
        t, lost_prop, lost = s, False, []
        if with_proposal:
            ta = self.transmit(i, j, t, prop.msg, force=force)
            if ta is None:
                lost_prop = True
            else:
                self.at(ta + 5, self.on_proposal, j, i, prop)
            t += 3
        for idx in range(prop.block.parts_total) if parts is None else parts:
            ta = self.transmit(i, j, t, prop.part_msgs[idx], force=force)
            if ta is None:
                lost.append(idx)
            else:
                self.at(ta + 5, self.on_part, j, i, prop, idx)
            t += 3
        if lost_prop or lost:
            for what in (["proposal"] if lost_prop else []) + [f"block_part:{k}" for k in lost]:
                self.record_drop(prop.height, {"type": what, "round": prop.round, "from": i, "to": j})
            # another node that has the block gossips what j is missing (CometBFT's gossipDataRoutine)
            cands = [k for k in range(self.n) if k not in (i, j) and self.nodes[k].block is prop.block]
            k = self.rng.choice(cands) if cands else i
            when = s + self.latency_us[i][j] + self.gossip_us[k] + self.phase(k)
            self.at(when, self.send_proposal, k, j, prop, None if lost_prop else lost, lost_prop, attempt + 1)

    def fetch_block(self, n: NodeState, blk: Block) -> None:
        """A node in commit without the block: peers that have it gossip the parts it still lacks.

        Checked after a round trip plus a gossip sleep, so parts already on their way (the usual
        case for a lagging node) arrive first; a part that arrived before its proposal was
        discarded, and this is what brings it back (as other peers' gossipDataRoutine would).
        """
        j = n.idx
        wait = 2 * max(self.latency_us[j]) + max(self.gossip_us) + 50_000
        self.at(n.now + wait, self.fetch_check, j, blk)

    def fetch_check(self, j: int, blk: Block) -> None:
        n = self.nodes[j]
        self.wake(n)
        if n.block is blk or n.height != blk.height or n.parts_block is not blk:
            return
        src = blk.prop
        assert src is not None
        cands = [k for k in range(self.n) if k != j and self.nodes[k].block is blk]
        k = self.rng.choice(cands) if cands else blk.proposer
        missing = [x for x in range(blk.parts_total) if not n.parts_have[x]]
        self.at(self.now + self.phase(k), self.send_proposal, k, j, src, missing, False, 1)
        self.fetch_block(n, blk)  # and look again later, in case this copy is lost too

    def on_proposal(self, j: int, i: int, prop: Proposal) -> None:
        n = self.nodes[j]
        self.wake(n)
        self.set_proposal(n, prop)
        self.drain(n)

    def on_part(self, j: int, i: int, prop: Proposal, idx: int) -> None:
        n = self.nodes[j]
        self.wake(n)
        self.add_part(n, prop, idx, i)
        self.drain(n)

    def set_proposal(self, n: NodeState, prop: Proposal) -> None:
        if n.proposal is not None or prop.height != n.height or prop.round != n.round:
            return
        n.proposal = prop
        if n.parts_block is None:
            self.collect_parts(n, prop.block)
        proposer = self.s.addrs[prop.proposer]
        self.log(n, lambda ts: L.received_proposal_line(prop.text, proposer, ts))

    def add_part(self, n: NodeState, prop: Proposal, idx: int, sender: int) -> None:
        blk = prop.block
        if prop.height != n.height or n.parts_block is not blk or n.parts_have[idx]:
            return  # not expecting these parts (wrong height/round) or a duplicate
        n.parts_have[idx] = True
        n.parts_count += 1
        i = n.idx
        if sender >= 0:
            n.peer_parts[sender] = n.peer_parts.get(sender, 0) + 1
        t, _ = self.cur(n)
        self.broadcast(i, t, prop.has_part_msgs[idx], "TrySend")
        frm = self.s.node_ids[sender] if sender >= 0 else ""
        count, total, h, r = n.parts_count, blk.parts_total, prop.height, prop.round
        self.log(n, lambda ts: L.block_part_line(count, frm, h, idx, r, total, ts))
        if count == total:
            n.block = blk
            self.log(n, lambda ts: L.complete_block_line(blk.hash_hex, h, ts))
            self.handle_complete(n)

    def handle_complete(self, n: NodeState) -> None:
        h, r = n.height, n.round
        pv = n.votes.get((h, r, encode.PREVOTE))
        has23 = pv is not None and pv.maj_set
        if pv is not None and has23 and pv.maj is not None and n.valid_round < r and pv.maj is n.block:
            hh = pv.maj.hash_hex
            self.log(n, lambda ts: L.valid_block_new_line(hh, r, ts))
            n.valid_round, n.valid_block = r, n.block
        if n.step <= PROPOSE and self.proposal_complete(n):
            self.enter_prevote(n, h, r)
            if has23:
                self.enter_precommit(n, h, r)
        elif n.step == COMMIT:
            self.try_finalize(n, h)

    # --- votes ---------------------------------------------------------------------------------

    def sign_vote(self, n: NodeState, vtype: int, height: int, round_: int, block: Block | None) -> None:
        i = n.idx
        if i in self.s.silent:
            return
        t, ts = self.cur(n)
        local = self.base_us[i] + t
        ref = n.locked_block or n.block  # voteTime: at least the block time + 1ms (BFT time)
        vts = max(local, ref.time_us + 1_000) if ref is not None else local
        vote = Vote(self.s, vtype, height, round_, i, block, vts, self.rng.randbytes(64))
        self.emit(i, t, L.signed_vote_line(height, round_, vote.text, ts))
        n.internal.append((vote, -1))
        self.signed.setdefault((height, round_, vtype), []).append(i)
        for j in self.peers[i]:
            self.when_known(i, j, height, -1, t, self.send_vote, i, j, vote, 0)

    def send_vote(self, i: int, j: int, vote: Vote, attempt: int) -> None:
        """Vote gossip i→j (gossipVotesRoutine picked it): Sending vote message, then Send."""
        s = self.now
        if attempt == 0 and self.moved_past(i, j, vote.height, s):
            if vote.vtype == encode.PRECOMMIT:
                self.last_commit_gossip(i, j, vote)
            return
        self.emit(i, s, L.sending_vote_line(self.peer_state(i, j), vote.text, self.ts(i, s)))
        ta = self.transmit(i, j, s + 1, vote.msg, force=attempt >= 4)
        if ta is not None:
            self.at(ta + 5, self.on_vote, j, i, vote)
            return
        self.record_drop(
            vote.height,
            {"type": "prevote" if vote.vtype == 1 else "precommit", "round": vote.round, "validator": vote.val,
             "from": i, "to": j},
        )  # fmt: skip
        key = (vote.height, vote.round, vote.vtype)
        cands = []
        for k in range(self.n):
            if k in (i, j):
                continue
            nk = self.nodes[k]
            vs = nk.votes.get(key) or (nk.last_commit if nk.last_commit is not None and key[2] == 2 else None)
            if vs is not None and vs.votes.get(vote.val) is vote:
                cands.append(k)
        k = self.rng.choice(cands) if cands else i
        when = s + self.latency_us[i][j] + self.gossip_us[k] + self.phase(k)
        self.at(when, self.send_vote, k, j, vote, attempt + 1)

    def last_commit_gossip(self, i: int, j: int, vote: Vote) -> None:
        """j committed before i's precommit reached it: i sends it as part of its LastCommit.

        CometBFT's gossipVotesForHeight gives a peer in NewHeight the precommits of our LastCommit
        once we are at its height too — the path by which slower validators' precommits still
        make it into the next block's LastCommit.
        """
        ni = self.nodes[i]
        if ni.height == vote.height:
            ni.after_commit.append((j, vote))  # once we have committed too
        elif ni.height == vote.height + 1:
            self.at(max(ni.now, self.now) + self.phase(i), self.send_last_commit_vote, i, j, vote)

    def send_last_commit_vote(self, i: int, j: int, vote: Vote) -> None:
        nj = self.nodes[j]
        lc = nj.last_commit
        if nj.height != vote.height + 1 or nj.step != NEWHEIGHT or lc is None or vote.val in lc.votes:
            return  # j has moved on (or got the vote elsewhere): the reactor would not send it
        self.send_vote(i, j, vote, 1)

    def on_vote(self, j: int, i: int, vote: Vote) -> None:
        n = self.nodes[j]
        self.wake(n)
        self.add_vote(n, vote, i)
        self.drain(n)

    def drain(self, n: NodeState) -> None:
        """Process the node's own proposal, parts and votes (internal queue), as receiveRoutine does."""
        while n.internal:
            obj, idx = n.internal.pop(0)
            n.now += 10
            if isinstance(obj, Vote):
                self.add_vote(n, obj, -1)
            elif idx < 0:
                self.set_proposal(n, obj)
            else:
                self.add_part(n, obj, idx, -1)

    def add_vote(self, n: NodeState, vote: Vote, sender: int) -> None:
        i, h = n.idx, n.height
        self.log(n, lambda ts: L.adding_vote_line(h, vote.val, vote.height, vote.vtype, ts))
        power = self.s.powers[vote.val]
        if vote.height + 1 == h and vote.vtype == encode.PRECOMMIT:
            if n.step != NEWHEIGHT:
                self.log(n, lambda ts: L.vote_late_line(vote.text, ts))
                return
            lc = n.last_commit
            if lc is None or vote.round != lc.round or not lc.add(vote, power):
                return
            self.count_peer_vote(n, sender)
            t, _ = self.cur(n)
            self.broadcast(i, t, vote.has_vote, "TrySend")
            text = self.short(lc)
            self.log(n, lambda ts: L.added_last_commit_line(text, ts))
            return
        if vote.height != h:
            peer = self.s.node_ids[sender] if sender >= 0 else ""
            self.log(n, lambda ts: L.vote_ignored_line(h, peer, vote.height, ts))
            return
        vs = self.vote_set(n, vote.height, vote.round, vote.vtype)
        if not vs.add(vote, power):
            return  # duplicate
        self.count_peer_vote(n, sender)
        t, _ = self.cur(n)
        self.broadcast(i, t, vote.has_vote, "TrySend")
        r = vote.round
        if vote.vtype == encode.PREVOTE:
            text = self.short(vs)
            self.log(n, lambda ts: L.added_prevote_line(text, vote.text, ts))
            if vs.maj_set and vs.maj is not None and n.valid_round < r and r == n.round:
                if n.block is vs.maj:
                    valid_round = n.valid_round
                    self.log(n, lambda ts: L.valid_block_line(r, valid_round, ts))
                    n.valid_round, n.valid_block = r, n.block
                elif n.parts_block is not vs.maj:
                    n.block = None
                    self.collect_parts(n, vs.maj)
                self.broadcast_valid_block(n)
            if n.round < r and vs.any23():
                self.enter_new_round(n, h, r)
            elif n.round == r and n.step >= PREVOTE:
                if vs.maj_set and (vs.maj is None or self.proposal_complete(n)):
                    self.enter_precommit(n, h, r)
                elif vs.any23():
                    self.enter_prevote_wait(n, h, r)
            elif n.proposal is not None and 0 <= n.proposal.pol_round == r and self.proposal_complete(n):
                self.enter_prevote(n, h, n.round)
        else:
            data = f"Votes:{vs.sum}/{self.total}({vs.sum / self.total:.3f})"
            addr = self.s.addrs[vote.val]
            self.log(n, lambda ts: L.added_precommit_line(data, vote.height, r, addr, vote.ts, ts))
            if vs.maj_set:
                self.enter_new_round(n, h, r)
                self.enter_precommit(n, h, r)
                if vs.maj is not None:
                    self.enter_commit(n, h, r)
                else:
                    self.enter_precommit_wait(n, h, r)
            elif n.round <= r and vs.any23():
                self.enter_new_round(n, h, r)
                self.enter_precommit_wait(n, h, r)

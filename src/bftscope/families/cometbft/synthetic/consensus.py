"""The synthetic network's CometBFT consensus state machine, one instance per node, over :mod:`.p2p`.

Owns the protocol behaviour the logs must show: rounds and steps (``enterNewRound`` → propose →
prevote [→ prevote wait] → precommit [→ precommit wait] → commit), proposals and block parts, votes
with their +2/3 rules, locking/valid block, timeouts through a one-timer ticker, late precommits into
``LastCommit``, catching up on +2/3 precommits while waiting ``timeout_commit``, and the reactor's
gossip (proposal once the peer is at that height/round; votes once it is at that height; HasVote,
HasProposalBlockPart, NewRoundStep and NewValidBlock broadcasts).

The control flow mirrors CometBFT v1.0 ``internal/consensus/state.go`` function by function, with the
same log messages at the same points, so that a log-based analysis of the simulated run meets the
sequences it would meet in real logs (including the ``with invalid args`` lines that every commit
produces). Deliberate simplifications: a vote reaches each peer from its signer (another peer
re-gossips it only when that copy was lost, or from its LastCommit once the peer has committed);
the validator index is the node index; the proposer rotation is CometBFT's priority algorithm with
ties broken by index; blocks carry no txs; NewRoundStep messages are never lost; the PeerState
printed by ``Sending vote message`` is read from the peer's actual state.
"""

from __future__ import annotations

from bftscope.families.cometbft.synthetic import encode
from bftscope.families.cometbft.synthetic import lines as L
from bftscope.families.cometbft.synthetic.model import (
    COMMIT,
    NEWHEIGHT,
    NEWROUND,
    PRECOMMIT,
    PRECOMMITWAIT,
    PREVOTE,
    PREVOTEWAIT,
    PROPOSE,
    Block,
    NodeState,
    Proposal,
    Vote,
)
from bftscope.families.cometbft.synthetic.node import Node
from bftscope.families.cometbft.synthetic.p2p import Msg

__all__ = ["Engine"]

_MAX_ROUNDS = 60  # a height needing more rounds means the configuration cannot make progress


class Engine(Node):
    """CometBFT v1.0 consensus (state.go) and its reactor's gossip, for every node of the run."""

    # --- start, timeouts, steps ----------------------------------------------------------------

    def start(self) -> None:
        for n in self.nodes:
            self.at(self.rng.randrange(0, 200_000), self.boot, n)

    def boot(self, n: NodeState) -> None:
        self.wake(n)
        i, s = n.idx, self.s
        self.log(n, lambda ts: L.validator_line(s.addrs[i], s.pub_keys[i], ts))
        n.now += 40_000  # the p2p layer comes up after the consensus state
        self.log(n, lambda ts: L.node_id_line(s.node_ids[i], f"{s.home}/node{i}/config/node_key.json", ts))
        # Its moniker labels the node as the ground truth does (node0 …).
        self.log(n, lambda ts: L.started_node_line(s.node_ids[i], f"node{i}", s.chain_id, ts))
        n.now += 900_000
        n.start_time = n.now + s.commit_us[i]  # genesis: StartTime = now + timeout_commit
        self.schedule_timeout(n, n.start_time - n.now, 1, 0, NEWHEIGHT)
        n.now += 20_000 + self.rng.randrange(30_000)  # peers connect: AddPeer sends our NewRoundStep
        self.new_step(n)

    def schedule_timeout(self, n: NodeState, dur: int, height: int, round_: int, step: int) -> None:
        oh, orr, ostep = n.timer_hrs  # the ticker ignores ticks for an older height/round/step
        if height < oh or (height == oh and (round_ < orr or (round_ == orr and ostep > 0 and step <= ostep))):
            return
        n.timer_gen += 1
        n.timer_hrs = (height, round_, step)
        t = self.log(n, lambda ts: L.timeout_line(False, L.go_duration(dur * 1000), height, round_, step, ts))
        self.at(t + max(dur, 0), self.on_timeout, n, n.timer_gen, height, round_, step, dur)

    def on_timeout(self, n: NodeState, gen: int, height: int, round_: int, step: int, dur: int) -> None:
        if gen != n.timer_gen or (self.max_height is not None and height > self.max_height):
            return  # replaced by a later timer (time.Timer reset) / the run ends before this height
        self.wake(n)
        self.log(n, lambda ts: L.timeout_line(True, L.go_duration(dur * 1000), height, round_, step, ts))
        if height != n.height or round_ < n.round or (round_ == n.round and step < n.step):
            return
        if step == NEWHEIGHT:
            self.enter_new_round(n, height, 0)
        elif step == PROPOSE:
            self.enter_prevote(n, height, round_)
        elif step == PREVOTEWAIT:
            self.enter_precommit(n, height, round_)
        elif step == PRECOMMITWAIT:
            self.enter_precommit(n, height, round_)
            self.enter_new_round(n, height, round_ + 1)
        self.drain(n)

    def new_step(self, n: NodeState) -> None:
        """Broadcast the node's NewRoundStep; peers learn its height/round from it (gossip gating)."""
        t, _ = self.cur(n)
        i, h, r, step = n.idx, n.height, n.round, n.step
        secs = int((t - n.start_time) / 1_000_000)  # Go int64(float64) truncates toward zero
        lcr = n.last_commit_round
        msg = Msg(
            "new_round_step",
            encode.msg_new_round_step(h, r, step, secs, lcr),
            f"[NewRoundStep H:{h} R:{r} S:{L.STEP_NAMES[step]} LCR:{lcr}]",
        )
        for j in self.peers[i]:
            # Never lost: peers track our height only through these (over TCP they cannot vanish
            # without the connection going down), and votes/proposals are gossiped on that basis.
            ta = self.transmit(i, j, t, msg, force=True)
            assert ta is not None
            self.learn(j, i, h, r, ta)

    def enter_new_round(self, n: NodeState, height: int, round_: int) -> None:
        if n.height != height or round_ < n.round or (n.round == round_ and n.step != NEWHEIGHT):
            cur = self.hrs(n)
            self.log(n, lambda ts: L.step_line("Entering new round with invalid args", cur, height, round_, ts))
            return
        if self.max_height is not None and height > self.max_height:
            return
        if round_ >= _MAX_ROUNDS:
            raise RuntimeError(f"height {height} did not commit in {_MAX_ROUNDS} rounds; the network cannot progress")
        previous = self.hrs(n)
        n.round, n.step = round_, NEWROUND
        proposer = self.s.addrs[self.proposer(height, round_)]
        if round_ != 0:
            self.log(n, lambda ts: L.resetting_proposal_line(height, proposer, round_, ts))
            n.proposal = None
            if n.want is None:
                n.block, n.parts_block, n.parts_have, n.parts_count = None, None, [], 0
        self.log(n, lambda ts: L.new_round_line(height, round_, previous, proposer, ts))
        n.triggered_precommit = False
        self.enter_propose(n, height, round_)

    def enter_propose(self, n: NodeState, height: int, round_: int) -> None:
        i = n.idx
        if n.height != height or round_ < n.round or (n.round == round_ and n.step >= PROPOSE):
            cur = self.hrs(n)
            self.log(n, lambda ts: L.step_line("entering propose step with invalid args", cur, height, round_, ts))
            return
        cur = self.hrs(n)
        self.log(n, lambda ts: L.step_line("Entering propose step", cur, height, round_, ts))
        self.schedule_timeout(n, self.s.propose_us[i] + round_ * self.s.propose_delta_us[i], height, round_, PROPOSE)
        p = self.proposer(height, round_)
        addr = self.s.addrs[p]
        self.log(n, lambda ts: L.proposer_line(p == i, height, round_, addr, ts))
        if p == i:
            self.decide_proposal(n, height, round_)
        n.step = PROPOSE
        self.new_step(n)
        if self.proposal_complete(n):
            self.enter_prevote(n, height, n.round)

    def enter_prevote(self, n: NodeState, height: int, round_: int) -> None:
        if n.height != height or round_ < n.round or (n.round == round_ and n.step >= PREVOTE):
            cur = self.hrs(n)
            self.log(n, lambda ts: L.step_line("Entering prevote step with invalid args", cur, height, round_, ts))
            return
        cur = self.hrs(n)
        self.log(n, lambda ts: L.step_line("Entering prevote step", cur, height, round_, ts))
        text, block = self.prevote_choice(n, height)
        self.log(n, lambda ts: L.consensus_hr(text, height, round_, ts))
        self.sign_vote(n, encode.PREVOTE, height, round_, block)
        n.round, n.step = round_, PREVOTE
        self.new_step(n)

    def prevote_choice(self, n: NodeState, height: int) -> tuple[str, Block | None]:
        """defaultDoPrevote: what to prevote, and the debug line explaining it."""
        prop = n.proposal
        if prop is None:
            return "Prevote step: did not receive a valid Proposal; prevoting nil", None
        if n.block is None or n.block is not prop.block:
            return "Prevote step: did not receive the ProposalBlock; prevoting nil", None
        blk = n.block
        if prop.pol_round == -1:
            if n.locked_round == -1:
                if n.valid_round != -1 and n.valid_block is blk:
                    return "Prevote step: ProposalBlock matches our valid block; prevoting the proposal", blk
                return "Prevote step: ProposalBlock is valid and there is no locked block; prevoting the proposal", blk
            if n.locked_block is blk:
                return (
                    "Prevote step: ProposalBlock is valid (POLRound is -1) and matches our locked block; "
                    "prevoting the proposal",
                    blk,
                )
            return (
                "Prevote step: ProposalBlock is valid (POLRound is -1), but doesn't match our locked block; "
                "prevoting nil",
                None,
            )
        pol = n.votes.get((height, prop.pol_round, encode.PREVOTE))
        if pol is not None and pol.maj_set and pol.maj is blk and prop.pol_round < n.round:
            if n.locked_round < prop.pol_round:
                return (
                    "Prevote step: ProposalBlock is valid and received a 2/3majority in a round later than the "
                    "locked round; prevoting the proposal",
                    blk,
                )
            if n.locked_block is blk:
                return "Prevote step: ProposalBlock is valid and matches our locked block; prevoting the proposal", blk
        return (
            "Prevote step: ProposalBlock is valid but was not our locked block or did not receive a more "
            "recent majority; prevoting nil",
            None,
        )

    def enter_prevote_wait(self, n: NodeState, height: int, round_: int) -> None:
        cur = self.hrs(n)
        if n.height != height or round_ < n.round or (n.round == round_ and n.step >= PREVOTEWAIT):
            self.log(n, lambda ts: L.step_line("Entering prevote wait step with invalid args", cur, height, round_, ts))
            return
        self.log(n, lambda ts: L.step_line("Entering prevote wait step", cur, height, round_, ts))
        i = n.idx
        self.schedule_timeout(
            n, self.s.prevote_us[i] + round_ * self.s.prevote_delta_us[i], height, round_, PREVOTEWAIT
        )
        n.round, n.step = round_, PREVOTEWAIT
        self.new_step(n)

    def enter_precommit(self, n: NodeState, height: int, round_: int) -> None:
        cur = self.hrs(n)
        if n.height != height or round_ < n.round or (n.round == round_ and n.step >= PRECOMMIT):
            self.log(n, lambda ts: L.step_line("Entering precommit step with invalid args", cur, height, round_, ts))
            return
        self.log(n, lambda ts: L.step_line("Entering precommit step", cur, height, round_, ts))
        pv = n.votes.get((height, round_, encode.PREVOTE))
        block: Block | None = None
        if pv is None or not pv.maj_set:
            text = (
                "Precommit step; no +2/3 prevotes during enterPrecommit while we are locked; precommitting nil"
                if n.locked_block is not None
                else "Precommit step; no +2/3 prevotes during enterPrecommit; precommitting nil"
            )
            self.log(n, lambda ts: L.consensus_hr(text, height, round_, ts))
        elif pv.maj is None:
            self.log(
                n,
                lambda ts: L.consensus_hr(
                    "Precommit step; +2/3 prevoted for nil; precommitting nil", height, round_, ts
                ),
            )
        elif n.locked_block is pv.maj:
            self.log(
                n,
                lambda ts: L.consensus_hr("Precommit step; +2/3 prevoted locked block; relocking", height, round_, ts),
            )
            n.locked_round, block = round_, pv.maj
        elif n.block is pv.maj:
            h = pv.maj.hash_hex
            self.log(
                n,
                lambda ts: L.hash_hr_line(
                    "Precommit step: +2/3 prevoted proposal block; locking", h, height, round_, ts
                ),
            )
            n.locked_round, n.locked_block, block = round_, pv.maj, pv.maj
        else:
            bid = pv.maj.block_id
            self.log(n, lambda ts: L.no_block_precommit_line(bid, height, round_, ts))
            if n.parts_block is not pv.maj:
                self.collect_parts(n, pv.maj)
                n.block = None
        self.sign_vote(n, encode.PRECOMMIT, height, round_, block)
        n.round, n.step = round_, PRECOMMIT
        self.new_step(n)

    def enter_precommit_wait(self, n: NodeState, height: int, round_: int) -> None:
        if n.height != height or round_ < n.round or (n.round == round_ and n.triggered_precommit):
            cur2, trig = f"{n.height}/{n.round}", n.triggered_precommit
            self.log(n, lambda ts: L.precommit_wait_invalid_line(cur2, height, round_, trig, ts))
            return
        cur = self.hrs(n)
        self.log(n, lambda ts: L.step_line("Entering precommit wait step", cur, height, round_, ts))
        i = n.idx
        dur = self.s.precommit_us[i] + round_ * self.s.precommit_delta_us[i]
        self.schedule_timeout(n, dur, height, round_, PRECOMMITWAIT)
        n.triggered_precommit = True
        self.new_step(n)

    def enter_commit(self, n: NodeState, height: int, round_: int) -> None:
        cur = self.hrs(n)
        if n.height != height or n.step >= COMMIT:
            self.log(n, lambda ts: L.commit_step_line(round_, cur, height, ts, invalid=True))
            return
        self.log(n, lambda ts: L.commit_step_line(round_, cur, height, ts))
        blk = n.votes[(height, round_, encode.PRECOMMIT)].maj
        assert blk is not None
        if n.locked_block is blk and n.block is not blk:
            n.block = blk
        if n.block is not blk:
            if n.parts_block is not blk:
                hh = blk.hash_hex
                self.log(n, lambda ts: L.unknown_commit_line(hh, round_, height, ts))
                self.collect_parts(n, blk)
            n.want = blk
            self.fetch_block(n, blk)
        n.step, n.commit_round = COMMIT, round_
        n.commit_time = n.now
        self.new_step(n)
        self.try_finalize(n, height)

    def try_finalize(self, n: NodeState, height: int) -> None:
        blk = n.votes[(height, n.commit_round, encode.PRECOMMIT)].maj
        if blk is None or n.block is not blk:
            want = blk.hash_hex if blk is not None else ""
            self.log(n, lambda ts: L.finalize_failed_line(want, height, ts))
            return
        self.finalize(n, height, blk)

    def finalize(self, n: NodeState, height: int, blk: Block) -> None:
        i, s = n.idx, self.s
        self.log(n, lambda ts: L.finalizing_line(blk.hash_hex, height, s.app_hash, ts))
        t = self.log(n, lambda ts: L.committed_block_line(self.block_text(blk), height, ts))
        self.record_commit(n, height, blk, t)
        n.now += 1_000 + self.rng.randrange(3_000)  # ApplyBlock: FinalizeBlock + Commit on the app
        # updateToState
        n.last_commit = n.votes[(height, n.commit_round, encode.PRECOMMIT)]
        n.last_commit_round, n.last_block = n.commit_round, blk
        n.height, n.round, n.step = height + 1, 0, NEWHEIGHT
        n.start_time = n.commit_time + s.commit_us[i]
        n.proposal, n.block, n.parts_block, n.parts_have, n.parts_count, n.want = None, None, None, [], 0, None
        n.locked_round, n.locked_block, n.valid_round, n.valid_block = -1, None, -1, None
        n.commit_round, n.triggered_precommit = -1, False
        for key in [k for k in n.votes if k[0] <= height]:
            del n.votes[key]
        self.new_step(n)
        self.schedule_timeout(n, n.start_time - n.now, height + 1, 0, NEWHEIGHT)  # scheduleRound0
        pending, n.after_commit = n.after_commit, []
        for j, vote in pending:
            self.last_commit_gossip(i, j, vote)

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

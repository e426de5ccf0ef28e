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

The steps are here; proposals, block parts and votes (and their gossip) are in :mod:`.messages`.
"""

from __future__ import annotations

from bftscope.families.cometbft.synthetic import encode
from bftscope.families.cometbft.synthetic import lines as L
from bftscope.families.cometbft.synthetic.messages import Messages
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
)
from bftscope.families.cometbft.synthetic.p2p import Msg

__all__ = ["Engine"]

_MAX_ROUNDS = 60  # a height needing more rounds means the configuration cannot make progress


class Engine(Messages):
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

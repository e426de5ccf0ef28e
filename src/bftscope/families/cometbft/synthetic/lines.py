"""Text of the synthetic CometBFT 1.x JSON debug lines: Go value formats and per-line templates.

Owns every string the simulator writes, so that the state machine (:mod:`.consensus`) and the
network (:mod:`.p2p`) never deal with formatting. The formats are those of CometBFT v1.0's
``String()`` methods and go-kit's JSON logger (keys sorted byte-wise, ``ts`` = RFC 3339 with the
fraction's trailing zeros trimmed, ``[]byte`` as base64, ``HexBytes`` as upper-case hex, durations
as Go ``Duration.String()``).

Why hand-built templates instead of ``json.dumps``: the benchmarks need hundreds of thousands of
lines per second. Every value written unescaped here is hex, base64, digits or one of a few fixed
identifiers, none of which needs JSON escaping; multi-line values (``Block{...}``, ``Part{...}``) go
through :func:`json_str`. Tests parse every line with a JSON parser and check the key order.
"""

from __future__ import annotations

import json
import time

__all__ = [
    "STEP_NAMES",
    "ZERO_FP",
    "fp",
    "go_duration",
    "go_time",
    "json_str",
    "rfc3339",
]

# RoundStepType values (cometbft internal/consensus/types/round_state.go) → String().
STEP_NAMES = {
    1: "RoundStepNewHeight",
    2: "RoundStepNewRound",
    3: "RoundStepPropose",
    4: "RoundStepPrevote",
    5: "RoundStepPrevoteWait",
    6: "RoundStepPrecommit",
    7: "RoundStepPrecommitWait",
    8: "RoundStepCommit",
}
VOTE_TYPE_NAMES = {1: "SIGNED_MSG_TYPE_PREVOTE", 2: "SIGNED_MSG_TYPE_PRECOMMIT"}
VOTE_KIND = {1: "Prevote", 2: "Precommit"}
ZERO_FP = "000000000000"
ZERO_TIME = "0001-01-01T00:00:00Z"
EMPTY_HASH = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"  # sha256("")

_prefix_cache: dict[int, str] = {}


def rfc3339(unix_us: int) -> str:
    """Go ``time.RFC3339Nano`` of a UTC instant given in Unix microseconds (trailing zeros trimmed)."""
    sec, frac = divmod(unix_us, 1_000_000)
    prefix = _prefix_cache.get(sec)
    if prefix is None:
        if len(_prefix_cache) > 8192:  # the run moves forward in time; old seconds are never asked again
            _prefix_cache.clear()
        prefix = _prefix_cache[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    if frac == 0:
        return prefix + "Z"
    return prefix + "." + f"{frac:06d}".rstrip("0") + "Z"


def go_time(unix_us: int) -> str:
    """Go ``time.Time.String()`` of a UTC instant: ``2025-06-07 14:41:31.325889 +0000 UTC``."""
    text = rfc3339(unix_us)[:-1]
    return text.replace("T", " ") + " +0000 UTC"


def _frac(value: int, unit: int, digits: int) -> str:
    whole, rest = divmod(value, unit)
    if rest == 0:
        return str(whole)
    return f"{whole}." + f"{rest:0{digits}d}".rstrip("0")


def go_duration(ns: int) -> str:
    """Go ``time.Duration.String()``: ``3s``, ``1.5s``, ``998.734ms``, ``12µs``, ``2m0s``, ``-1ms``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = -ns if ns < 0 else ns
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return sign + _frac(u, 1_000, 3) + "µs"
    if u < 1_000_000_000:
        return sign + _frac(u, 1_000_000, 6) + "ms"
    minutes, rest = divmod(u, 60_000_000_000)
    text = _frac(rest, 1_000_000_000, 9) + "s"
    if minutes:
        hours, minutes = divmod(minutes, 60)
        text = f"{minutes}m" + text
        if hours:
            text = f"{hours}h" + text
    return sign + text


def fp(data: bytes) -> str:
    """``cmtbytes.Fingerprint`` printed with ``%X``: the first 6 bytes, zero-padded."""
    return data[:6].hex().upper().ljust(12, "0")


def json_str(text: str) -> str:
    """A JSON string literal (with quotes), for values that may hold newlines or quotes."""
    return json.dumps(text, ensure_ascii=False)


def vote_string(
    val_index: int, addr_fp: str, height: int, round_: int, vote_type: int, hash_fp: str, sig_fp: str, ts: str
) -> str:
    """``Vote.String()``: ``Vote{0:14723CA68371 1/00/SIGNED_MSG_TYPE_PREVOTE(Prevote) 59E5... F786... 0000... @ t}``."""
    return (
        f"Vote{{{val_index}:{addr_fp} {height}/{round_:02d}/{VOTE_TYPE_NAMES[vote_type]}({VOTE_KIND[vote_type]}) "
        f"{hash_fp} {sig_fp} {ZERO_FP} @ {ts}}}"
    )


def block_id_string(block_hash_hex: str, parts_total: int, parts_fp: str) -> str:
    """``BlockID.String()``: ``HASH:total:PSHFP`` (``:0:000000000000`` for the empty BlockID)."""
    return f"{block_hash_hex}:{parts_total}:{parts_fp}"


def proposal_string(height: int, round_: int, block_id: str, pol_round: int, sig_fp: str, ts: str) -> str:
    return f"Proposal{{{height}/{round_} ({block_id}, {pol_round}) {sig_fp} @ {ts}}}"


def part_string(index: int, data: bytes, aunts: list[bytes]) -> str:
    """``Part.String()`` with its ``Proof``: multi-line, so it must go through :func:`json_str`."""
    aunts_text = "[" + " ".join(a.hex().upper() for a in aunts) + "]"
    return f"Part{{#{index}\n  Bytes: {fp(data)}...\n  Proof: Proof{{\n    Aunts: {aunts_text}\n  }}\n}}"


def go_float(value: float) -> str:
    """Go ``%v`` of a float64 (shortest representation, ``1`` rather than ``1.0``)."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def vote_set_short(height: int, round_: int, vote_type: int, maj23: str | None, frac: float, bits: str) -> str:
    """``VoteSet.StringShort()``; ``maj23`` is a BlockID string or None (printed ``<nil>``)."""
    return (
        f"VoteSet{{H:{height} R:{round_} T:{VOTE_TYPE_NAMES[vote_type]} +2/3:{maj23 or '<nil>'}({go_float(frac)}) "
        f"BA{{{len(bits)}:{bits}}} map[]}}"
    )


def commit_sig_string(sig_fp: str, addr_fp: str, flag: int, ts: str) -> str:
    return f"CommitSig{{{sig_fp} by {addr_fp} on {flag} @ {ts}}}"


def block_string(
    *,
    chain_id: str,
    height: int,
    time_us: int,
    last_block_id: str,
    last_commit_hash: str,
    validators_hash: str,
    app_hash: str,
    consensus_hash: str,
    proposer: str,
    block_hash: str,
    commit_height: int,
    commit_round: int,
    commit_block_id: str,
    commit_sigs: list[str],
) -> str:
    """``Block.String()`` of an empty block (no txs, no evidence), as logged by ``Committed block``."""
    sigs = "\n      ".join(commit_sigs)
    return (
        "Block{\n  Header{\n"
        "    Version:        {11 1}\n"
        f"    ChainID:        {chain_id}\n"
        f"    Height:         {height}\n"
        f"    Time:           {go_time(time_us)}\n"
        f"    LastBlockID:    {last_block_id}\n"
        f"    LastCommit:     {last_commit_hash}\n"
        f"    Data:           {EMPTY_HASH}\n"
        f"    Validators:     {validators_hash}\n"
        f"    NextValidators: {validators_hash}\n"
        f"    App:            {app_hash}\n"
        f"    Consensus:      {consensus_hash}\n"
        f"    Results:        {EMPTY_HASH}\n"
        f"    Evidence:       {EMPTY_HASH}\n"
        f"    Proposer:       {proposer}\n"
        f"  }}#{block_hash}\n"
        f"  Data{{\n    \n  }}#{EMPTY_HASH}\n"
        f"  EvidenceData{{\n    \n  }}#{EMPTY_HASH}\n"
        "  Commit{\n"
        f"    Height:     {commit_height}\n"
        f"    Round:      {commit_round}\n"
        f"    BlockID:    {commit_block_id}\n"
        "    Signatures:\n"
        f"      {sigs}\n"
        f"  }}#{last_commit_hash}\n"
        f"}}#{block_hash}"
    )


def peer_round_state_json(
    *,
    height: int,
    round_: int,
    step: int,
    start_time: str,
    proposal: bool,
    parts_total: int,
    parts_hash: str,
    parts_bits: str | None,
    prevotes: str | None,
    precommits: str | None,
    last_commit_round: int,
    last_commit: str | None,
    votes: int,
    block_parts: int,
) -> str:
    """The ``ps`` value of ``Sending vote message``: ``PeerState`` marshalled by cmtjson (struct order)."""

    def bits(v: str | None) -> str:
        return "null" if v is None else f'"{v}"'

    return (
        f'{{"round_state":{{"height":"{height}","round":{round_},"step":{step},"start_time":"{start_time}",'
        f'"proposal":{"true" if proposal else "false"},'
        f'"proposal_block_part_set_header":{{"total":{parts_total},"hash":"{parts_hash}"}},'
        f'"proposal_block_parts":{bits(parts_bits)},"proposal_pol_round":-1,"proposal_pol":null,'
        f'"prevotes":{bits(prevotes)},"precommits":{bits(precommits)},"last_commit_round":{last_commit_round},'
        f'"last_commit":{bits(last_commit)},"catchup_commit_round":-1,"catchup_commit":null}},'
        f'"stats":{{"votes":"{votes}","block_parts":"{block_parts}"}}}}'
    )


# --- whole lines ----------------------------------------------------------------------------------
# One function per ``_msg``; keys in byte order, as go-kit's JSON logger writes them. ``ts`` is the
# already formatted timestamp. Consensus-module lines carry ``"level":"debug"`` unless CometBFT logs
# them at Info (Received proposal, Received complete proposal block, Finalizing commit, Timed out...).


def consensus_hr(msg: str, height: int, round_: int, ts: str, level: str = "debug") -> str:
    """A message with only the ``height``/``round`` of the state logger (``Prevote step: ...`` etc.)."""
    return f'{{"_msg":"{msg}","height":{height},"level":"{level}","module":"consensus","round":{round_},"ts":"{ts}"}}\n'


def step_line(msg: str, current: str, height: int, round_: int, ts: str) -> str:
    """``Entering X step`` (also ``... with invalid args``): ``current`` is ``H/R/RoundStepX``."""
    return (
        f'{{"_msg":"{msg}","current":"{current}","height":{height},"level":"debug","module":"consensus",'
        f'"round":{round_},"ts":"{ts}"}}\n'
    )


def new_round_line(height: int, round_: int, previous: str, proposer: str, ts: str) -> str:
    return (
        f'{{"_msg":"Entering new round","height":{height},"level":"debug","module":"consensus",'
        f'"previous":"{previous}","proposer":"{proposer}","round":{round_},"ts":"{ts}"}}\n'
    )


def proposer_line(ours: bool, height: int, round_: int, proposer: str, ts: str) -> str:
    msg = "Propose step; our turn to propose" if ours else "Propose step; not our turn to propose"
    return (
        f'{{"_msg":"{msg}","height":{height},"level":"debug","module":"consensus","proposer":"{proposer}",'
        f'"round":{round_},"ts":"{ts}"}}\n'
    )


def timeout_line(fired: bool, dur: str, height: int, round_: int, step: int, ts: str) -> str:
    msg, level = ("Timed out", "info") if fired else ("Scheduled timeout", "debug")
    return (
        f'{{"_msg":"{msg}","dur":"{dur}","height":{height},"level":"{level}","module":"consensus",'
        f'"round":{round_},"step":"{STEP_NAMES[step]}","ts":"{ts}"}}\n'
    )


def hash_hr_line(msg: str, block_hash: str, height: int, round_: int, ts: str) -> str:
    return (
        f'{{"_msg":"{msg}","hash":"{block_hash}","height":{height},"level":"debug","module":"consensus",'
        f'"round":{round_},"ts":"{ts}"}}\n'
    )


def signed_vote_line(height: int, round_: int, vote: str, ts: str) -> str:
    return (
        f'{{"_msg":"Signed and pushed vote","height":{height},"level":"debug","module":"consensus",'
        f'"round":{round_},"ts":"{ts}","vote":"{vote}"}}\n'
    )


def adding_vote_line(cs_height: int, val_index: int, vote_height: int, vote_type: int, ts: str) -> str:
    return (
        f'{{"_msg":"Adding vote","cs_height":{cs_height},"extLen":0,"extSigLen":0,"level":"debug",'
        f'"module":"consensus","ts":"{ts}","val_index":{val_index},"vote_height":{vote_height},'
        f'"vote_type":"{VOTE_TYPE_NAMES[vote_type]}"}}\n'
    )


def added_prevote_line(prevotes: str, vote: str, ts: str) -> str:
    return (
        f'{{"_msg":"Added vote to prevote","level":"debug","module":"consensus","prevotes":"{prevotes}",'
        f'"ts":"{ts}","vote":"{vote}"}}\n'
    )


def added_precommit_line(data: str, height: int, round_: int, validator: str, vote_ts: str, ts: str) -> str:
    return (
        f'{{"_msg":"Added vote to precommit","data":"{data}","height":{height},"level":"debug",'
        f'"module":"consensus","round":{round_},"ts":"{ts}","validator":"{validator}","vote_timestamp":"{vote_ts}"}}\n'
    )


def added_last_commit_line(last_commit: str, ts: str) -> str:
    return (
        f'{{"_msg":"Added vote to last precommits","last_commit":"{last_commit}","level":"debug",'
        f'"module":"consensus","ts":"{ts}"}}\n'
    )


def vote_late_line(vote: str, ts: str) -> str:
    return (
        '{"_msg":"Precommit vote came in after commit timeout and has been ignored","level":"debug",'
        f'"module":"consensus","ts":"{ts}","vote":"{vote}"}}\n'
    )


def vote_ignored_line(cs_height: int, peer: str, vote_height: int, ts: str) -> str:
    return (
        f'{{"_msg":"Vote ignored and not added","cs_height":{cs_height},"level":"debug","module":"consensus",'
        f'"peer":"{peer}","ts":"{ts}","vote_height":{vote_height}}}\n'
    )


def sending_vote_line(ps: str, vote: str, ts: str) -> str:
    return (
        f'{{"_msg":"Sending vote message","level":"debug","module":"consensus","ps":{ps},"ts":"{ts}",'
        f'"vote":"{vote}"}}\n'
    )


def signed_proposal_line(height: int, round_: int, proposal: str, ts: str) -> str:
    return (
        f'{{"_msg":"Signed proposal","height":{height},"level":"debug","module":"consensus",'
        f'"proposal":"{proposal}","round":{round_},"ts":"{ts}"}}\n'
    )


def received_proposal_line(proposal: str, proposer: str, ts: str) -> str:
    return (
        f'{{"_msg":"Received proposal","level":"info","module":"consensus","proposal":"{proposal}",'
        f'"proposer":"{proposer}","ts":"{ts}"}}\n'
    )


def block_part_line(count: int, sender: str, height: int, index: int, round_: int, total: int, ts: str) -> str:
    return (
        f'{{"_msg":"Receive block part","count":{count},"from":"{sender}","height":{height},"index":{index},'
        f'"level":"debug","module":"consensus","round":{round_},"total":{total},"ts":"{ts}"}}\n'
    )


def complete_block_line(block_hash: str, height: int, ts: str) -> str:
    return (
        f'{{"_msg":"Received complete proposal block","hash":"{block_hash}","height":{height},"level":"info",'
        f'"module":"consensus","ts":"{ts}"}}\n'
    )


def valid_block_line(pol_round: int, valid_round: int, ts: str) -> str:
    return (
        f'{{"_msg":"Updating valid block because of POL","level":"debug","module":"consensus",'
        f'"pol_round":{pol_round},"ts":"{ts}","valid_round":{valid_round}}}\n'
    )


def commit_step_line(commit_round: int, current: str, height: int, ts: str, invalid: bool = False) -> str:
    msg = "Entering commit step with invalid args" if invalid else "Entering commit step"
    return (
        f'{{"_msg":"{msg}","commit_round":{commit_round},"current":"{current}","height":{height},'
        f'"level":"debug","module":"consensus","ts":"{ts}"}}\n'
    )


def finalizing_line(block_hash: str, height: int, app_hash: str, ts: str) -> str:
    return (
        f'{{"_msg":"Finalizing commit of block","hash":"{block_hash}","height":{height},"level":"info",'
        f'"module":"consensus","num_txs":0,"root":"{app_hash}","ts":"{ts}"}}\n'
    )


def committed_block_line(block: str, height: int, ts: str) -> str:
    return (
        f'{{"_msg":"Committed block","block":{json_str(block)},"height":{height},"level":"debug",'
        f'"module":"consensus","ts":"{ts}"}}\n'
    )


def resetting_proposal_line(height: int, proposer: str, round_: int, ts: str) -> str:
    return (
        f'{{"_msg":"Resetting proposal info","height":{height},"level":"info","module":"consensus",'
        f'"proposer":"{proposer}","round":{round_},"ts":"{ts}"}}\n'
    )


def no_block_precommit_line(block_id: str, height: int, round_: int, ts: str) -> str:
    return (
        '{"_msg":"Precommit step; +2/3 prevotes for a block we do not have; voting nil",'
        f'"block_id":"{block_id}","height":{height},"level":"debug","module":"consensus","round":{round_},"ts":"{ts}"}}\n'
    )


def precommit_wait_invalid_line(current: str, height: int, round_: int, triggered: bool, ts: str) -> str:
    """Unlike the other steps, this one prints ``current`` as ``H/R`` and adds ``triggered_timeout``."""
    return (
        f'{{"_msg":"Entering precommit wait step with invalid args","current":"{current}","height":{height},'
        f'"level":"debug","module":"consensus","round":{round_},"triggered_timeout":{"true" if triggered else "false"},'
        f'"ts":"{ts}"}}\n'
    )


def unknown_commit_line(commit: str, commit_round: int, height: int, ts: str) -> str:
    return (
        f'{{"_msg":"Commit is for a block we do not know about; set ProposalBlock=nil","commit":"{commit}",'
        f'"commit_round":{commit_round},"height":{height},"level":"info","module":"consensus","proposal":"",'
        f'"ts":"{ts}"}}\n'
    )


def finalize_failed_line(commit_block: str, height: int, ts: str) -> str:
    return (
        '{"_msg":"Failed attempt to finalize commit; we do not have the commit block",'
        f'"commit_block":"{commit_block}","height":{height},"level":"debug","module":"consensus",'
        f'"proposal_block":"","ts":"{ts}"}}\n'
    )


def valid_block_new_line(block_hash: str, valid_round: int, ts: str) -> str:
    return (
        '{"_msg":"Updating valid block to new proposal block","level":"debug","module":"consensus",'
        f'"ts":"{ts}","valid_block_hash":"{block_hash}","valid_round":{valid_round}}}\n'
    )


def validator_line(addr: str, pub_key: str, ts: str) -> str:
    return (
        f'{{"_msg":"This node is a validator","addr":"{addr}","level":"info","module":"consensus",'
        f'"pubKey":"PubKeyEd25519{{{pub_key}}}","ts":"{ts}"}}\n'
    )


def node_id_line(node_id: str, file: str, ts: str) -> str:
    return f'{{"ID":"{node_id}","_msg":"P2P Node ID","file":"{file}","level":"info","module":"p2p","ts":"{ts}"}}\n'


def started_node_line(node_id: str, moniker: str, chain_id: str, ts: str) -> str:
    """CometBFT's "Started node" line: its nodeInfo names the moniker, which labels the node as the ground
    truth does (``node0`` …)."""
    info = (f"{{ProtocolVersion:{{P2P:9 Block:11 App:0}} DefaultNodeID:{node_id} ListenAddr:tcp://0.0.0.0:26656 "
            f"Network:{chain_id} Version:1.0.1 Channels:40202122233038606100 Moniker:{moniker} "
            "Other:{TxIndex:on RPCAddress:tcp://0.0.0.0:26657}}")  # fmt: skip
    return f'{{"_msg":"Started node","level":"info","module":"main","nodeInfo":"{info}","ts":"{ts}"}}\n'


class Wire:
    """The fixed text of one direction of one connection, as node ``local`` sees peer ``remote``.

    ``conn`` is ``MConn{ip:port}`` with the remote address of the socket; ``peer`` is ``id@ip:port``
    (the same port: CometBFT logs ``SocketAddr``); ``src`` is the ``Peer{MConn{...} id in|out}`` of
    consensus ``Receive`` lines. Sends of ``local`` and receives of ``local`` use the same Wire.
    """

    __slots__ = ("conn_head", "packet_head", "packet_tail", "peer_tail", "recv_head", "src_tail")

    def __init__(self, remote_id: str, port: int, outbound: bool) -> None:
        conn = f"MConn{{127.0.0.1:{port}}}"
        peer = f"{remote_id}@127.0.0.1:{port}"
        # Send/TrySend: ..."channel":N,<conn_head><HEX><peer_tail><ts>"}
        self.conn_head = f'"conn":"{conn}","level":"debug","module":"p2p","msgBytes":"'
        self.peer_tail = f'","peer":"{peer}","ts":"'
        # Read PacketMsg: {"_msg":"Read PacketMsg",<packet_head>{"channel_id":...},"peer":...
        self.packet_head = f'"conn":"{conn}","level":"debug","module":"p2p","packet":'
        self.packet_tail = f',"peer":"{peer}","ts":"'
        # Received bytes: {"_msg":"Received bytes","chID":N,<recv_head><B64><peer_tail><ts>"}
        self.recv_head = '"level":"debug","module":"p2p","msgBytes":"'
        # Receive: ..."msg":"...","src":"Peer{MConn{...} id in}","ts":"<ts>"}
        self.src_tail = f'","src":"Peer{{{conn} {remote_id} {"out" if outbound else "in"}}}","ts":"'

"""Casper REST pages: does a deep page cost what the first one does?

Builds (in a temporary folder) a followed Casper network of ``--blocks`` blocks and one account with
``--deploys`` processed deploys, written through ``CasperStore`` as a follower writes them, then times through
the app (in-process, no server; ``local`` auth) the median of ``--calls`` requests of:

* ``/blocks`` and ``/accountDeploys/{account}`` pages of the seed's envelope (``LIMIT … OFFSET`` plus a count)
  at the first page and at 50 % and 99 % depth;
* keyset pages (``cursor``) at the same positions (``WHERE key < cursor``: no offset, no count).

Prints one JSON object (milliseconds) and writes it to ``bench/out/casper_rest.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from bftscope.api.app import create_app
from bftscope.config import Settings
from bftscope.control import networks
from bftscope.families.casper.api.cursors import encode_block, encode_deploy
from bftscope.families.casper.model import CasperEvent
from bftscope.families.casper.store import CasperStore
from bftscope.store import DuckDBStore

ACCOUNT = "01" + "ab" * 32
T0 = 1_700_000_000_000


def _hex(kind: str, n: int) -> str:
    return f"{kind}{n:060x}"[-64:].rjust(64, "0")


def _events(blocks: int, deploys: int) -> list[list[CasperEvent]]:
    batches: list[list[CasperEvent]] = []
    batch: list[CasperEvent] = []
    per_block = max(1, deploys // blocks) if deploys else 0
    d = 0
    for h in range(1, blocks + 1):
        bh = _hex("b", h)
        hashes = [_hex("d", d + i) for i in range(min(per_block, deploys - d))]
        fields = {"block_hash": bh, "height": h, "era_id": h // 100, "timestamp_ms": T0 + h * 16_384,
                  "proposer": "01" + f"{h % 50:064x}", "parent_hash": _hex("b", h - 1), "state_root_hash": None,
                  "deploy_hashes": hashes, "transfer_hashes": [], "era_end": False, "next_era_weights": None,
                  "protocol_version": "1.5.2"}  # fmt: skip
        raw = json.dumps({"BlockAdded": {"block_hash": bh, "height": h}}).encode()
        batch.append(CasperEvent("n1:9999", "main", h, "BlockAdded", bh, time.time_ns(), raw, fields))
        for dh in hashes:
            f = {"deploy_hash": dh, "account": ACCOUNT, "block_hash": bh, "timestamp_ms": T0 + h * 16_384,
                 "success": True, "cost": "100", "error_message": None}  # fmt: skip
            raw = json.dumps({"DeployProcessed": {"deploy_hash": dh}}).encode()
            batch.append(CasperEvent("n1:9999", "main", None, "DeployProcessed", dh, time.time_ns(), raw, f))
        d += len(hashes)
        if len(batch) >= 20_000:
            batches.append(batch)
            batch = []
    return [*batches, batch] if batch else batches


def _median_ms(client: TestClient, url: str, calls: int) -> float:
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (url, r.text[:200])
    return round(statistics.median(times), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=300_000)
    ap.add_argument("--deploys", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=9)
    args = ap.parse_args()
    out: dict[str, Any] = {"blocks": args.blocks, "deploys": args.deploys, "calls": args.calls}
    with tempfile.TemporaryDirectory(prefix="bftscope-casper-rest-") as tmp:
        cfg = Settings(data_dir=Path(tmp), auth_mode="local", rate_limit_enabled=False, follow_networks=False)
        store = DuckDBStore.open(cfg.store_path, cfg)
        networks.create_network(store, "0" * 24, "bench", "casper", ["http://127.0.0.1:9/"], {}, max_endpoints=8,
                                max_per_user=20)  # fmt: skip
        run = store.get_or_create_run(networks.run_name("bench"), "casper")
        t = time.perf_counter()
        cs = CasperStore(store, run.id)
        for batch in _events(args.blocks, args.deploys):
            cs.write(batch)
        out["write_s"] = round(time.perf_counter() - t, 1)
        client = TestClient(create_app(cfg, store=store))
        base = "/v1/casper/bench"
        deploys = min(args.deploys, max(1, args.deploys // args.blocks) * args.blocks)  # as _events placed them
        for name, path, total, cursor_at in (
            ("blocks", f"{base}/blocks", args.blocks, lambda depth: encode_block(args.blocks - depth + 1)),
            ("account_deploys", f"{base}/accountDeploys/{ACCOUNT}", deploys, None),
        ):
            for label, fraction in (("first", 0.0), ("50%", 0.5), ("99%", 0.99)):
                depth = int(total * fraction)
                page = depth // 20 + 1
                out[f"{name}_envelope_{label}_ms"] = _median_ms(client, f"{path}?limit=20&page={page}", args.calls)
                if cursor_at is not None:
                    cursor = cursor_at(depth) if depth else ""
                else:  # the deploy at that depth, from the seed's own order (its page gives the key)
                    cursor = "" if not depth else encode_deploy(_deploy_key(client, path, depth))
                out[f"{name}_cursor_{label}_ms"] = _median_ms(client, f"{path}?limit=20&cursor={cursor}", args.calls)
        store.close()
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/casper_rest.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


def _deploy_key(client: TestClient, path: str, depth: int) -> tuple[int | None, str]:
    """The sort key of the deploy just before position ``depth`` (its block's height and its hash)."""
    page, index = divmod(depth - 1, 20)
    body = client.get(f"{path}?limit=20&page={page + 1}").json()
    last = body["data"][index]
    height = client.get(path.split("/accountDeploys/")[0] + f"/block/{last['blockHash']}").json()["height"]
    return int(height), str(last["deployHash"])


if __name__ == "__main__":
    main()

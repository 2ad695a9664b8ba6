"""Compatibility check with the real upstream client (PyPI hstreamdb 0.5.0).

Against a running hserver cluster: create a stream, append 1000 keyed
records (gzip for half of the batches), create a subscription from EARLIEST,
consume and ack everything, and check that every record arrived and that
within each shard the first deliveries arrive in record-id order.

Usage: python upstream_client.py HOST:PORT [RUN_TAG]
Exits 0 on success, 1 with a message on failure.
"""

import asyncio
import sys

from hstreamdb import insecure_client
from hstreamdb.types import SpecialOffset

RECORDS = 1000
KEYS = 10
TIMEOUT_S = 60


async def produce(client, stream):
    expected = {}
    for batch in range(RECORDS // 10):
        key = "key-%d" % (batch % KEYS)
        payloads = ["value-%d" % (batch * 10 + i) for i in range(10)]
        compress = "gzip" if batch % 2 else None
        ids = list(await client.append(stream, payloads, key=key, compresstype=compress))
        if len(ids) != len(payloads):
            raise SystemExit("append returned %d ids for %d records" % (len(ids), len(payloads)))
        for rid, payload in zip(ids, payloads):
            expected[(rid.shard_id, rid.batch_id, rid.batch_index)] = payload
    return expected


async def consume(client, subscription, expected):
    seen = {}
    order = {}
    done = asyncio.Event()

    async def process(ack, stop, records):
        for r in records:
            rid = (r.id.shard_id, r.id.batch_id, r.id.batch_index)
            payload = r.payload.decode() if isinstance(r.payload, bytes) else r.payload
            if rid not in seen:
                order.setdefault(rid[0], []).append(rid)
            seen[rid] = payload
        await ack([r.id for r in records])
        if len(seen) >= len(expected):
            done.set()

    consumer = client.new_consumer("compat-consumer", subscription, process)
    task = asyncio.create_task(consumer.start())
    try:
        await asyncio.wait_for(done.wait(), TIMEOUT_S)
    except asyncio.TimeoutError:
        pass
    task.cancel()
    return seen, order


async def main(address, tag):
    host, port = address.rsplit(":", 1)
    stream, subscription = "compat-%s" % tag, "compat-sub-%s" % tag
    async with await insecure_client(host=host, port=int(port)) as client:
        await client.create_stream(stream, replication_factor=3, backlog=3600, shard_count=4)
        expected = await produce(client, stream)
        await client.create_subscription(
            subscription, stream, ack_timeout=10, max_unacks=10000, offset=SpecialOffset.EARLIEST
        )
        seen, order = await consume(client, subscription, expected)
    missing = [rid for rid in expected if rid not in seen]
    wrong = [rid for rid, p in seen.items() if expected.get(rid) != p]
    unordered = [s for s, ids in order.items() if ids != sorted(ids)]
    print("appended %d, received %d, shards %d" % (len(expected), len(seen), len(order)))
    if missing or wrong or unordered:
        print("FAIL: missing %d, wrong payload %d, out-of-order shards %s" % (len(missing), len(wrong), unordered))
        return 1
    print("OK: every record received once in per-shard id order")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "1")))

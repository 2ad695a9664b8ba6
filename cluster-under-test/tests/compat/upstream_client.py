"""Compatibility check with the real upstream client (PyPI hstreamdb 0.5.0).

Against a running hserver cluster: create a stream, append 1000 keyed
records (gzip for half of the batches), create a subscription from EARLIEST,
consume and ack everything, and check that every record arrived and that
within each shard the first deliveries arrive in record-id order.

Usage: python upstream_client.py HOST:PORT [RUN_TAG] [--replication-factor N]
                                 [--ca CA.pem [--cert CERT.pem --key KEY.pem]]
With --ca the client connects with TLS through `hstreamdb.aio.client.secure_client`
(root certificate = CA; with --cert/--key also the client certificate chain and
key, for servers that demand one). Note: hstreamdb 0.5.0 uses TLS only for the
node it was given; channels it opens to other nodes (after LookupShard or
LookupSubscription) are plaintext, so over TLS run it against a single node.
Exits 0 on success, 1 with a message on failure.
"""

import argparse
import asyncio
import sys

from hstreamdb import insecure_client
from hstreamdb.aio.client import secure_client
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


def read(path):
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


async def connect(host, port, args):
    if args.ca is None:
        return await insecure_client(host=host, port=port)
    if (args.cert is None) != (args.key is None):
        raise SystemExit("--cert and --key go together")
    return await secure_client(
        host=host,
        port=port,
        root_certificates=read(args.ca),
        private_key=read(args.key),
        certificate_chain=read(args.cert),
    )


async def main(args):
    host, port = args.address.rsplit(":", 1)
    stream, subscription = "compat-%s" % args.tag, "compat-sub-%s" % args.tag
    async with await connect(host, int(port), args) as client:
        await client.create_stream(stream, replication_factor=args.replication_factor, backlog=3600, shard_count=4)
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
    parser = argparse.ArgumentParser(description="round trip with the upstream HStream client")
    parser.add_argument("address", help="HOST:PORT of any server")
    parser.add_argument("tag", nargs="?", default="1", help="suffix of the stream and subscription names")
    parser.add_argument("--replication-factor", type=int, default=3, help="of the stream (default 3)")
    parser.add_argument("--ca", help="CA certificate (PEM): connect with TLS")
    parser.add_argument("--cert", help="client certificate chain (PEM), for mutual TLS")
    parser.add_argument("--key", help="client private key (PEM), for mutual TLS")
    sys.exit(asyncio.run(main(parser.parse_args())))

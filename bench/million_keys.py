"""A million keys through the streaming job: ``python -m bench.million_keys``.

1,000,000 keys, a few events each (the load), then a steady trickle of 4 events/s over those
keys, with the workload's window model and ``stream.state_buckets`` as docs/streaming.md advises
(a few hundred keys per bucket). Reports the state's size on disk (the checkpoint's state
folder) and in memory (Spark's own state metrics), each phase's micro-batch times, and the
bucket codec's share: the same buckets encoded and decoded outside Spark, timed. Writes
``bench/results/million_keys.json``. Not part of CI: it runs about ten minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from seqstream.model.artifact import save_artifact
from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.sources.events import Event, event_message
from seqstream.pipeline.state.buckets import Carried, bucket_of, decode_bucket, encode_bucket

from bench.harness import Workload, settings_for, streaming, workload_model

RESULTS = Path(__file__).resolve().parent / "results"


def load_messages(keys: int, events_per_key: int, features: int, seed: int = 0) -> list:
    """``events_per_key`` events of every key, in time order across keys."""
    rng = np.random.default_rng(seed)
    schema = EventSchema(features=[f"f{i}" for i in range(features)])
    values = rng.normal(size=(events_per_key, keys, features)).round(4)
    return [
        event_message(
            Event(f"key-{k}", 1_700_000_000_000 + i * 60_000, tuple(values[i, k].tolist())), schema
        )
        for i in range(events_per_key)
        for k in range(keys)
    ]


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def state_figures(progress: list[dict]) -> dict[str, Any]:
    """Spark's state metrics at the last micro-batch: rows, memory, and the RocksDB figures."""
    last = progress[-1]["stateOperators"][0]
    custom = last.get("customMetrics", {})
    return {
        "state_rows": last["numRowsTotal"],
        "memory_used_bytes": last["memoryUsedBytes"],
        **{
            name: custom[name]
            for name in (
                "rocksdbTotalBytesReadByGet",
                "rocksdbTotalBytesWrittenByPut",
                "rocksdbPinnedBlocksMemoryUsage",
                "rocksdbSstFileSize",
                "rocksdbReadBlockCacheHitCount",
            )
            if name in custom
        },
    }


def batch_figures(progress: list[dict], history: list) -> dict[str, Any]:
    seconds = [p["durationMs"]["triggerExecution"] / 1000 for p in progress]
    return {
        "batches": len(progress),
        "events": sum(p["numInputRows"] for p in progress),
        "median_batch_s": float(np.median(seconds)),
        "max_batch_s": float(max(seconds)),
        "events_per_s": sum(p["numInputRows"] for p in progress) / sum(seconds),
        "state_calls_per_batch": float(
            np.median([2 * sum(o["numRowsUpdated"] for o in p["stateOperators"]) for p in progress])
        ),
        "model_s_per_batch": float(np.median([m.scoring_s for m in history])),
    }


def codec_seconds(
    keys: int, per_key_events: int, features: int, buckets: int, partitions: int
) -> dict[str, float]:
    """Encoding and decoding every bucket of ``keys`` window states (``per_key_events`` events of
    ``features`` each) spread over ``partitions`` x ``buckets``: what a dense micro-batch touching
    every bucket spends in the codec. Also the bytes and the share one bucket costs."""
    state = np.zeros((per_key_events, features), np.float32)
    filled: dict[int, dict[str, Carried]] = {}
    for k in range(keys // partitions):
        name = f"key-{k}"
        filled.setdefault(bucket_of(name, buckets), {})[name] = Carried(0, state)
    started = time.perf_counter()
    encoded = {b: encode_bucket(entries) for b, entries in filled.items()}
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    for value in encoded.values():
        decode_bucket(value, features, now_ms=0, ttl_ms=None)
    decode_s = time.perf_counter() - started
    size = sum(len(v) for v in encoded.values())
    return {
        "all_buckets_encode_s": encode_s * partitions,
        "all_buckets_decode_s": decode_s * partitions,
        "one_bucket_s": (encode_s + decode_s) / len(encoded),
        "value_bytes": size * partitions,
        "keys_per_bucket": keys / partitions / buckets,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--events-per-key", type=int, default=3)
    parser.add_argument("--state-buckets", type=int, default=1024)
    parser.add_argument("--max-per-trigger", type=int, default=200_000)
    parser.add_argument("--trickle-seconds", type=float, default=40.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out", default=str(RESULTS / "million_keys.json"))
    args = parser.parse_args(argv)

    from seqstream.pipeline.kafka.admin import TopicAdmin
    from seqstream.pipeline.kafka.broker import EmbeddedBroker
    from seqstream.pipeline.kafka.producer import open_producer
    from seqstream.pipeline.sources.producer import produce_messages
    from seqstream.pipeline.spark import local_spark

    loaded = workload_model(Workload(keys=1000, events_per_key=240))
    features = loaded.spec.features
    work = Path(tempfile.mkdtemp(prefix="seqstream-million-"))
    result: dict[str, Any] = {"benchmark": "million_keys", "args": vars(args)}
    started = time.perf_counter()
    messages = load_messages(args.keys, args.events_per_key, len(features))
    result["make_messages_s"] = time.perf_counter() - started
    try:
        save_artifact(loaded.network, loaded.spec, work / "model")
        with EmbeddedBroker() as broker, TopicAdmin(broker.bootstrap_servers) as admin:
            bootstrap = broker.bootstrap_servers
            admin.create_topic("million", args.partitions)
            producer = open_producer(bootstrap)
            started = time.perf_counter()
            produce_messages(messages, producer, "million")
            result["produce_s"] = time.perf_counter() - started
            spark = local_spark("seqstream-million-keys")
            stream = {
                "device": "cpu",
                "trigger_interval": "0 seconds",
                "state_buckets": args.state_buckets,
                "max_offsets_per_trigger": args.max_per_trigger,
                "starting_offsets": "earliest",
            }
            settings = settings_for(
                bootstrap, "million", work / "model", features, work / "run", "jvm", stream=stream
            )
            rng = np.random.default_rng(1)
            later = load_messages(args.keys, 1, len(features), seed=2)
            picked = [later[i] for i in rng.choice(len(later), int(4 * args.trickle_seconds))]
            # The load, then (the same checkpoint, resumed) the trickle over the loaded keys.
            load, load_history = streaming(spark, settings, bootstrap, len(messages))
            feed = partial(produce_messages, picked, producer, "million", rate=4.0)
            progress, history = streaming(spark, settings, bootstrap, len(picked), feed=feed)
            producer.close()
            drip = [p for p in progress if 1 <= p["numInputRows"] <= 10]
            drip_history = [m for m in history if 1 <= m.events_in <= 10]
            result["load"] = batch_figures(load[1:] or load, load_history[1:] or load_history)
            result["trickle"] = batch_figures(drip[3:] or drip, drip_history[3:] or drip_history)
            result["state"] = state_figures(progress)
            result["state"]["checkpoint_state_bytes_on_disk"] = folder_bytes(
                work / "run" / "cp" / "state"
            )
            spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["codec"] = codec_seconds(
        args.keys, args.events_per_key, len(features), args.state_buckets, args.partitions
    )
    # Every bucket at its full size, read and written: an upper bound for a load batch (each
    # touches nearly every bucket, most not yet full).
    codec = result["codec"]
    codec["share_of_load_batch_at_most"] = (
        codec["all_buckets_encode_s"] + codec["all_buckets_decode_s"]
    ) / result["load"]["median_batch_s"]
    codec["share_of_trickle_batch"] = (
        2 * codec["one_bucket_s"] / result["trickle"]["median_batch_s"]
    )
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["cpus"] = os.cpu_count()
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

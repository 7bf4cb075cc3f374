"""Send a stream of messages to a topic at a chosen rate and account for every one of them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm import tqdm

from seqstream.pipeline.kafka.producer import DeliveryReport, RecordProducer, raise_for_failures
from seqstream.pipeline.sources.events import Message


@dataclass(frozen=True)
class ProduceResult:
    topic: str
    sent: int
    acked: int
    failed: int
    malformed: int  # deliberately malformed messages among those sent
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def produce_messages(
    messages: Sequence[Message],
    producer: RecordProducer,
    topic: str,
    *,
    rate: float | None = None,
    progress: bool = False,
    flush_timeout_s: float = 60.0,
) -> ProduceResult:
    """Send ``messages`` in order (key = event key), at most ``rate`` per second, then wait for
    every acknowledgement. Raises DeliveryError when any message was not acknowledged."""
    start = time.monotonic()
    bar = tqdm(
        total=len(messages),
        unit="ev",
        desc=f"produce {topic}",
        disable=not progress,
        mininterval=0.5,
    )
    for index, message in enumerate(messages):
        if rate is not None:
            ahead = start + index / rate - time.monotonic()
            if ahead > 0.001:
                time.sleep(ahead)
        producer.send(topic, message.value, key=message.key.encode())
        if index % 1024 == 1023:
            bar.update(1024)
    bar.update(len(messages) - bar.n)
    report: DeliveryReport = producer.flush(flush_timeout_s)
    bar.close()
    elapsed = time.monotonic() - start
    raise_for_failures(report, topic)
    malformed = sum(1 for m in messages if m.event is None)
    return ProduceResult(topic, report.sent, report.acked, report.failed, malformed, elapsed)

"""`plate-ocr webhook --url URL [--url URL2 ...] [--source readings|events|alerts]`.

Each URL is a consumer group of its own on the source stream (`WEBHOOK_GROUP_PREFIX` + the
URL's sha256), so one receiver that is down holds back nobody else, and its own thread. Every
entry is POSTed as its JSON document, in stream order, one at a time, with:

- `X-Plate-OCR-Signature: t=TIMESTAMP,v1=HMAC` (consumers.webhook.signature);
- `X-Plate-OCR-Id`: the reading, event or alert id, stable across redeliveries: deduplicate on it;
- `X-Plate-OCR-Source` and `X-Plate-OCR-Attempt` (1 on the first try).

A 2xx acknowledges the entry. A timeout, a connection failure, a 5xx, 408 or 429 is retried
after `webhook_backoff_s`, doubled per attempt up to `webhook_max_backoff_s`; after
`webhook_max_attempts`, or at once for any other status (the receiver refused this request and
would refuse it again), the entry is written to `webhook_dead_letter_stream` with the URL, the
body, the attempts and the last status or error, and acknowledged, in one transaction. A sender
killed mid-delivery leaves the entry pending and sends it again on restart: delivery is at least
once, and nothing acknowledged is sent twice (the attempt count starts again from 1).
"""

import hashlib
import logging
import threading
from collections.abc import Sequence
from typing import Literal

import httpx

from consumers.group import Entry, GroupReader
from consumers.stopping import stopped_by_signals
from consumers.webhook.signature import SIGNATURE_HEADER, sign
from plate_ocr.connection import Backoff, connect, retry_on_disconnect
from plate_ocr.constants import MAX_BLOCK_MS, WEBHOOK_GROUP_PREFIX
from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings
from plate_ocr.stream import default_consumer_name

__all__ = ["WebhookSender", "group_for", "run_webhook"]

log = logging.getLogger("consumers.webhook")

Source = Literal["readings", "events", "alerts"]
# The JSON document and its id in each source's entries (plate_ocr.stream, consumers.events.event,
# consumers.watch.alerts).
_FIELDS: dict[str, tuple[bytes, bytes]] = {
    "readings": (b"reading", b"reading_id"),
    "events": (b"event", b"event_id"),
    "alerts": (b"alert", b"alert_id"),
}
_RETRIED_STATUSES = frozenset({408, 429})
_IDLE_TICK_MS = 1000


def group_for(url: str) -> str:
    return WEBHOOK_GROUP_PREFIX + hashlib.sha256(url.encode()).hexdigest()[:16]


def _stream_of(settings: Settings, source: Source) -> str:
    return {
        "readings": settings.results_stream,
        "events": settings.events_stream,
        "alerts": settings.alerts_stream,
    }[source]


class WebhookSender:
    """Delivers one stream to one URL."""

    def __init__(
        self,
        settings: Settings,
        url: str,
        *,
        source: Source = "readings",
        consumer: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        if settings.webhook_secret is None:
            raise ConfigError("plate-ocr webhook needs PLATE_OCR_WEBHOOK_SECRET (the HMAC key)")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--url must be http:// or https://, not {url!r}")
        self.settings = settings
        self.url = url
        self.source = source
        self._secret = settings.webhook_secret.get_secret_value().encode()
        self._redis = connect(settings, client_name="plate-ocr-webhook")
        self._backoff = Backoff(max_s=settings.reconnect_max_backoff_s)
        self._stream = _stream_of(settings, source)
        self._consumer = consumer or default_consumer_name()
        self._stop = stop or threading.Event()
        self._http = httpx.Client(timeout=settings.webhook_timeout_s)
        self.delivered = 0
        self.dead_lettered = 0

    def stop(self) -> None:
        self._stop.set()

    def run(self, *, from_start: bool = False, burst: bool = False) -> int:
        """Deliver until `stop()` (with `burst`: until nothing new). Returns entries delivered."""
        reader = GroupReader(
            self._redis,
            self._stream,
            group_for(self.url),
            self._consumer,
            from_start=from_start,
            claim_idle_ms=self.settings.stream_claim_idle_ms,
            backoff=self._backoff,
        )
        try:
            while not self._stop.is_set():
                entries = reader.read(count=1, block_ms=min(_IDLE_TICK_MS, MAX_BLOCK_MS))
                if not entries:
                    if burst:
                        break
                    continue
                for entry in entries:
                    if not self.deliver(entry, reader):
                        return self.delivered  # stopped mid-retry: left pending
        finally:
            self._http.close()
        return self.delivered

    def deliver(self, entry: Entry, reader: GroupReader) -> bool:
        """Send one entry until a 2xx or the dead-letter stream; False if stopped first."""
        entry_id, fields = entry
        body_field, id_field = _FIELDS[self.source]
        body = fields.get(body_field)
        if body is None:  # trimmed before we got to it, or not one of ours: nothing to send
            reader.ack([entry_id])
            return True
        headers = {
            "Content-Type": "application/json",
            "X-Plate-OCR-Id": fields.get(id_field, b"").decode(),
            "X-Plate-OCR-Source": self.source,
        }
        s = self.settings
        last = ""
        for attempt in range(1, s.webhook_max_attempts + 1):
            if attempt > 1:
                delay = min(s.webhook_backoff_s * 2 ** (attempt - 2), s.webhook_max_backoff_s)
                if self._stop.wait(delay):
                    return False
            headers["X-Plate-OCR-Attempt"] = str(attempt)
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
            try:
                response = self._http.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as e:  # timeouts, refused and dropped connections
                last = f"{type(e).__name__}: {e}"
                log.warning("POST %s failed (attempt %d): %s", self.url, attempt, last)
                continue
            if response.is_success:
                reader.ack([entry_id])
                self.delivered += 1
                return True
            last = str(response.status_code)
            log.warning("POST %s: HTTP %s (attempt %d)", self.url, last, attempt)
            if response.status_code < 500 and response.status_code not in _RETRIED_STATUSES:
                break  # the receiver refuses this request: retrying would not change that
        self._dead_letter(entry_id, body, attempt, last, reader)
        return True

    def _dead_letter(
        self, entry_id: bytes, body: bytes, attempts: int, last: str, reader: GroupReader
    ) -> None:
        def write() -> None:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(
                    self.settings.webhook_dead_letter_stream,
                    {
                        "url": self.url,
                        "source": self.source,
                        "stream": self._stream,
                        "entry_id": entry_id,
                        "body": body,
                        "attempts": attempts,
                        "last_status": last,
                    },
                    maxlen=self.settings.stream_maxlen,
                    approximate=True,
                )
                pipe.xack(self._stream, reader.group, entry_id)
                pipe.execute()

        retry_on_disconnect(write, backoff=self._backoff, what="dead-letter XADD")
        self.dead_lettered += 1
        log.error(
            "POST %s gave up after %d attempts (last: %s): entry %s dead-lettered on %s",
            self.url,
            attempts,
            last,
            entry_id.decode(),
            self.settings.webhook_dead_letter_stream,
        )


def run_webhook(
    settings: Settings,
    *,
    urls: Sequence[str],
    source: Source,
    consumer: str | None,
    from_start: bool,
    burst: bool,
) -> int:
    """`plate-ocr webhook`: one sender thread per URL, until SIGTERM/SIGINT (or drained)."""
    stop = threading.Event()
    senders = [
        WebhookSender(settings, url, source=source, consumer=consumer, stop=stop)
        for url in dict.fromkeys(urls)
    ]
    failed: list[str] = []

    def deliver(sender: WebhookSender) -> None:
        try:
            sender.run(from_start=from_start, burst=burst)
        except Exception:
            log.exception("webhook %s stopped", sender.url)
            failed.append(sender.url)
            stop.set()  # one broken sender stops the process, so a supervisor restarts it whole

    threads = [threading.Thread(target=deliver, args=(s,), daemon=True) for s in senders]
    with stopped_by_signals(stop.set):
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)  # in slices, so that the signal handler runs
    for sender in senders:
        log.info(
            "webhook %s: %d delivered, %d dead-lettered",
            sender.url,
            sender.delivered,
            sender.dead_lettered,
        )
    return 1 if failed else 0

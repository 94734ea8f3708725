"""`plate-ocr mqtt`: readings out to an MQTT broker, for Home Assistant and Frigate-style setups.

A consumer group (`MQTT_GROUP`) on the results stream. Each reading is published as its JSON to
`PREFIX/readings/CAMERA` with QoS 1, and (when it read a plate) retained on `PREFIX/CAMERA/last`;
its stream entry is acknowledged only once the broker has sent PUBACK for both. While the broker
is away, paho keeps the messages and sends them again on reconnecting, and the entry stays
pending in the group: a bridge that dies meanwhile leaves it to be sent again when it (or, after
`stream_claim_idle_ms`, another bridge) comes back. So delivery is at least once: subscribers
deduplicate on `reading_id`.

Watch-list alerts (`plate-ocr watch`, on `settings.alerts_stream`) go the same way, in the same
group on that stream, from a thread of their own: each to `PREFIX/alerts/CAMERA` (QoS 1, not
retained), acknowledged after its PUBACK.

With `mqtt_discovery`, the first reading of each camera also publishes (retained) a Home
Assistant MQTT discovery config, so that each camera appears as a sensor whose state is its last
plate. `PREFIX/status` says `online`, and the broker says `offline` for us when we vanish (the
will), which Home Assistant shows as the sensors' availability.
"""

import json
import logging
import re
import ssl
import threading
import time
from typing import Any

from consumers.stopping import stopped_by_signals
from plate_ocr.connection import connect
from plate_ocr.constants import MQTT_GROUP
from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings
from plate_ocr.stream import ReadingStream, default_consumer_name
from schemas import PlateReading

try:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
except ModuleNotFoundError as e:  # the light install leaves it out
    raise ConfigError("plate-ocr mqtt needs paho-mqtt: pip install 'plate-ocr-stream[mqtt]'") from e

__all__ = ["MqttBridge", "camera_topic", "run_mqtt"]

log = logging.getLogger("plate_ocr.consumers.mqtt")

_QOS = 1
_UNKNOWN_CAMERA = "unknown"
_IDLE_TICK_S = 1.0  # how often a quiet bridge looks up (for stop() and --burst)
_WAIT_SLICE_S = 0.5  # a PUBACK wait is cut into slices so that stop() is noticed
_RECONNECT_MAX_DELAY_S = 10
_CLOSE_WAIT_S = 2.0  # for the broker to take our "offline" on a clean exit


def camera_topic(camera_id: str | None) -> str:
    """The topic level of a camera: MQTT's separators and wildcards cannot appear in it."""
    return re.sub(r"[/+#\x00]", "_", camera_id) if camera_id else _UNKNOWN_CAMERA


def _slug(camera_id: str | None) -> str:
    # Home Assistant object ids: [a-zA-Z0-9_-] only.
    return re.sub(r"[^A-Za-z0-9_-]", "_", camera_id or _UNKNOWN_CAMERA)


class MqttBridge:
    """Publishes readings, each returning only once the broker acknowledged it."""

    def __init__(self, settings: Settings, *, consumer: str | None = None) -> None:
        self.settings = settings
        self._consumer = consumer or default_consumer_name()
        self._prefix = settings.mqtt_topic_prefix.rstrip("/")
        self._status_topic = f"{self._prefix}/status"
        # Message ids the broker acknowledged and publish() has not yet seen; every message sent
        # is either waited for (its id is taken out) or listed as fire-and-forget, so that no id
        # is left behind to be mistaken for a later message's once paho's ids wrap around.
        self._acked: set[int] = set()
        self._unwaited: set[int] = set()
        self._acks = threading.Condition()
        self._stop = threading.Event()
        self._discovered: set[str] = set()
        self.published = 0
        self.alerts_published = 0
        self._client = self._make_client(settings)

    def _make_client(self, settings: Settings) -> paho.Client:
        client_id = settings.mqtt_client_id or f"plate-ocr-mqtt-{self._consumer}"
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311
        )
        if settings.mqtt_username is not None:
            password = settings.mqtt_password
            client.username_pw_set(
                settings.mqtt_username, password.get_secret_value() if password else None
            )
        elif settings.mqtt_password is not None:
            raise ConfigError("PLATE_OCR_MQTT_PASSWORD is set without PLATE_OCR_MQTT_USERNAME")
        if settings.mqtt_tls:
            ca = str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
            client.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(self._status_topic, "offline", qos=_QOS, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=_RECONNECT_MAX_DELAY_S)
        # Everything unacknowledged is kept and re-sent on reconnecting, however long it takes.
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def start(self) -> None:
        """Connect in the background (retrying until the broker answers)."""
        s = self.settings
        self._client.connect_async(s.mqtt_host, s.mqtt_port, keepalive=s.mqtt_keepalive_s)
        self._client.loop_start()

    def close(self) -> None:
        """Say `offline` (best effort) and disconnect."""
        self._stop.set()  # so that the disconnect is not reported as a lost broker
        mid = self._send(self._status_topic, "offline", retain=True)
        self._wait_for(mid, deadline_s=_CLOSE_WAIT_S, stoppable=False)
        self._client.disconnect()
        self._client.loop_stop()

    def stop(self) -> None:
        """Ask `run()` to return, leaving the reading in hand unacknowledged."""
        self._stop.set()

    def run(self, *, from_start: bool = False, burst: bool = False) -> int:
        """Forward readings (and, beside them, alerts) until `stop()` (with `burst`: until the
        streams have been quiet for a second). Returns the number of readings forwarded."""
        alerts = threading.Thread(
            target=self._forward_alerts, args=(from_start, burst), name="mqtt-alerts", daemon=True
        )
        alerts.start()
        try:
            return self._forward_readings(from_start, burst)
        finally:
            if not burst:
                self._stop.set()
            alerts.join()

    def _forward_alerts(self, from_start: bool, burst: bool) -> None:
        from consumers.group import GroupReader  # the alerts' stream (consumers/watch)

        reader = GroupReader(
            connect(self.settings, client_name="plate-ocr-mqtt-alerts"),
            self.settings.alerts_stream,
            MQTT_GROUP,
            self._consumer,
            from_start=from_start,
            claim_idle_ms=self.settings.stream_claim_idle_ms,
        )
        while not self._stop.is_set():
            entries = reader.read(count=10, block_ms=int(_IDLE_TICK_S * 1000))
            if not entries and burst:
                return
            for entry_id, fields in entries:
                if b"alert" in fields:
                    camera = camera_topic(fields.get(b"camera_id", b"").decode() or None)
                    topic = f"{self._prefix}/alerts/{camera}"
                    mid = self._send(topic, fields[b"alert"].decode(), retain=False)
                    if not self._wait_for(mid, deadline_s=None):
                        return  # stopped: not acknowledged, sent again later
                    self.alerts_published += 1
                reader.ack([entry_id])

    def _forward_readings(self, from_start: bool, burst: bool) -> int:
        stream = ReadingStream(self.settings)
        while not self._stop.is_set():
            readings = stream.follow(
                MQTT_GROUP, self._consumer, from_start=from_start, idle_timeout_s=_IDLE_TICK_S
            )
            for reading in readings:
                if not self.publish(reading):
                    readings.close()  # stopped: not acknowledged, so it is sent again later
                    return self.published
            if burst:
                break
        return self.published

    def publish(self, reading: PlateReading) -> bool:
        """Publish one reading; True once the broker has acknowledged every message of it,
        False when stopped first."""
        camera = camera_topic(reading.camera_id)
        payload = reading.model_dump_json()
        mids = []
        if self.settings.mqtt_discovery and camera not in self._discovered:
            mids.append(self._send(*self._discovery(reading.camera_id, camera), retain=True))
        mids.append(self._send(f"{self._prefix}/readings/{camera}", payload, retain=False))
        if reading.status == "ok" and reading.text:
            mids.append(self._send(f"{self._prefix}/{camera}/last", payload, retain=True))
        for mid in mids:
            if not self._wait_for(mid, deadline_s=None):
                return False
        if self.settings.mqtt_discovery:
            self._discovered.add(camera)
        self.published += 1
        return True

    def _send(self, topic: str, payload: str, *, retain: bool) -> int:
        info = self._client.publish(topic, payload, qos=_QOS, retain=retain)
        # NO_CONN is fine: paho keeps the message and sends it once connected.
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise ConfigError(f"MQTT publish to {topic!r} refused: {paho.error_string(info.rc)}")
        return info.mid

    def _wait_for(self, mid: int, *, deadline_s: float | None, stoppable: bool = True) -> bool:
        deadline = None if deadline_s is None else time.monotonic() + deadline_s
        with self._acks:
            while mid not in self._acked:
                stopped = stoppable and self._stop.is_set()
                if stopped or (deadline is not None and time.monotonic() > deadline):
                    self._unwaited.add(mid)  # its PUBACK, if it ever comes, is no one's
                    return False
                self._acks.wait(_WAIT_SLICE_S)
            self._acked.discard(mid)
        return True

    def _discovery(self, camera_id: str | None, camera: str) -> tuple[str, str]:
        slug = _slug(camera_id)
        state = f"{self._prefix}/{camera}/last"
        config = {
            "name": "Plate",
            "unique_id": f"plate_ocr_{slug}_plate",
            "object_id": f"plate_ocr_{slug}_plate",
            "state_topic": state,
            "value_template": "{{ value_json.text }}",
            "json_attributes_topic": state,
            "json_attributes_template": (
                "{{ {'confidence': value_json.confidence, 'reading_id': value_json.reading_id,"
                " 'created_at': value_json.created_at} | tojson }}"
            ),
            "availability_topic": self._status_topic,
            "icon": "mdi:car-info",
            "device": {
                "identifiers": [f"plate_ocr_{slug}"],
                "name": f"Plate camera {camera_id or _UNKNOWN_CAMERA}",
                "manufacturer": "plate-ocr-stream",
            },
        }
        topic = f"{self.settings.mqtt_discovery_prefix}/sensor/plate_ocr_{slug}/plate/config"
        return topic, json.dumps(config)

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s refused us: %s", self.settings.mqtt_host, reason)
            return
        log.info("connected to MQTT broker %s:%d", self.settings.mqtt_host, self.settings.mqtt_port)
        info = client.publish(self._status_topic, "online", qos=_QOS, retain=True)
        # Race-free: its PUBACK is handled on this (paho's network) thread, after we return.
        with self._acks:
            self._unwaited.add(info.mid)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self._stop.is_set():
            log.warning("lost the MQTT broker (%s); reconnecting, unacknowledged kept", reason)

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        with self._acks:
            if mid in self._unwaited:
                self._unwaited.discard(mid)
                return
            self._acked.add(mid)
            self._acks.notify_all()


def run_mqtt(settings: Settings, *, consumer: str | None, from_start: bool, burst: bool) -> int:
    """`plate-ocr mqtt`: forward readings until SIGTERM/SIGINT (or, with `burst`, drained)."""
    bridge = MqttBridge(settings, consumer=consumer)
    with stopped_by_signals(bridge.stop):
        bridge.start()
        try:
            forwarded = bridge.run(from_start=from_start, burst=burst)
        finally:
            bridge.close()
    log.info("mqtt: %d readings forwarded", forwarded)
    return 0

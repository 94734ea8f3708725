"""`plate-ocr mqtt` against the real Mosquitto: on 127.0.0.1:1883, and one of our own to restart."""

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion

from consumers.mqtt.bridge import MqttBridge, camera_topic
from plate_ocr.cli import main
from plate_ocr.constants import MQTT_GROUP
from plate_ocr.settings import Settings
from schemas import PlateReading

pytestmark = [pytest.mark.redis, pytest.mark.mqtt]

MakeReading = Callable[..., PlateReading]
Publish = Callable[[redis.Redis, PlateReading], bytes]
SHARED_BROKER = ("127.0.0.1", 1883)


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


class Subscriber:
    """A QoS 1 subscriber on a persistent session, so it misses nothing across broker restarts."""

    def __init__(
        self,
        port: int,
        topic: str,
        *,
        persistent: bool = False,
        setup: Callable[[paho.Client], None] | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
            clean_session=not persistent,
            protocol=paho.MQTTv311,
        )
        if setup is not None:
            setup(self._client)
        self._subscribed = threading.Event()
        self._client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=1, max_delay=1)
        self._client.connect_async("127.0.0.1", port, keepalive=10)
        self._client.loop_start()
        assert self._subscribed.wait(10), "subscriber never subscribed"

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def payloads(self, topic_suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(topic_suffix) and p]

    def reading_ids(self) -> set[str]:
        with self._lock:
            return {json.loads(p)["reading_id"] for t, p, _ in self.messages if "/readings/" in t}

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Mosquitto:
    """A broker of our own on a free port, with persistence, to stop and start mid-run."""

    def __init__(self, tmp: Path, extra_config: str = "allow_anonymous true\n") -> None:
        binary = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
        if binary is None:
            pytest.fail("the mosquitto binary is missing (apt install mosquitto; .ci/run does)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._config = tmp / "mosquitto.conf"
        self._config.write_text(
            # As root, mosquitto would drop to its own user and lose access to tmp.
            f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\n{extra_config}"
            f"persistence true\npersistence_location {tmp}/\n"
        )
        self._binary = binary
        self.database = tmp / "mosquitto.db"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [self._binary, "-c", str(self._config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: answers("127.0.0.1", self.port), 10, "mosquitto to listen")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)  # it saves its sessions and queues on the way
            self._proc.wait(timeout=10)
            self._proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path)
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def prefix() -> str:
    return f"test-plate-ocr-{uuid.uuid4().hex[:8]}"


def mqtt_settings(settings: Settings, port: int, prefix: str, **extra: Any) -> Settings:
    return settings.model_copy(
        update={"mqtt_port": port, "mqtt_topic_prefix": prefix, "stream_claim_idle_ms": 0, **extra}
    )


def pending(client: redis.Redis, settings: Settings) -> int:
    try:
        return int(client.xpending(settings.results_stream, MQTT_GROUP)["pending"])
    except redis.ResponseError:  # no group yet
        return 0


def clear_retained(port: int, topics: list[str]) -> None:
    """The shared broker outlives the test: leave no retained message behind."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic in topics:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_camera_topics_cannot_hold_mqtt_separators_or_wildcards() -> None:
    assert camera_topic("gate/3+#") == "gate_3__"
    assert camera_topic(None) == "unknown"


def test_every_reading_reaches_the_shared_broker_with_the_last_plate_retained(
    settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
    prefix: str,
) -> None:
    if not answers(*SHARED_BROKER):
        pytest.fail("no MQTT broker on 127.0.0.1:1883 (.ci/run starts mosquitto)")
    s = mqtt_settings(
        settings,
        SHARED_BROKER[1],
        prefix,
        mqtt_discovery=True,
        mqtt_discovery_prefix=f"{prefix}-ha",
    )
    readings = [
        make_reading(f"j{k}", camera_id=f"gate/{k % 2}", text=f"ABC{k:03d}") for k in range(20)
    ]
    readings.append(make_reading("bad", camera_id="gate/0", status="error"))
    for reading in readings:
        publish(redis_client, reading)
    subscriber = Subscriber(SHARED_BROKER[1], f"{prefix}/#")
    try:
        bridge = MqttBridge(s, consumer="m1")
        bridge.start()
        assert bridge.run(from_start=True, burst=True) == 21
        bridge.close()
        wait_for(lambda: len(subscriber.reading_ids()) == 21, 10, "every reading")
        got = subscriber.payloads("/readings/gate_0")
        assert [r["job_id"] for r in got] == [f"j{k}" for k in range(0, 20, 2)] + ["bad"]
        assert pending(redis_client, s) == 0
    finally:
        subscriber.close()
    # A subscriber that comes later is given the last plate of each camera, and HA its sensors.
    late = Subscriber(SHARED_BROKER[1], f"{prefix}/+/last")
    ha = Subscriber(SHARED_BROKER[1], f"{prefix}-ha/#")
    try:
        wait_for(lambda: len(late.messages) == 2 and len(ha.messages) == 2, 10, "retained")
        last = {t: json.loads(p)["text"] for t, p, _ in late.messages}
        assert last == {f"{prefix}/gate_0/last": "ABC018", f"{prefix}/gate_1/last": "ABC019"}
        configs = {t: json.loads(p) for t, p, _ in ha.messages}
        config = configs[f"{prefix}-ha/sensor/plate_ocr_gate_0/plate/config"]
        assert config["state_topic"] == f"{prefix}/gate_0/last"
        assert config["value_template"] == "{{ value_json.text }}"
        assert config["availability_topic"] == f"{prefix}/status"
    finally:
        late.close()
        ha.close()
        clear_retained(
            SHARED_BROKER[1],
            [*last, *configs, f"{prefix}/status"],
        )


def test_a_broker_restart_mid_run_loses_no_reading(
    settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
    broker: Mosquitto,
    prefix: str,
) -> None:
    broker.start()
    s = mqtt_settings(settings, broker.port, prefix)
    subscriber = Subscriber(broker.port, f"{prefix}/readings/#", persistent=True)
    bridge = MqttBridge(s, consumer="m1")
    bridge.start()
    runner = threading.Thread(target=bridge.run, kwargs={"from_start": True})
    runner.start()
    readings = [make_reading(f"j{k}", camera_id="gate-3") for k in range(300)]

    def cameras() -> None:
        for reading in readings:
            publish(redis_client, reading)
            time.sleep(0.005)

    feeder = threading.Thread(target=cameras)
    feeder.start()
    try:
        wait_for(lambda: len(subscriber.reading_ids()) >= 60, 30, "the first readings")
        broker.stop()
        assert broker.database.exists(), "the broker saved its sessions and queues"
        # While it is down, what the bridge took stays unacknowledged in the group.
        wait_for(lambda: pending(redis_client, s) >= 1, 10, "a reading held for its PUBACK")
        broker.start()
        feeder.join(timeout=60)
        wanted = {r.reading_id for r in readings}
        wait_for(lambda: subscriber.reading_ids() >= wanted, 60, "every reading after restart")
        wait_for(lambda: pending(redis_client, s) == 0, 10, "every entry acknowledged")
    finally:
        bridge.stop()
        runner.join(timeout=10)
        bridge.close()
        subscriber.close()
        feeder.join(timeout=60)
    assert not runner.is_alive()


def test_a_bridge_that_dies_before_the_puback_sends_the_reading_again(
    settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
    broker: Mosquitto,
    prefix: str,
) -> None:
    s = mqtt_settings(settings, broker.port, prefix)
    readings = [make_reading(f"j{k}", camera_id="gate-3") for k in range(5)]
    for reading in readings:
        publish(redis_client, reading)
    doomed = MqttBridge(s, consumer="m1")  # no broker yet: nothing can be acknowledged
    doomed.start()
    runner = threading.Thread(target=doomed.run, kwargs={"from_start": True})
    runner.start()
    wait_for(lambda: pending(redis_client, s) >= 1, 10, "the bridge to take a reading")
    doomed.stop()  # as good as a crash: it never heard a PUBACK
    runner.join(timeout=10)
    doomed._client.loop_stop()
    assert pending(redis_client, s) >= 1 and doomed.published == 0

    broker.start()
    subscriber = Subscriber(broker.port, f"{prefix}/readings/#")
    try:
        assert (
            main(
                [
                    "--redis-url",
                    s.redis_url,
                    "--stream",
                    s.results_stream,
                    "mqtt",
                    "--port",
                    str(broker.port),
                    "--topic-prefix",
                    prefix,
                    "--consumer",
                    "m1",
                    "--burst",
                ]
            )
            == 0
        )
        wanted = {r.reading_id for r in readings}
        wait_for(lambda: subscriber.reading_ids() == wanted, 10, "the readings, sent again")
        assert pending(redis_client, s) == 0
    finally:
        subscriber.close()


def tls_broker(tmp: Path) -> Mosquitto:
    """A broker that takes only TLS (certificate from a CA made here) and user `cam`."""

    def run(*args: str) -> None:
        subprocess.run(args, cwd=tmp, check=True, capture_output=True)

    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
    )
    run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    )
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    run(passwd, "-b", "-c", str(tmp / "passwd"), "cam", "s3cret")
    return Mosquitto(
        tmp,
        f"cafile {tmp}/ca.crt\ncertfile {tmp}/server.crt\nkeyfile {tmp}/server.key\n"
        f"allow_anonymous false\npassword_file {tmp}/passwd\n",
    )


def test_tls_and_a_username_and_password_come_from_the_settings(
    settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
    tmp_path: Path,
    prefix: str,
) -> None:
    broker = tls_broker(tmp_path)
    broker.start()
    env = {
        "PLATE_OCR_MQTT_TLS": "true",
        "PLATE_OCR_MQTT_CA_FILE": str(tmp_path / "ca.crt"),
        "PLATE_OCR_MQTT_USERNAME": "cam",
        "PLATE_OCR_MQTT_PASSWORD": "s3cret",
    }
    s = Settings.from_env(
        env,
        **{k: v for k, v in settings.model_dump().items() if k.startswith(("redis", "results"))},
        mqtt_port=broker.port,
        mqtt_topic_prefix=prefix,
    )
    assert "s3cret" not in repr(s)

    def secure(client: paho.Client) -> None:
        client.tls_set(ca_certs=str(tmp_path / "ca.crt"))
        client.username_pw_set("cam", "s3cret")

    subscriber = Subscriber(broker.port, f"{prefix}/readings/#", setup=secure)
    try:
        reading = make_reading("j1", camera_id="gate-3")
        publish(redis_client, reading)
        bridge = MqttBridge(s, consumer="m1")
        bridge.start()
        assert bridge.run(from_start=True, burst=True) == 1
        bridge.close()
        wait_for(lambda: subscriber.reading_ids() == {reading.reading_id}, 10, "the reading")
    finally:
        subscriber.close()
        broker.stop()

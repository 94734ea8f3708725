"""A throwaway Redis HA set on this machine: a primary, replicas and Sentinels, on free ports.

For `bench/failover.py` and the failover tests. Every server is a `redis-server` child process
(Sentinel is `redis-server CONF --sentinel`) bound to 127.0.0.1 with its files in one temporary
folder; `stop()` (or leaving the `with` block) kills them all. Data nodes persist with AOF,
`appendfsync always`, so a node killed and restarted comes back with what it had.

Sentinel's timings are cut from production's (30 s down-after, 3 min failover timeout) to what a
test can wait for: a primary that stops answering is declared down after `down_after_ms` and a
replica is promoted a second or two later.
"""

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import redis

__all__ = ["DataNode", "RedisHA", "free_port", "wait_for"]

MASTER_NAME = "plate-ocr"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SYNC_RETRY_S: Final = 15.0
_SYNC_ATTEMPTS: Final = 4


def wait_for(condition: Callable[[], bool], *, timeout_s: float = 30.0, what: str = "") -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout_s} s: {what or condition}")
        time.sleep(0.02)


def _answers(port: int) -> bool:
    client = redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
        return False
    finally:
        client.close()


def _said_role(node: "DataNode") -> str:
    """The node's role as its own INFO gives it, or why it gave none."""
    if not node.alive:
        return "dead"
    try:
        return node.role()
    except (redis.ConnectionError, redis.TimeoutError) as e:
        return f"not answering ({e})"


class DataNode:
    """One redis-server (primary or replica) that can be SIGKILLed and restarted on its port."""

    def __init__(self, root: Path, index: int, extra: list[str]) -> None:
        self.port = free_port()
        self.dir = root / f"node{index}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, replica_of: int | None = None, timeout_s: float = 15.0) -> None:
        args = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--dir", str(self.dir),
            "--logfile", str(self.dir / "redis.log"),
            *self.extra,
        ]  # fmt: skip
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        wait_for(
            lambda: _answers(self.port), timeout_s=timeout_s, what=f"redis-server :{self.port}"
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown hook; what the replicas had not received is gone with it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, socket_connect_timeout=1, socket_timeout=5)

    def role(self) -> str:
        with self.client() as c:
            return str(c.info("replication")["role"])


class RedisHA:
    """`replicas` + 1 data nodes and `sentinels` Sentinels watching them as `MASTER_NAME`."""

    def __init__(
        self,
        root: Path,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 4000,
        extra: list[str] | None = None,
    ) -> None:
        self.root = root
        self.master_name = MASTER_NAME
        self.nodes = [DataNode(root, i, extra or []) for i in range(replicas + 1)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self._down_after_ms = down_after_ms
        self._failover_timeout_ms = failover_timeout_ms
        self._sentinels: list[subprocess.Popen[bytes]] = []

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> Self:
        try:
            primary, *replicas = self.nodes
            primary.start()
            for node in replicas:
                node.start(replica_of=primary.port)
            wait_for(lambda: self._replicas_online(primary) == len(replicas), what="replicas")
            for i, port in enumerate(self.sentinel_ports):
                self._start_sentinel(i, port, primary.port)
            wait_for(self._sentinels_agree, what="sentinels to see the set")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self._sentinels:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for node in self.nodes:
            node.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    # -- what the tests and the bench ask -------------------------------------------------

    @property
    def sentinel_url_hosts(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def url(self, db: int = 0) -> str:
        """The `redis+sentinel://` URL our settings take for this set."""
        return f"redis+sentinel://{self.sentinel_url_hosts}/{self.master_name}/{db}"

    def primary(self) -> DataNode:
        """The node the Sentinels name as primary now."""
        port = self.sentinel_master_port()
        return next(node for node in self.nodes if node.port == port)

    def sentinel_master_port(self, index: int = 0) -> int:
        client = redis.Redis(port=self.sentinel_ports[index], socket_timeout=2)
        try:
            address: Any = client.sentinel_get_master_addr_by_name(self.master_name)
            return int(address[1])
        finally:
            client.close()

    def kill_primary(self) -> DataNode:
        """SIGKILL the primary; returns it (restart it with `rejoin`)."""
        node = self.primary()
        node.kill()
        return node

    def wait_promoted(self, old: DataNode, *, timeout_s: float = 30.0) -> DataNode:
        """Wait until every Sentinel names another node primary and that node says so."""

        def promoted() -> bool:
            try:
                ports = {self.sentinel_master_port(i) for i in range(len(self.sentinel_ports))}
                if len(ports) != 1 or old.port in ports:
                    return False
                return self.primary().role() == "master"
            except (redis.ConnectionError, redis.TimeoutError, StopIteration):
                return False

        wait_for(promoted, timeout_s=timeout_s, what="a replica to be promoted")
        return self.primary()

    def rejoin(self, node: DataNode) -> None:
        """Restart a killed node as a replica of the current primary, and wait until in sync.

        A sync that has not come up after `_SYNC_RETRY_S` is asked for again, towards the node
        that says it is primary then (its own INFO, not the Sentinels' word): in CI runs the
        link of a rejoined node twice stayed down for 30-45 s, once with the node it had been
        pointed at answering `-NOMASTERLINK`, i.e. itself a replica (each such run passed
        alone, in 34 s)."""
        node.start(replica_of=self.primary().port)
        for attempt in range(_SYNC_ATTEMPTS):
            if attempt:
                with node.client() as c:
                    c.replicaof("127.0.0.1", str(self._self_declared_primary(node).port))
            try:
                wait_for(lambda: self._in_sync(node), timeout_s=_SYNC_RETRY_S, what="sync")
                return
            except AssertionError:
                continue
        raise AssertionError(
            f"node :{node.port} not in sync after {_SYNC_ATTEMPTS} tries of {_SYNC_RETRY_S} s\n"
            f"{self._sync_report(node)}"
        )

    # -- internals --------------------------------------------------------------------------

    def _start_sentinel(self, index: int, port: int, primary_port: int) -> None:
        folder = self.root / f"sentinel{index}"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "sentinel.conf"  # Sentinel rewrites its config: it must be a file
        name = self.master_name
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {folder}\nlogfile {folder / 'sentinel.log'}\n"
            f"sentinel monitor {name} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {name} {self._down_after_ms}\n"
            f"sentinel failover-timeout {name} {self._failover_timeout_ms}\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        proc = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL
        )
        self._sentinels.append(proc)
        wait_for(lambda: _answers(port), timeout_s=15, what=f"sentinel :{port}")

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            client = redis.Redis(port=port, socket_timeout=2)
            try:
                state: Any = client.sentinel_master(self.master_name)
            finally:
                client.close()
            if int(state["num-other-sentinels"]) < len(self.sentinel_ports) - 1:
                return False
            if int(state["num-slaves"]) < len(self.nodes) - 1:
                return False
        return True

    @staticmethod
    def _replicas_online(primary: DataNode) -> int:
        with primary.client() as c:
            info = c.info("replication")
        return sum(
            1
            for key, value in info.items()
            if key.startswith("slave") and isinstance(value, dict) and value["state"] == "online"
        )

    def _self_declared_primary(self, rejoining: DataNode) -> DataNode:
        """The node, other than `rejoining`, whose INFO says role:master (else Sentinel's)."""
        others = (each for each in self.nodes if each is not rejoining)
        return next((each for each in others if _said_role(each) == "master"), self.primary())

    def _sync_report(self, node: DataNode, lines: int = 15) -> str:
        """Every data node's role as it says it, the Sentinels' primary, and each log's tail."""
        try:
            named = str(self.sentinel_master_port())
        except (redis.ConnectionError, redis.TimeoutError) as e:
            named = f"unknown ({e})"
        parts = [f"the Sentinels name :{named} primary; :{node.port} is rejoining"]
        for each in self.nodes:
            log = each.dir / "redis.log"
            tail = log.read_text(errors="replace").splitlines()[-lines:] if log.is_file() else []
            parts.append(f":{each.port} says {_said_role(each)}; redis.log:\n" + "\n".join(tail))
        return "\n".join(parts)

    @staticmethod
    def _in_sync(node: DataNode) -> bool:
        try:
            with node.client() as c:
                info = c.info("replication")
            return bool(info.get("master_link_status") == "up")
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False

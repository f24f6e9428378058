"""One Redis pub/sub connection per process, fanning messages out to waiting threads.

Waiting on a channel costs no Redis traffic while nothing happens, so a sync
request waits for its job without polling. After any reconnect every waiter is
woken to re-read the state it waits for, since messages sent meanwhile are lost.
"""

import logging
import os
import threading
import time
from collections import defaultdict

import redis

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, client: redis.Redis, pattern: str) -> None:
        self._client = client
        self._pattern = pattern
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = defaultdict(set)
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.released = False  # set once, when this process stops: nobody waits any more

    def watch(self, channel: str) -> threading.Event:
        """An Event set whenever `channel` gets a message (or the connection was lost)."""
        event = threading.Event()
        with self._lock:
            self._ensure_thread()
            self._waiters[channel].add(event)
        if self.released:
            event.set()
        return event

    def release(self) -> None:
        """Wake every waiter now and from now on: the process is stopping, and those
        waiting should answer with what they have rather than be cut off mid-wait."""
        self.released = True
        self._wake()

    def unwatch(self, channel: str, event: threading.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(channel)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[channel]

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        if self._pid != os.getpid():
            self._waiters.clear()  # after a fork the parent's waiters belong to nobody here
        self._pid = os.getpid()

        self._thread = threading.Thread(target=self._listen_forever, name="notifier", daemon=True)
        self._thread.start()

    def _wake(self, channel: str | None = None) -> None:
        with self._lock:
            groups = [self._waiters.get(channel, set())] if channel else self._waiters.values()
            for events in groups:
                for event in events:
                    event.set()

    def _listen_forever(self) -> None:
        while True:
            try:
                self._listen()
            except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
                log.warning("notifier lost Redis (%s); reconnecting", error)
            self._wake()
            time.sleep(0.5)

    def _listen(self) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.psubscribe(self._pattern)
            self._wake()  # anything published before this subscription is re-read
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    channel = message["channel"]
                    self._wake(channel.decode() if isinstance(channel, bytes) else channel)
        finally:
            pubsub.close()

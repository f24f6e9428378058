"""A message the worker was handed just as Redis went away is not lost (tasks/broker.py).

kombu pops a message (BRPOP), then records it in `unacked` in another round trip. Here
that second round trip meets Redis gone, once (as when Redis dies between the two); a
real Redis, kombu's consumer through the worker's own transport."""

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

from tasks import broker

QUEUE = Queue("outage-test", Exchange("outage-test"), routing_key="outage-test")


@pytest.fixture
def connection(db):
    broker.install()
    url = "redis://{host}:{port}/0".format(**db.connection_pool.connection_kwargs)
    with Connection(url, transport_options={"visibility_timeout": 3600}) as connection:
        yield connection


def test_a_message_popped_as_redis_goes_away_is_recorded_once_it_is_back(
    connection, db, monkeypatch
):
    with connection.channel() as channel:
        Producer(channel).publish(
            {"job": 1}, exchange=QUEUE.exchange, routing_key="outage-test", declare=[QUEUE]
        )
    execute, failures = redis.client.Pipeline.execute, []

    def away_once(pipeline, *args, **kwargs):
        if not failures:
            failures.append(True)
            raise redis.ConnectionError("Connection closed by server.")
        return execute(pipeline, *args, **kwargs)

    received = []
    with Consumer(connection, [QUEUE], callbacks=[lambda body, message: received.append(body)]):
        monkeypatch.setattr(redis.client.Pipeline, "execute", away_once)  # from the pop on
        connection.drain_events(timeout=10)
    assert failures == [True]
    assert received == [{"job": 1}]
    assert db.hlen("unacked") == 1 and db.llen("outage-test") == 0

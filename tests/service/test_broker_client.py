"""Both ends of the queue send their synchronous commands through one Redis client per
channel (jobs/transport.py), where kombu alone builds a new one for each: each message
the API publishes, each record of a delivery and each ack in a worker. A real Redis."""

from kombu import Connection

from jobs.queue import JobQueue
from jobs.settings import load
from tasks import broker


def url_of(db) -> str:
    return "redis://{host}:{port}/0".format(**db.connection_pool.connection_kwargs)


def test_the_worker_channel_sends_its_commands_through_one_client(db):
    broker.install()
    with Connection(url_of(db)) as connection, connection.channel() as channel:
        assert isinstance(channel, broker.Channel)
        client = channel._create_client()
        assert channel._create_client() is client
        assert client.ping()


def test_the_api_producer_publishes_through_one_client(db):
    queue = JobQueue(load({"REDIS_URL": url_of(db)}))
    with queue.celery.connection_for_write() as connection:
        channel = connection.default_channel
        client = channel._create_client()
        assert channel._create_client() is client
        client.lpush("transport-test", "x")
        assert db.rpop("transport-test") == b"x"

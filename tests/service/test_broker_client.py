"""The worker's channel sends its synchronous commands (the record of each delivery,
each ack) through one Redis client, where kombu alone builds a new one for every
command (tasks/broker.py); a real Redis, the worker's own transport."""

from kombu import Connection

from tasks import broker


def test_the_worker_channel_sends_its_commands_through_one_client(db):
    broker.install()
    url = "redis://{host}:{port}/0".format(**db.connection_pool.connection_kwargs)
    with Connection(url) as connection, connection.channel() as channel:
        client = channel._create_client()
        assert channel._create_client() is client
        assert client.ping()

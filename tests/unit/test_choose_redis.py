"""`make run` uses the Redis it is given, else a local one, else starts its own."""

from stack.redis_server import PrivateRedis, choose_redis, free_port, reachable


def test_configured_redis_that_answers_is_used():
    private = PrivateRedis().start()
    try:
        assert choose_redis(private.url, local="redis://127.0.0.1:1/0") == (private.url, None)
    finally:
        private.cleanup()


def test_local_redis_is_used_when_the_configured_one_does_not_answer():
    private = PrivateRedis().start()
    try:
        assert choose_redis("redis://127.0.0.1:1/0", local=private.url) == (private.url, None)
    finally:
        private.cleanup()


def test_a_private_redis_is_started_when_none_answers():
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    url, started = choose_redis(nowhere, local=nowhere)
    try:
        assert started is not None and url == started.url and reachable(url)
    finally:
        if started is not None:
            started.cleanup()
    assert not reachable(url)

"""`python -m stack`: what `make run` starts. One Ctrl-C or SIGTERM stops everything."""

import argparse
import logging
import signal
import threading

from stack.redis_server import RedisUnavailable
from stack.service import Service


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stack")
    parser.add_argument("--workers", type=int, default=1, help="separate worker processes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s stack %(message)s")
    stop = threading.Event()
    service = Service(workers=args.workers)

    def on_signal(*_) -> None:
        stop.set()
        service.interrupt()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    try:
        service.start()
    except RedisUnavailable as error:  # raised before anything is started
        logging.error("%s", error)
        raise SystemExit(1) from None
    try:
        service.wait_ready()
        logging.info(
            "ready: %s (Redis at %s; %d worker(s) x %d processes)",
            service.url,
            service.env["REDIS_URL"],
            service.workers,
            service.worker_slots,
        )
        stop.wait()

    finally:
        logging.info("stopping")
        service.stop()


if __name__ == "__main__":
    main()

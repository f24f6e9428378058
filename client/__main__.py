"""`python -m client run FILE --fn NAME [--payload JSON] [--async] [--url URL]`.

Prints the result (or the failure) as JSON; with --async, submits the job and
shows a spinner with its status while waiting. Exit 0 on success, 1 when the job
fails, 2 when the request is refused or the service cannot be reached.
"""

import argparse
import itertools
import json
import sys
import time

from client.api import FINAL, Client, JobFailed, ServiceError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m client")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one exported function of a script")
    run.add_argument("file")
    run.add_argument("--fn", required=True)
    run.add_argument("--payload", default="{}")
    run.add_argument("--timeout", type=int, default=None, help="milliseconds")
    run.add_argument("--async", dest="asynchronous", action="store_true", help="submit, then poll")
    run.add_argument("--url", default="http://127.0.0.1:3333")
    run.add_argument("--key", default=None, help="API key, sent as a Bearer token")
    return parser.parse_args(argv)


def wait_with_spinner(job, stream=sys.stderr) -> object:
    spinner = itertools.cycle("|/-\\")
    status = job.status()["status"]
    while status not in FINAL:
        stream.write(f"\r{next(spinner)} job {job.id}: {status}   ")
        stream.flush()
        time.sleep(0.1)
        status = job.status()["status"]
    stream.write(f"\r  job {job.id}: {status}   \n")
    return job.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        with open(args.file, encoding="utf-8") as source:
            script = source.read()
        payload = json.loads(args.payload)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    options = {} if args.timeout is None else {"timeout": args.timeout}
    api = Client(args.url, args.key)
    try:
        if args.asynchronous:
            result = wait_with_spinner(api.submit(script, args.fn, payload, **options))
        else:
            result = api.run(script, args.fn, payload, **options)
    except JobFailed as failure:
        print(
            json.dumps(
                {
                    "code": failure.code,
                    "message": failure.message,
                    "stack": failure.stack,
                    "logs": failure.logs,
                }
            )
        )
        return 1
    except ServiceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"result": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

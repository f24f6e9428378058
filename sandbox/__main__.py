"""`python -m sandbox run FILE --fn NAME`: run one job exactly as a worker would.

Prints the outcome as JSON; exit status 0 on success, 1 on a job failure,
2 on bad arguments.
"""

import argparse
import json
import sys

from sandbox import Job, Limits, run


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="run one exported function of a script")
    run_cmd.add_argument("file", help="JavaScript or TypeScript module")
    run_cmd.add_argument("--fn", required=True, help="name of the exported function")
    run_cmd.add_argument("--payload", default="{}", help="JSON object passed to the function")
    run_cmd.add_argument("--timeout", type=int, default=None, help="milliseconds (default 5000)")
    run_cmd.add_argument("--heap-mb", type=int, default=Limits.heap_mb)
    run_cmd.add_argument("--memory-mb", type=int, default=Limits.memory_mb)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    limits = Limits(heap_mb=args.heap_mb, memory_mb=args.memory_mb)
    try:
        with open(args.file, encoding="utf-8") as source:
            script = source.read()
        payload = json.loads(args.payload)
        job = Job.create(script, args.fn, payload, args.timeout, limits)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        message = error
        if isinstance(error, json.JSONDecodeError):
            message = f"payload is not valid JSON: {error}"
        print(f"error: {message}", file=sys.stderr)
        return 2
    outcome = run(job, limits)
    print(json.dumps(outcome.to_dict(), ensure_ascii=False))
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())

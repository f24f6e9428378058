"""A small Python client for the service.

from client import Client, JobFailed
api = Client("http://127.0.0.1:3333")
api.run("export function run(p) { return p.n + 1 }", "run", {"n": 1})  # -> 2
job = api.submit(script, "run", {})   # returns at once
job.wait(timeout=30)                  # the result, or raises JobFailed
"""

from client.api import Client, JobFailed, ServiceError, SubmittedJob

__all__ = ["Client", "JobFailed", "ServiceError", "SubmittedJob"]

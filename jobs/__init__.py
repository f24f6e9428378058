"""Shared job state: what the API and the workers both read and write, and how.

Settings, the Redis connection and its key names, each job's record and the scripts
that change it (`store`), admission and quotas (`admission`), who is present
(`presence`), the figures of ended jobs (`stats`), a job as a queue message (`wire`)
and the queue it is sent to by name (`queue`). Nothing here runs a job: that is the
worker's (`tasks/`), through the sandbox (`sandbox/`), whose job description (`Job`,
`Limits`, `Outcome`) is the only part of it imported here.
"""

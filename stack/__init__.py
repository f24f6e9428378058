"""Starting the whole service on one machine: Redis if needed, workers, the API.

`make run` uses it, and so do the integration tests, so what they test is what runs.
"""

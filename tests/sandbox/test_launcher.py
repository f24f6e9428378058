"""Finding Deno under the launcher that starts it in its namespaces (sandbox/namespaces.py)."""

import builtins
import subprocess
import time

from sandbox import namespaces


def test_the_launchers_child_is_found_from_the_kernels_list_of_children():
    parent = subprocess.Popen(["sh", "-c", "sleep 5; :"])
    try:
        child = _wait_for(lambda: namespaces.child_pid(parent.pid))
        assert namespaces._parent(child) == parent.pid
    finally:
        parent.kill()
        parent.wait()


def test_where_the_kernel_keeps_no_list_of_children_each_process_parent_is_read(monkeypatch):
    def no_children_list(path, *args, **kwargs):
        if str(path).endswith("/children"):
            raise FileNotFoundError(path)
        return builtins.open(path, *args, **kwargs)

    parent = subprocess.Popen(["sh", "-c", "sleep 5; :"])
    try:
        with_list = _wait_for(lambda: namespaces.child_pid(parent.pid))
        monkeypatch.setattr(namespaces, "open", no_children_list, raising=False)
        assert namespaces.child_pid(parent.pid) == with_list
    finally:
        parent.kill()
        parent.wait()


def _wait_for(find):
    deadline = time.monotonic() + 5
    while (found := find()) is None:
        assert time.monotonic() < deadline, "no child appeared"
        time.sleep(0.01)
    return found

"""Where code that got past Deno's permission checks may write, where the kernel has
Landlock: its own directory only. Played, as in test_namespaces.py, by Deno with every
permission started exactly as a job's process is. Skipped where the kernel has none."""

import json
import shutil
from pathlib import Path

import pytest
from procs import own_tempdir
from security import escaped

from sandbox.process import confinement

WALLS = confinement()
pytestmark = pytest.mark.skipif(not WALLS.landlock, reason="this kernel has no Landlock")


@pytest.fixture
def elsewhere():
    """A directory the job's user could write to, outside the job's own."""
    directory = own_tempdir()
    yield Path(directory)
    shutil.rmtree(directory, ignore_errors=True)


def past_the_permissions(source: str) -> object:
    return escaped.past_the_permissions(source, WALLS)


def writes(path: str) -> str:
    return (
        f"let said; try {{ Deno.writeTextFileSync({json.dumps(path)}, 'x'); said = 'written' }}"
        " catch (e) { said = e.name } console.log(JSON.stringify(said))"
    )


def test_it_may_write_in_its_own_directory():
    assert past_the_permissions(writes("mine.txt")) == "written"


def test_it_cannot_write_outside_its_own_directory(elsewhere):
    assert past_the_permissions(writes(str(elsewhere / "theirs.txt"))) == "PermissionDenied"
    assert not (elsewhere / "theirs.txt").exists()


def test_it_cannot_remove_or_rename_what_is_outside(elsewhere):
    kept = elsewhere / "kept.txt"
    kept.write_text("x")
    kept.chmod(0o666)
    source = (
        "const said = [];"
        f"try {{ Deno.removeSync({json.dumps(str(kept))}); said.push('removed') }} catch (e) {{ said.push(e.name) }}"
        f"try {{ Deno.renameSync({json.dumps(str(kept))}, 'moved.txt'); said.push('moved') }} catch (e) {{ said.push(e.name) }}"
        "console.log(JSON.stringify(said))"
    )
    assert past_the_permissions(source) == ["PermissionDenied", "PermissionDenied"]
    assert kept.read_text() == "x"


def test_it_can_still_read_what_its_user_may(elsewhere):
    readable = elsewhere / "readable.txt"
    readable.write_text("hello")
    readable.chmod(0o644)
    assert (
        past_the_permissions(
            f"console.log(JSON.stringify(Deno.readTextFileSync({json.dumps(str(readable))})))"
        )
        == "hello"
    )

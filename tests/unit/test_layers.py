"""The layers, as a reader meets them from request to Deno and back, and what each may
import of the project:

    api/      HTTP                 -> jobs/, and of sandbox/ only the job's description
    tasks/    the worker           -> jobs/, sandbox/
    jobs/     shared job state     -> sandbox/'s job description
    sandbox/  one Deno process per job: nothing outside itself

No module imports upward, and the API sends jobs to the worker by task name, never by
importing it. Tools sit on top: stack/ (runs the service), bench/, and client/ (which
speaks HTTP only, and shares nothing but the names of the job statuses).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("api", "jobs", "tasks", "sandbox", "stack", "client", "bench")
JOB_DESCRIPTION = {"sandbox.job", "sandbox.limits", "sandbox.outcome"}
ALLOWED: dict[str, set[str]] = {
    "sandbox": {"sandbox"},
    "jobs": {"jobs"} | JOB_DESCRIPTION,
    "tasks": {"tasks", "jobs", "sandbox"},
    "api": {"api", "jobs", "sandbox.job", "sandbox.limits"},
    "stack": {"stack", "jobs", "tasks", "sandbox"},
    "client": {"client", "jobs.status"},
    "bench": {"bench", "stack", "jobs", "sandbox"},
}


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def project_imports(path: Path) -> set[str]:
    name = module_name(path)
    return imports_in(
        path.read_text(), name if path.name == "__init__.py" else name.rpartition(".")[0]
    )


def imports_in(source: str, package: str) -> set[str]:
    """Every module of the project that `source`, a module of `package`, imports, at any
    depth of its code (a `from package import name` counts as `package.name` when that
    is a module)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [
                f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base
                for alias in node.names
            ]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in PROJECT}
    return found


def allowed(layer: str, imported: str) -> bool:
    return any(imported == rule or imported.startswith(rule + ".") for rule in ALLOWED[layer])


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    wrong = {
        f"{path.relative_to(ROOT)} imports {imported}"
        for path in modules(layer)
        for imported in project_imports(path)
        if not allowed(layer, imported)
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_every_package_is_checked():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages == set(PROJECT)
    assert not [path.name for path in ROOT.glob("*.py")], "no loose modules at the root"


def test_the_rules_see_every_kind_of_import():
    """The parser itself: plain, from, submodule-as-name, relative, and imports inside
    functions."""
    source = (
        "import tasks.app\nfrom sandbox import process, Job\nfrom . import errors\n"
        "def f():\n    from jobs.store import JobStore\n"
    )
    found = imports_in(source, "api")
    assert found == {"tasks.app", "sandbox.process", "sandbox", "api.errors", "jobs.store"}
    assert [name for name in sorted(found) if not allowed("api", name)] == [
        "sandbox",
        "sandbox.process",
        "tasks.app",
    ]


def test_the_api_loads_nothing_of_the_worker_or_the_sandbox_machinery():
    """At run time too: importing the app (as gunicorn does) loads no module of tasks/,
    and of sandbox/ only the job's description."""
    code = (
        "import sys, api.wsgi\n"
        "print('\\n'.join(m for m in sys.modules if m.split('.')[0] in ('tasks', 'sandbox')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(done.stdout.split()) <= {"sandbox"} | JOB_DESCRIPTION

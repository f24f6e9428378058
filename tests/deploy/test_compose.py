"""The Docker deployment files: compose.yaml and docker/Dockerfile.

No Docker engine is needed. The Compose CLI validates compose.yaml when one is installed
(`docker compose`, else `docker-compose`); the other tests read the files as text, so
they run everywhere.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def _works(argv: list[str]) -> tuple[bool, str]:
    """Whether `argv` exits 0, and what it said when it did not."""
    if shutil.which(argv[0]) is None:
        return False, f"`{argv[0]}` is not installed"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"`{' '.join(argv)}` failed: {error}"
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return False, f"`{' '.join(argv)}` exited {done.returncode}: {said[0] if said else ''}"
    return True, ""


@pytest.fixture(scope="module")
def compose_cli() -> list[str]:
    """The Compose v2 plugin if it works, else the standalone v1 tool; skip without either."""
    reasons = []
    for cli in (["docker", "compose"], ["docker-compose"]):
        works, reason = _works([*cli, "version"])
        if works:
            return cli
        reasons.append(reason)
    pytest.skip("no Compose CLI to validate compose.yaml: " + "; ".join(reasons))


def _compose_text() -> str:
    return COMPOSE_FILE.read_text()


def _service_names(compose: str) -> set[str]:
    """Keys indented once under the top-level `services:` (enough for this file's layout)."""
    section = re.search(r"^services:\n(.*?)(?=^\S|\Z)", compose, re.MULTILINE | re.DOTALL)
    assert section, "compose.yaml has no top-level services: key"
    return set(re.findall(r"^  ([\w.-]+):", section.group(1), re.MULTILINE))


def _dockerfile_instructions(keyword: str) -> list[str]:
    """The arguments of every `keyword` instruction, continuation lines joined."""
    dockerfile = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return re.findall(rf"^\s*{keyword}\s+(.*)$", dockerfile, re.MULTILINE | re.IGNORECASE)


def test_compose_cli_accepts_compose_file(compose_cli):
    done = subprocess.run(
        [*compose_cli, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr or done.stdout


def test_compose_defines_redis_api_and_worker_services():
    assert {"redis", "api", "worker"} <= _service_names(_compose_text())


def test_compose_file_follows_the_compose_spec_without_version_key():
    assert not re.search(r"^version:", _compose_text(), re.MULTILINE)


def test_compose_publishes_api_on_port_9090():
    assert '"9090:9090"' in _compose_text()


def test_redis_persists_jobs_with_an_append_only_file():
    compose = _compose_text()
    assert "--appendonly" in compose
    assert "redis-data:/data" in compose


def test_redis_memory_is_bounded_without_ever_evicting_jobs():
    """maxmemory from the same REDIS_MAXMEMORY_MB that the API and workers read, and
    noeviction: evicting would drop queued jobs and records of running ones."""
    compose = _compose_text()
    assert re.search(r"- --maxmemory\n\s+- \$\{REDIS_MAXMEMORY_MB:-(\d+)\}mb\n", compose)
    assert re.search(r"- --maxmemory-policy\n\s+- noeviction\n", compose)
    assert re.search(r"^  REDIS_MAXMEMORY_MB: \$\{REDIS_MAXMEMORY_MB:-\d+\}", compose, re.M)


def test_api_and_worker_run_under_an_init_process_that_reaps_children():
    assert len(re.findall(r"^\s+init: true\b", _compose_text(), re.MULTILINE)) >= 2


def test_no_fixed_container_name_so_workers_can_be_scaled():
    assert "container_name:" not in _compose_text()


def test_image_uses_a_glibc_debian_bookworm_base():
    bases = _dockerfile_instructions("FROM")
    assert bases, "docker/Dockerfile has no FROM"
    assert all("bookworm" in base and "alpine" not in base for base in bases)


def test_image_runs_as_a_non_root_user():
    users = _dockerfile_instructions("USER")
    assert users, "docker/Dockerfile has no USER: it would run as root"
    assert users[-1].split(":")[0].strip() not in ("root", "0")


def test_image_installs_libmagic_for_mime_detection():
    runs = _dockerfile_instructions("RUN")
    assert any("apt-get install" in run and "libmagic1" in run for run in runs)


def test_image_sources_hold_everything_the_api_and_worker_import(tmp_path):
    """Copy exactly what the Dockerfile copies, then import the API and the worker's task."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    for line in (root / "docker" / "Dockerfile").read_text().splitlines():
        parts = line.split()
        if not parts or parts[0] != "COPY" or any(p.startswith("--") for p in parts):
            continue
        target = tmp_path / parts[-1]  # relative to WORKDIR, as in the image
        for source in parts[1:-1]:
            if source == "requirements.txt":
                continue
            path = root / source.rstrip("/")
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target / path.name)
    code = "import api.wsgi, tasks.run, tasks.heartbeat, stack.api_worker"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_image_serves_the_api_as_make_run_does():
    """The CMD's worker class is the one stack/service.py starts (gevent: no thread per
    connection), and compose sets the settings that worker class reads."""
    from stack.service import API_WORKER_CLASS

    (command,) = _dockerfile_instructions("CMD")
    assert f'"--worker-class", "{API_WORKER_CLASS}"' in command
    for name in ("API_CONNECTIONS", "API_READ_TIMEOUT_SECONDS"):
        assert re.search(rf"^  {name}: \$\{{{name}:-\d+\}}", _compose_text(), re.MULTILINE)


def _requirement_names(path: Path) -> set[str]:
    """Distribution names pinned in a requirements file (not those it includes)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[\[=<>~!; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_image_installs_the_runtime_requirements_only():
    """The Dockerfile installs requirements.txt; the test, client and lint tools are in
    requirements-dev.txt, which includes it (and which `make` installs)."""
    runs = " ".join(_dockerfile_instructions("RUN"))
    assert "-r requirements.txt" in runs and "requirements-dev" not in runs
    dev = ROOT / "requirements-dev.txt"
    assert "-r requirements.txt" in dev.read_text().splitlines()
    runtime = _requirement_names(ROOT / "requirements.txt")
    assert {"pytest", "fakeredis", "schemathesis", "ruff", "psutil", "requests"}.isdisjoint(runtime)


def test_image_sources_import_no_development_only_package():
    """Nothing the Dockerfile copies imports a package only requirements-dev.txt installs."""
    import ast
    from importlib.metadata import packages_distributions

    dev_only = _requirement_names(ROOT / "requirements-dev.txt") - _requirement_names(
        ROOT / "requirements.txt"
    )
    modules_of = packages_distributions()
    dev_modules = {
        module
        for module, dists in modules_of.items()
        if {d.lower().replace("_", "-") for d in dists} & dev_only
    }
    assert {"pytest", "requests", "psutil"} <= dev_modules
    copied = [
        source.rstrip("/")
        for args in _dockerfile_instructions("COPY")
        for source in args.split()[:-1]
        if source != "requirements.txt"
    ]
    files = [
        file
        for source in copied
        for file in ([ROOT / source] if source.endswith(".py") else (ROOT / source).rglob("*.py"))
    ]
    assert files
    found = []
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [
                f"{file.relative_to(ROOT)}: {name}"
                for name in names
                if name.split(".")[0] in dev_modules
            ]
    assert found == []

"""Every curl example of README.md and docs/*.md, run against a real stack, its answer
compared with the documented one: the docs cannot drift from what the service says.

How an example is written, so that this test can run it:

- Only ```bash blocks that contain `curl` are run; each block runs against one stack,
  its commands in order. A command may continue over lines (a line ending in `\\`, or
  a quote still open). The `# ` comment lines right after a command are its documented
  answer; a `#` on the command's own line starts a note, not an answer. Every curl
  command must document its answer.
- A line `[VAR=value ...] make run` in such a block: the block's stack is started with
  those variables (e.g. `API_KEYS`). Any other command that is not `curl` fails the test,
  so nothing in a tested block is silently left out.
- `http://127.0.0.1:3333` and `http://localhost:3333` become the stack's own address.
- The answer: with `curl -i`, first `HTTP/1.1 <status> <reason>` and the headers worth
  showing (`Name: value`; headers not shown are not compared), then the body. A body that
  starts with `{` or `[` is JSON (it may span several comment lines) and is compared as
  JSON: same keys, same list lengths, equal values, except that
  * the keys that differ at every run (`id`, `ts`, `created_at`, `started_at`,
    `finished_at`) are compared by type only (the documented value's JSON type);
  * in a string, and in an object's key, `...`, `…`, `<...>` and an `<angle-bracketed
    name>` each stand for any text (`"uid <uid> (no user to drop to)"`, `"worker1@<host>:<pid>"`).
  Any other body is text, compared line by line with the same placeholders, a line
  `...` standing for any number of lines.
- Ids: the `"id"` an answer documents (say `0b0f4f5e-...`) names the id the service
  really returned; later commands and answers of the same block get the real one in its
  place (`curl -s http://127.0.0.1:3333/jobs/0b0f4f5e-...`). Use a different documented
  id for each job of a block.
- `<!-- docs-test: skip (why) -->` on the line before a block skips it, and says why.

Commands are not run by curl but replayed with `requests`, from the arguments `shlex`
parses with the shell's quoting rules (no variables, pipes or redirections, which the
examples do not use): `make test` then needs no curl binary (the Makefile installs only
Python, libmagic and Redis), and a missing curl can neither skip nor fail this test. The
replay knows only the options the docs
use: `-s`, `-i`, `-X`, `-H`, `-d`/`--data`/`--data-raw`/`--data-binary` (sent as curl
sends them: POST unless `-X`, `application/x-www-form-urlencoded` unless a Content-Type
is given, the data byte for byte); any other option fails the test, so an example cannot
rely on curl behaviour the replay does not reproduce.

Two more checks keep the split docs whole: relative links between README.md and docs/
(with their #anchors) lead somewhere, and every repository path the docs name in
backticks (`tests/service/test_faults.py`, `docker/Dockerfile`) exists.
"""

import json
import re
import shlex
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from stacks import running_stack

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCUMENTED_HOSTS = ("http://127.0.0.1:3333", "http://localhost:3333")
VARYING_KEYS = frozenset({"id", "ts", "created_at", "started_at", "finished_at"})
STACK_DEFAULTS = {"WORKER_CONCURRENCY": "2", "API_PROCESSES": "1"}  # as running_stack's
PLACEHOLDER = re.compile(r"\.\.\.|…|<[A-Za-z.…][^<>\n]*>")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((.+)\)\s*-->")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass
class Step:
    command: str
    line: int
    answer: list[str] = field(default_factory=list)


@dataclass
class Block:
    path: Path
    line: int
    lines: list[str]
    skip: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def curl_blocks(path: Path) -> list[Block]:
    """The ```bash blocks of `path` that hold a curl command."""
    lines = path.read_text().splitlines()
    found, index = [], 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        indent, language, start = fence.group(1), fence.group(2), index
        body = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith("```"):
            body.append(lines[index].removeprefix(indent))
            index += 1
        index += 1
        if language == "bash" and any(re.search(r"(^|\s)curl\s", line) for line in body):
            before = next((line for line in reversed(lines[:start]) if line.strip()), "")
            skip = SKIP.search(before)
            found.append(Block(path, start + 1, body, skip.group(1) if skip else None))
    return found


BLOCKS = [block for path in DOCS for block in curl_blocks(path)]


def steps(block: Block) -> list[Step]:
    """The block's commands, each with the comment lines that follow it."""
    found: list[Step] = []
    lines, index = block.lines, 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        if line.lstrip().startswith("#"):
            assert found, f"{block.name}: an answer before any command: {line!r}"
            found[-1].answer.append(line.lstrip()[1:].removeprefix(" "))
            index += 1
            continue
        start, command = index, line
        while not _complete(command):
            index += 1
            assert index < len(lines), f"{block.name}: unfinished command {command!r}"
            command += "\n" + lines[index]
        found.append(Step(command, block.line + 1 + start))
        index += 1
    return found


def _complete(command: str) -> bool:
    if command.endswith("\\"):
        return False
    try:
        _split(command)
    except ValueError:  # "No closing quotation"
        return False
    return True


def _split(command: str) -> list[str]:
    return shlex.split(command.replace("\\\n", " "), comments=True)


@dataclass
class CurlRequest:
    method: str
    url: str
    headers: dict[str, str]
    data: bytes | None
    include: bool


DATA_OPTIONS = ("-d", "--data", "--data-raw", "--data-binary")


def parse_curl(argv: list[str], where: str) -> CurlRequest:
    """The request curl would send for `argv`; only the options the docs use."""
    method, url, headers, data, include = None, None, {}, None, False
    arguments = iter(argv[1:])
    for argument in arguments:
        if argument in ("-s", "--silent"):
            continue
        if argument in ("-i", "--include") or re.fullmatch(r"-[si]*i[si]*", argument):
            include = True
        elif argument in ("-X", "--request"):
            method = next(arguments)
        elif argument in ("-H", "--header"):
            name, colon, value = next(arguments).partition(":")
            assert colon, f"{where}: header without a colon: {name!r}"
            headers[name.strip()] = value.strip()
        elif argument in DATA_OPTIONS:
            value = next(arguments)
            if argument != "--data-raw":
                assert not value.startswith("@"), (
                    f"{where}: reading data from a file is not replayed"
                )
            data = value if data is None else f"{data}&{value}"
        elif argument.startswith("-"):
            pytest.fail(f"{where}: curl option {argument} is not replayed by this test")
        else:
            assert url is None, f"{where}: two URLs: {url} and {argument}"
            url = argument
    assert url is not None, f"{where}: curl without a URL"
    if data is not None and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    method = method or ("POST" if data is not None else "GET")
    return CurlRequest(method, url, headers, data.encode() if data is not None else None, include)


def make_run_settings(argv: list[str]) -> dict[str, str] | None:
    """The variables of a `VAR=value ... make run` line; None for any other command."""
    assignments = [word for word in argv if ENV_ASSIGNMENT.match(word)]
    if argv[len(assignments) :] != ["make", "run"] or argv[: len(assignments)] != assignments:
        return None
    return dict(word.split("=", 1) for word in assignments)


class Stacks:
    """Stacks started on demand, one per set of variables, all stopped at the end."""

    def __init__(self, exits: ExitStack) -> None:
        self.exits = exits
        self.started: dict[tuple[tuple[str, str], ...], Any] = {}  # stacks' clients

    def get(self, settings: dict[str, str]) -> Any:
        key = tuple(sorted((STACK_DEFAULTS | settings).items()))
        if key not in self.started:
            self.started[key] = self.exits.enter_context(running_stack(**dict(key)))
        return self.started[key]


@pytest.fixture(scope="module")
def stacks() -> Iterator[Stacks]:
    with ExitStack() as exits:
        yield Stacks(exits)


def test_the_docs_have_curl_examples() -> None:
    """Extraction finding nothing would let every example drift unnoticed."""
    assert (ROOT / "README.md") in {block.path for block in BLOCKS}
    assert len(BLOCKS) >= 5, [block.name for block in BLOCKS]


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_example(block: Block, stacks: Stacks) -> None:
    if block.skip:
        pytest.skip(block.skip)
    commands = steps(block)
    settings: dict[str, str] | None = None
    curls: list[Step] = []
    for step in commands:
        where = f"{block.path.relative_to(ROOT)}:{step.line}"
        argv = _split(step.command)
        if argv and argv[0] == "curl":
            assert step.answer, f"{where}: document the answer of {step.command!r}"
            curls.append(step)
            continue
        variables = make_run_settings(argv)
        assert variables is not None, (
            f"{where}: only curl and `VAR=x make run` are run here, not {step.command!r}"
        )
        assert settings is None, f"{where}: one `make run` per block"
        settings = variables
    stack = stacks.get(settings or {})
    ids: dict[str, str] = {}  # documented id -> the real one
    for step in curls:
        where = f"{block.path.relative_to(ROOT)}:{step.line}"
        argv = _split(_substitute(step.command, ids))
        answer = [_substitute(line, ids) for line in step.answer]
        request = parse_curl(argv, where)
        response = _send(request, stack.url, where)
        _compare(response, request.include, answer, ids, where)


def _substitute(text: str, ids: dict[str, str]) -> str:
    for documented in sorted(ids, key=len, reverse=True):
        text = text.replace(documented, ids[documented])
    return text


def _send(request: CurlRequest, base: str, where: str) -> requests.Response:
    url = request.url
    for host in DOCUMENTED_HOSTS:
        if url.startswith(host):
            url = base + url[len(host) :]
            break
    else:
        pytest.fail(f"{where}: examples call http://127.0.0.1:3333, not {request.url}")
    return requests.request(
        request.method,
        url,
        headers=request.headers,
        data=request.data,
        allow_redirects=False,  # as curl without -L
        timeout=90,
    )


def _compare(
    response: requests.Response,
    include: bool,
    answer: list[str],
    ids: dict[str, str],
    where: str,
) -> None:
    shown = f"{where}: the service answered {response.status_code}\n{_as_curl(response, include)}"
    lines = list(answer)
    headers: list[str] = []
    if include:
        assert lines and lines[0].startswith("HTTP/"), f"{where}: -i: document the status line"
        status = lines.pop(0)
        version = {10: "HTTP/1.0", 11: "HTTP/1.1"}.get(response.raw.version, "HTTP/?")
        actual = f"{version} {response.status_code} {response.reason}"
        assert _matches(status, actual), f"{shown}\nstatus: documented {status!r}, got {actual!r}"
        while lines and re.match(r"^[A-Za-z0-9-]+: ", lines[0]):
            headers.append(lines.pop(0))
    body = "\n".join(lines).strip()
    if body[:1] in ("{", "["):
        try:
            documented = json.loads(body)
        except ValueError as error:
            pytest.fail(f"{where}: the documented answer is not JSON ({error}):\n{body}")
        try:
            actual_body = response.json()
        except ValueError:
            pytest.fail(f"{shown}\nthe documented answer is JSON, this is not")
        _bind_ids(documented, actual_body, ids)
        problems = _json_differences(documented, actual_body, "$")
        assert not problems, shown + "\n" + "\n".join(problems)
    else:
        assert _text_matches(body.splitlines(), response.text.strip().splitlines()), (
            f"{shown}\ndocumented:\n{body}"
        )
    for header in headers:
        name, _, value = _substitute(header, ids).partition(": ")
        got = response.headers.get(name)
        assert got is not None and _matches(value, got), (
            f"{shown}\nheader {name}: documented {value!r}, got {got!r}"
        )


def _as_curl(response: requests.Response, include: bool) -> str:
    """The answer as curl would print it, for failure messages."""
    if not include:
        return response.text
    head = [f"HTTP/1.1 {response.status_code} {response.reason}"]
    head += [f"{name}: {value}" for name, value in response.headers.items()]
    return "\n".join(head) + "\n\n" + response.text


def _bind_ids(documented: Any, actual: Any, ids: dict[str, str]) -> None:
    if isinstance(documented, dict) and isinstance(actual, dict):
        doc_id, real_id = documented.get("id"), actual.get("id")
        if isinstance(doc_id, str) and isinstance(real_id, str) and doc_id not in ids:
            ids[doc_id] = real_id


def _pattern(documented: str) -> re.Pattern[str]:
    parts = PLACEHOLDER.split(documented)
    return re.compile(".*".join(re.escape(part) for part in parts), re.DOTALL)


def _matches(documented: str, actual: str) -> bool:
    return _pattern(documented).fullmatch(actual) is not None


def _text_matches(documented: list[str], actual: list[str]) -> bool:
    """Line by line; a documented line `...` stands for any number of lines."""
    if not documented:
        return not actual
    head, rest = documented[0], documented[1:]
    if head.strip() in ("...", "…"):
        return any(_text_matches(rest, actual[skip:]) for skip in range(len(actual) + 1))
    return bool(actual) and _matches(head, actual[0]) and _text_matches(rest, actual[1:])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def _json_differences(documented: Any, actual: Any, path: str) -> list[str]:
    if isinstance(documented, dict):
        if not isinstance(actual, dict):
            return [f"{path}: documented an object, got {actual!r}"]
        return _object_differences(documented, actual, path)
    if isinstance(documented, list):
        if not isinstance(actual, list) or len(actual) != len(documented):
            return [f"{path}: documented {json.dumps(documented)}, got {json.dumps(actual)}"]
        return [
            problem
            for index, (doc, got) in enumerate(zip(documented, actual, strict=True))
            for problem in _json_differences(doc, got, f"{path}[{index}]")
        ]
    if isinstance(documented, str) and isinstance(actual, str):
        ok = _matches(documented, actual)
    else:
        ok = _json_type(documented) == _json_type(actual) and documented == actual
    return [] if ok else [f"{path}: documented {json.dumps(documented)}, got {json.dumps(actual)}"]


def _object_differences(documented: dict, actual: dict, path: str) -> list[str]:
    problems, unmatched = [], dict(actual)
    for key, value in documented.items():
        if key in unmatched:
            real_key = key
        else:
            real_key = next((k for k in unmatched if _matches(key, k)), None)
        if real_key is None:
            problems.append(f"{path}: documented key {key!r} is missing")
            continue
        got = unmatched.pop(real_key)
        where = f"{path}.{real_key}"
        if key in VARYING_KEYS:
            if _json_type(value) != _json_type(got):
                problems.append(f"{where}: documented a {_json_type(value)}, got {got!r}")
        else:
            problems += _json_differences(value, got, where)
    problems += [
        f"{path}: undocumented key {key!r}: {json.dumps(unmatched[key])}" for key in unmatched
    ]
    return problems


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


@pytest.mark.parametrize("path", DOCS, ids=[str(path.relative_to(ROOT)) for path in DOCS])
def test_links_resolve(path: Path) -> None:
    """Links between README.md and docs/ (the split moved sections) lead somewhere."""
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(target)
            continue
        if anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)}: broken links {broken}"


REPO_PATH = re.compile(r"`([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*/[A-Za-z0-9_.-]*)`")


@pytest.mark.parametrize("path", DOCS, ids=[str(path.relative_to(ROOT)) for path in DOCS])
def test_named_paths_exist(path: Path) -> None:
    """A file or directory of this repository named in `backticks` (with a `/`, as
    `tests/service/test_faults.py`) exists: code moving cannot leave the docs behind."""
    missing = sorted(
        {name for name in REPO_PATH.findall(path.read_text()) if not (ROOT / name).exists()}
    )
    assert not missing, f"{path.relative_to(ROOT)} names what does not exist: {missing}"

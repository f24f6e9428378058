"""JSON as every part of the service can carry it: finite numbers and bounded nesting.

Python's parser recurses once per level of nesting, and so do pickle and the JSON
encoder, so a body nested deeply enough raises RecursionError wherever it goes next.
Here parsing turns that into `TooDeep`, and nesting is measured without recursion.
"""

import json
import math
from collections.abc import Callable
from typing import Any

NOT_FINITE = "numbers must be finite (NaN, Infinity and values beyond float range are not JSON)"


class Refused(ValueError):
    """JSON the service will not carry; the message names the rule."""


class TooDeep(Refused):
    """Nested so deeply that Python's parser gave up (about 1,000 levels)."""


def _not_finite(_: str) -> float:
    raise Refused(NOT_FINITE)  # the literals NaN, Infinity and -Infinity


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # e.g. 1e999
        raise Refused(NOT_FINITE)
    return value


def loads(text: str | bytes, object_hook: Callable[[dict], Any] | None = None) -> Any:
    """Parse `text`; `Refused` for numbers JSON cannot represent, `TooDeep` for nesting the
    parser cannot follow, ValueError for anything that is not JSON."""
    try:
        return json.loads(
            text, parse_constant=_not_finite, parse_float=_finite, object_hook=object_hook
        )
    except RecursionError:
        raise TooDeep("nests too deeply to be parsed") from None


def dumps(value: Any) -> str:
    """Compact JSON; ValueError for a NaN or an infinity, as JSON has neither."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def could_nest_deeper_than(text: str | bytes, limit: int) -> bool:
    """False if JSON `text` has too few opening brackets (strings' included) to nest more
    than `limit` levels anywhere: then `deeper_than` need not walk what it parses to."""
    if isinstance(text, str):
        return text.count("[") + text.count("{") > limit
    return text.count(b"[") + text.count(b"{") > limit


def deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests objects and arrays more than `limit` levels deep, without
    recursion: an object or array is one level, plus the deepest thing it holds."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:  # one level at a time: the containers `depth` levels down
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            below += [child for child in children if isinstance(child, dict | list)]
        level = below
    return False

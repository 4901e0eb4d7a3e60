"""Every route and method that the installed Label Studio serves, read from Django's URL resolver, with a path
that reaches each route (checked by resolving it back), for the tests that try every route as a worker.

    python -m labeling_gate.inventory      # JSON lines: {"route", "methods", "view", "path"}

A route is keyed as Django's ``ResolverMatch.route`` names it (the patterns joined, each inner ``^`` dropped),
which is what the middleware sees for a request. Methods: a viewset's actions, or the handlers a class-based
view defines (HEAD with GET, as Django's View serves it); a function view may answer any method.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.exceptions import Resolver404

from labeling_gate.bootstrap import setup_django

EVERY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# What stands for a route's variable parts in the sample path: an id that exists in no fresh server, so that a
# request the gate wrongly let through does no harm to a real object, and tests substitute real ids themselves.
SAMPLE_ID = "999999"
_CONVERTER_SAMPLES = {
    "int": SAMPLE_ID,
    "path": "x",
    "str": "x",
    "slug": "x",
    "uuid": "00000000-0000-0000-0000-000000000000",
}
_GROUP_SAMPLES = {"format": "json", "path": "x", "url": "x", "token": "t"}


@dataclass(frozen=True)
class Route:
    route: str
    methods: tuple[str, ...]
    view: str
    # A path that resolves to this route, or "" when an earlier route shadows every path tried.
    path: str

    def as_json(self) -> dict[str, Any]:
        return {"route": self.route, "methods": list(self.methods), "view": self.view, "path": self.path}


def _join(route1: str, route2: str) -> str:
    # django.urls.resolvers.URLResolver._join_route, which builds ResolverMatch.route.
    return route1 + (route2[1:] if route2.startswith("^") else route2)


def _walk(patterns: list[Any], prefix: str | None = None) -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        # The root's own patterns keep their "^"; Django joins only what lies below them.
        route = str(pattern.pattern) if prefix is None else _join(prefix, str(pattern.pattern))
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        else:
            yield route, pattern


def view_methods(callback: Any) -> tuple[str, ...]:
    actions = getattr(callback, "actions", None)
    if actions:
        names = {name.upper() for name in actions} | {"OPTIONS"}
        if "GET" in names:
            names.add("HEAD")
        return tuple(method for method in EVERY_METHOD if method in names)
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:
        return EVERY_METHOD
    names = {name.upper() for name in view_class.http_method_names if hasattr(view_class, name)}
    if "GET" in names:
        names.add("HEAD")
    return tuple(method for method in EVERY_METHOD if method in names)


def view_name(callback: Any) -> str:
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    target = view_class or callback
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', getattr(target, '__name__', '?'))}"


_NAMED_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>(?:[^()]|\([^()]*\))*)\)(?P<optional>\??)")
_CONVERTER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


def _group_sample(match: re.Match[str]) -> str:
    name, body = match["name"], match["body"]
    if name in _GROUP_SAMPLES:
        return _GROUP_SAMPLES[name]
    if "|" in body and not body.startswith("["):
        return body.split("|")[0]
    if "\\d" in body or "0-9" in body or name.endswith(("pk", "id", "index")):
        return SAMPLE_ID
    return "x"


def sample_paths(route: str) -> list[str]:
    """Candidate paths for a route, most literal first."""
    text = _NAMED_GROUP.sub(_group_sample, route)

    def converter(match: re.Match[str]) -> str:
        kind = match["converter"] or "str"
        if kind == "drf_format_suffix":
            return ".json"
        return _CONVERTER_SAMPLES.get(kind, "x")

    text = _CONVERTER.sub(converter, text)
    text = text.replace("^", "").replace("$", "").replace("\\.", ".")
    candidates = [text.replace("/?", "/"), text.replace("/?", "")]
    return ["/" + candidate.lstrip("/") for candidate in dict.fromkeys(candidates)]


def reaching_path(resolver: Any, route: str) -> str:
    for path in sample_paths(route):
        try:
            if resolver.resolve(path).route == route:
                return path
        except Resolver404:
            continue
    return ""


def inventory() -> list[Route]:
    resolver = get_resolver()
    found: dict[str, Route] = {}
    for route, pattern in _walk(resolver.url_patterns):
        methods = view_methods(pattern.callback)
        if route in found:
            # The same route string twice (DRF routers' roots): Django serves the first; keep every method.
            earlier = found[route]
            methods = tuple(m for m in EVERY_METHOD if m in set(earlier.methods) | set(methods))
            found[route] = Route(route, methods, earlier.view, earlier.path)
            continue
        found[route] = Route(route, methods, view_name(pattern.callback), reaching_path(resolver, route))
    return list(found.values())


def main() -> None:
    setup_django()
    for route in inventory():
        print(json.dumps(route.as_json()))


if __name__ == "__main__":
    main()

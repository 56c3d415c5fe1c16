"""Generate docs/api.md, the reference of every public name (``wsfast.__all__``), from the docstrings.

Usage: ``python docs/generate.py`` (or ``make docs``) writes docs/api.md; ``--check`` only compares and exits
1 when the committed file is out of date (tests/test_docs.py runs that). Every name in ``wsfast.__all__``
must be placed in one of SECTIONS, so a new public name cannot go undocumented.

The pure-Python twins are documented (``WSFAST_NO_EXTENSIONS=1`` is set before the import): both twins
share their docstrings' contract, and the output must not depend on whether the extensions were built.
The client options are documented in docs/options.md, generated from the option registry.
"""

from __future__ import annotations

import enum
import inspect
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

DOCS = Path(__file__).resolve().parent
OUTPUT = DOCS / "api.md"

SECTIONS: list[tuple[str, str, list[str]]] = [
    (
        "Clients",
        "The threaded client, the asyncio client and the blocking client `wsfast.sync` (both imported on "
        "first use).",
        ["WebSocketClient", "connect", "WebSocket", "OverflowPolicy", "FrameAction", "sync"],
    ),
    (
        "Frames and close codes",
        "What the clients deliver besides messages, and the RFC 6455 vocabulary.",
        ["Ping", "Pong", "Close", "Opcode", "CloseCode"],
    ),
    (
        "Connection health",
        "Keepalive, the idle watchdog, reconnect and statistics (the options are in docs/options.md).",
        ["ReconnectPolicy", "Disconnected", "Reconnected", "Stats"],
    ),
    (
        "Connection objects, options and events",
        "Connections built from a URL and described options (the reference's connection objects), the "
        "option registry, and socket events.",
        [
            "Connection",
            "PingResult",
            "connection_from_url",
            "register_scheme",
            "load_connections",
            "connections_from_env",
            "options",
            "events",
        ],
    ),
    ("Compression", "permessage-deflate (RFC 7692) and payload-level compression.", ["Deflate", "inflate"]),
    (
        "Exceptions",
        "Every exception wsfast raises on purpose derives from `WebSocketError`; protocol errors carry the "
        "close code the connection is failed with.",
        [
            "WebSocketError",
            "ProtocolError",
            "InvalidUTF8Error",
            "MessageTooBigError",
            "InvalidCompressedDataError",
            "MessageDecodeError",
            "HandshakeError",
            "InvalidURL",
            "InvalidHTTP",
            "InvalidStatus",
            "InvalidHeader",
            "TooManyRedirects",
            "OpeningError",
            "OpenTimeout",
            "TLSError",
            "ProxyError",
            "ConcurrencyError",
            "ConnectionClosed",
            "ConnectionClosedOK",
            "ConnectionClosedError",
            "KeepaliveTimeout",
            "IdleTimeout",
            "OptionError",
            "OptionTypeError",
        ],
    ),
    ("The codec and the build", "The sans-I/O frame codec and what is loaded.", ["codec", "implementation"]),
    ("Version", "", ["__version__"]),
]

# What a module-level string is, since its value depends on the build or the release.
VALUES = {
    "implementation": (
        '`"cython"` when the compiled twins are loaded, `"python"` when the pure-Python twins are (forced '
        "with `WSFAST_NO_EXTENSIONS=1`, and always on interpreters other than CPython)."
    ),
    "__version__": "The version of wsfast, a PEP 440 string.",
}

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`~?([^`]+)`")


def text(docstring: str | None) -> str:
    """A docstring as Markdown: reST roles and ``literals`` become code spans, and the Google-style
    sections (``Args:``, ``Raises:``, ``Returns:``...) become a bold title and a list of entries."""
    if not docstring:
        return ""
    result = _ROLE.sub(lambda match: f"`{match.group(1)}`", docstring)
    result = re.sub(r"``([^`]+)``", r"`\1`", result)
    lines: list[str] = []
    in_section = False
    for line in result.splitlines():
        if _SECTION.fullmatch(line):
            lines += ["", f"**{line[:-1]}**", ""]
            in_section = True
        elif in_section and line.startswith("        "):
            lines[-1] += " " + line.strip()  # the continuation of an entry
        elif in_section and line.startswith("    "):
            entry = _ENTRY.fullmatch(line.strip())
            lines.append(f"- `{entry.group(1)}`: {entry.group(2)}" if entry else f"- {line.strip()}")
        else:
            in_section = False
            lines.append(line)
    return "\n".join(lines)


_SECTION = re.compile(r"(Args|Arguments|Raises|Returns|Yields|Attributes):")
# "name: text", "name, other: text" (arguments) or "ValueError: text" (exceptions).
_ENTRY = re.compile(r"([\w.*]+(?:, [\w.*]+)*): (.*)")


def signature(obj: Any, *, method: bool = False) -> str:
    """The rendered signature; without ``self`` for a method, without ``-> None`` for a class."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    if method:
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    if inspect.isclass(obj):
        sig = sig.replace(return_annotation=inspect.Signature.empty)
    rendered = str(sig)
    if " at 0x" in rendered:
        raise ValueError(f"a default value of {obj!r} has no stable repr: {rendered}")
    return rendered


def code(name: str, rendered: str) -> list[str]:
    """A signature as a Python code block, one parameter per line when it is long."""
    one_line = f"{name}{rendered}"
    if len(one_line) <= 100:
        return ["```python", one_line, "```", ""]
    parameters = str(rendered)[1:].rsplit(")", 1)
    parts = split_parameters(parameters[0])
    return ["```python", f"{name}(", *(f"    {part}," for part in parts), f"){parameters[1]}", "```", ""]


def split_parameters(parameters: str) -> list[str]:
    """Split a rendered parameter list at the top-level commas (not those inside brackets or quotes)."""
    parts, depth, quote, current = [], 0, "", ""
    for char in parameters:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    return [*parts, current.strip()] if current.strip() else parts


def _private(cls: type) -> bool:
    """A class with no entry of its own: private by its name or by its module's (``wsfast._monitor``)."""
    return cls.__name__.startswith("_") or cls.__module__.rpartition(".")[2].startswith("_")


def own_members(cls: type) -> list[tuple[str, Any]]:
    """Public attributes defined by *cls* itself or by a private base class it shares with other public
    classes (``wsfast._frontend._Frontend``, ``wsfast._monitor.Observable``: their members are documented
    once but are each client's),
    in definition order, the class's own first; not those of public bases, which have their own entry."""
    members: dict[str, Any] = {}
    shared = (base for base in cls.__mro__[1:] if _private(base))
    for klass in (cls, *shared):
        for name, value in vars(klass).items():
            if not name.startswith("_") and name not in members:
                members[name] = value
    return list(members.items())


def document_class(name: str, cls: type) -> list[str]:
    lines: list[str] = []
    if issubclass(cls, enum.Enum):
        lines += [
            f"### `{name}`",
            "",
            f"*enum* ({cls.__mro__[1].__name__})",
            "",
            text(inspect.getdoc(cls)),
            "",
        ]
        lines += ["| member | value |", "| --- | --- |"]
        lines += [f"| `{member.name}` | `{member.value!r}` |" for member in cls]
        return [*lines, ""]
    if issubclass(cls, BaseException):
        bases = " → ".join(base.__name__ for base in cls.__mro__[1:] if base is not object)
        lines += [f"### `{name}`", "", f"*exception*: {bases}", "", text(inspect.getdoc(cls)), ""]
        close_code = vars(cls).get("close_code")
        if close_code is not None:
            lines += [f"Close code: `{int(close_code)}` ({getattr(close_code, 'name', close_code)}).", ""]
        return lines
    lines += [f"### `{name}`", "", *code(name, signature(cls)), text(inspect.getdoc(cls)), ""]
    for member_name, member in own_members(cls):
        if isinstance(member, property):
            lines += [f"#### `{name}.{member_name}` (property)", "", text(inspect.getdoc(member)), ""]
        elif inspect.isfunction(member):
            prefix = "async " if inspect.iscoroutinefunction(member) else ""
            rendered = signature(member, method=True)
            lines += [f"#### `{name}.{member_name}`", "", *code(f"{prefix}{member_name}", rendered)]
            lines += [text(inspect.getdoc(member)), ""]
        elif isinstance(member, (staticmethod, classmethod)):
            function = member.__func__
            rendered = signature(function, method=isinstance(member, classmethod))
            lines += [f"#### `{name}.{member_name}`", "", *code(member_name, rendered)]
            lines += [text(inspect.getdoc(function)), ""]
    return lines


def constant_summary(value: Any) -> str:
    """A module constant for the table: its repr when short and stable, else what it holds. (A long
    tuple of dataclasses repr'd in full would be unreadable, and frozensets in it print in an order
    that changes with string hashing from one run to the next.)"""
    rendered = repr(value)
    if len(rendered) <= 80 and "frozenset" not in rendered:
        return f"`{rendered}`"
    if isinstance(value, (tuple, list, frozenset, set)):
        kinds = sorted({type(item).__name__ for item in value})
        return f"{type(value).__name__} of {len(value)} `{'`, `'.join(kinds)}`"
    return f"`{type(value).__name__}`"


def document_module(name: str, module: ModuleType) -> list[str]:
    lines = [f"### `wsfast.{name}`", "", text(inspect.getdoc(module)), ""]
    lines += ["| name | summary |", "| --- | --- |"]
    for member_name in getattr(module, "__all__", []):
        member = getattr(module, member_name)
        summary = text(inspect.getdoc(member)).split("\n\n")[0].replace("\n", " ")
        if not callable(member):
            summary = constant_summary(member)
        summary = summary.replace("|", "\\|")
        lines.append(f"| `{name}.{member_name}` | {summary} |")
    return [*lines, ""]


def document(name: str, obj: Any) -> list[str]:
    if isinstance(obj, ModuleType):
        return document_module(name, obj)
    if inspect.isclass(obj):
        return document_class(name, obj)
    if callable(obj):
        return [f"### `{name}`", "", *code(name, signature(obj)), text(inspect.getdoc(obj)), ""]
    return [f"### `wsfast.{name}`", "", VALUES[name], ""]


def render() -> str:
    os.environ["WSFAST_NO_EXTENSIONS"] = "1"
    import wsfast

    placed = [name for _, _, names in SECTIONS for name in names]
    missing = sorted(set(wsfast.__all__) - set(placed))
    unknown = sorted(set(placed) - set(wsfast.__all__))
    duplicated = sorted({name for name in placed if placed.count(name) > 1})
    if missing or unknown or duplicated:
        raise SystemExit(
            f"docs/generate.py SECTIONS is out of step with wsfast.__all__: missing {missing}, "
            f"not public {unknown}, listed twice {duplicated}"
        )
    lines = [
        "# API reference",
        "",
        "<!-- Generated by docs/generate.py from the docstrings; do not edit. Run `make docs`. -->",
        "",
        "Every public name of `wsfast` (`wsfast.__all__`). The options of the clients are described in",
        "[options.md](options.md).",
        "",
    ]
    for title, _, names in SECTIONS:
        lines.append(f"- [{title}](#{re.sub(r'[^a-z0-9 -]', '', title.lower()).replace(' ', '-')}): ")
        lines[-1] += ", ".join(f"`{name}`" for name in names)
    lines.append("")
    for title, intro, names in SECTIONS:
        lines += [f"## {title}", ""]
        if intro:
            lines += [intro, ""]
        for name in names:
            lines += document(name, getattr(wsfast, name))
    # One blank line between blocks, none at the end of lines, one newline at the end of the file.
    output = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in lines))
    return output.strip() + "\n"


def main(argv: list[str]) -> int:
    rendered = render()
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != rendered:
            print("docs/api.md is out of date: run `make docs` (python docs/generate.py)", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(rendered, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

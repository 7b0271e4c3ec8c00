"""The `/` box of the Jobs screen: plain text and column filters, and where they are kept.

    consumer run:sim state:failed,timeout node:n0 alpha=0.5 !state:succeeded "name with space"

Terms are ANDed. `run:` / `node:` match a part of the run / node name; `state:` the start of a
state (`fail`, `out` or `oom`, `time`), `,` giving alternatives; `key=value` a parameter whose
value (strings as they are, others as JSON) equals value, or matches it as a glob with `*`/`?`;
`!` before a term negates it; anything else is looked for in job id, name, run, stage, state and
node, as before. Everything is lower-cased once, so a relayout of 10,000 rows stays cheap.

The filter text, the state filter and the efficiency columns are saved per target in
`$XDG_STATE_HOME/repx/tui-filters.json` (written whole under a temp name, then renamed).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repx_tui.backend.config import xdg_dir
from repx_tui.backend.inspection import param_text

COLUMNS = ("run", "state", "node")
STATE_ALIASES = {"oom": "out-of-memory", "timeout": "timeout", "done": "succeeded", "ok": "succeeded"}


@dataclass(frozen=True)
class Term:
    kind: str  # "text" | "run" | "state" | "node" | "param"
    value: str
    key: str = ""  # the parameter's name for kind "param"
    negate: bool = False


def parse_filter(text: str) -> list[Term]:
    """The terms of a filter text; quotes group words, an unbalanced quote counts as text."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return [term for word in words if (term := _term(word)) is not None]


def _term(word: str) -> Term | None:
    negate = word.startswith("!") and len(word) > 1
    word = word[1:] if negate else word
    head, colon, rest = word.partition(":")
    if colon and head.lower() in COLUMNS:
        return Term(head.lower(), rest.lower(), negate=negate) if rest else None
    key, equals, value = word.partition("=")
    if equals and key:
        return Term("param", value, key=key, negate=negate)
    return Term("text", word.lower(), negate=negate)


JobLike = Any  # ui.model.JobInfo: id, name, run, stage, state, params


def compile_terms(terms: list[Term], haystack: Callable[[JobLike], str]) -> Callable[[JobLike], bool] | None:
    """One predicate for all terms (None: no term, everything matches)."""
    if not terms:
        return None
    tests = [(_test(term, haystack), term.negate) for term in terms]

    def matches(info: JobLike) -> bool:
        return all(test(info) is not negate for test, negate in tests)

    return matches


def _test(term: Term, haystack: Callable[[JobLike], str]) -> Callable[[JobLike], bool]:
    value = term.value
    if term.kind == "run":
        return lambda info: value in info.run.lower()
    if term.kind == "node":
        return lambda info: value in (info.state.node or "").lower()
    if term.kind == "state":
        wanted = tuple(STATE_ALIASES.get(v, v) for v in value.split(",") if v)
        return lambda info: info.state.state._value_.startswith(wanted)
    if term.kind == "param":
        return _param_test(term.key, value)
    return lambda info: (
        value in haystack(info) or value in info.state.state._value_ or value in (info.state.node or "").lower()
    )


def _param_test(key: str, value: str) -> Callable[[JobLike], bool]:
    glob = any(c in value for c in "*?[")

    def test(info: JobLike) -> bool:
        params: Mapping[str, Any] = info.params
        if key not in params:
            return False
        shown = param_text(params[key])
        return fnmatch.fnmatchcase(shown, value) if glob else shown == value

    return test


# --- saved per target ------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedView:
    text: str = ""
    state: str = "all"  # a STATE_FILTERS name
    efficiency: bool = False


def store_path(env: Mapping[str, str] | None = None) -> Path:
    return xdg_dir("state", env) / "repx" / "tui-filters.json"


def load_view(target: str, path: Path | None = None) -> SavedView:
    """The view saved for a target; a missing or unreadable file is no saved view."""
    try:
        data = json.loads((path or store_path()).read_text())
        entry = data.get(target) if isinstance(data, dict) else None
    except (OSError, ValueError):
        return SavedView()
    if not isinstance(entry, dict):
        return SavedView()
    text, state = entry.get("text", ""), entry.get("state", "all")
    return SavedView(text if isinstance(text, str) else "", state if isinstance(state, str) else "all",
                     entry.get("efficiency") is True)  # fmt: skip


def save_view(target: str, view: SavedView, path: Path | None = None) -> None:
    """Keep this target's view beside the others' (never a half-written file)."""
    path = path or store_path()
    try:
        data = json.loads(path.read_text())
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    data[target] = {"text": view.text, "state": view.state, "efficiency": view.efficiency}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)

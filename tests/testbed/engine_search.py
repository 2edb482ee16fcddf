"""The subset of the engine's search language (`?search=`) that the fake engine speaks.

Grammar (keywords and field names case-insensitive)::

    query     := [condition {[AND | OR] condition}] [SORTBY field [ASC | DESC]] [PAGE n]
    condition := field ("=" | "!=") value
    value     := "text without double quotes" | run of non-blank characters

Conditions written next to each other without a keyword are joined by AND (the engine
accepts that too); AND binds tighter than OR. Text fields match like the engine's SQL
LIKE: `*` is the only wildcard, the whole value must match, and `case_sensitive=false`
makes the match case-insensitive. Enum fields (status) and id fields compare exactly,
ignoring case. A record whose field is empty matches neither `=` nor `!=` (SQL NULL).
Anything else (free text, `<`/`>` relations, parentheses) raises SearchError, which the
engine reports as 400 with the engine's syntax-error name as the detail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

FieldValue = str | Iterable[str] | None
T = TypeVar("T")


class SearchError(ValueError):
    """A query outside the grammar; `code` is the engine's SyntaxError name."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Field:
    """How a field compares: "text" (LIKE), "enum" (one of `choices`) or "id" (exact)."""

    kind: str = "text"
    choices: frozenset[str] = frozenset()


TEXT, ID = Field(), Field("id")


@dataclass(frozen=True)
class Condition:
    field: str
    negate: bool
    pattern: re.Pattern[str]

    def holds(self, value: FieldValue) -> bool:
        if value is None:
            return False
        values = [value] if isinstance(value, str) else list(value)
        hit = any(self.pattern.fullmatch(v) for v in values)
        return hit != self.negate


@dataclass(frozen=True)
class Search:
    """A parsed query: OR of AND-groups of conditions, plus optional ordering and paging."""

    groups: tuple[tuple[Condition, ...], ...]
    sort_field: str | None = None
    descending: bool = False
    page: int | None = None

    def matches(self, record: Mapping[str, FieldValue]) -> bool:
        if not self.groups:
            return True
        return any(all(c.holds(record.get(c.field)) for c in group) for group in self.groups)

    def apply(
        self,
        items: Iterable[T],
        record: Callable[[T], Mapping[str, FieldValue]],
        max_results: int | None = None,
    ) -> list[T]:
        """Filter, sort, page (page size = `max_results`) and cut to `max_results`."""
        found = [(item, rec) for item in items if self.matches(rec := record(item))]
        if self.sort_field is not None:
            key = self.sort_field
            present = sorted(
                (p for p in found if p[1].get(key) is not None), key=lambda p: _first(p[1][key])
            )
            if self.descending:
                present.reverse()
            found = present + [p for p in found if p[1].get(key) is None]
        chosen = [item for item, _ in found]
        if max_results is not None and max_results >= 0:
            start = (self.page - 1) * max_results if self.page else 0
            chosen = chosen[start : start + max_results]
        return chosen


def _first(value: FieldValue) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return next(iter(value), "")


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_RELATION = re.compile(r"!=|<=|>=|=|<|>")
_NUMBER = re.compile(r"[0-9]+")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def skip_blanks(self) -> bool:
        """Skip whitespace; True when something is left."""
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.pos < len(self.text)

    def take(self, pattern: re.Pattern[str]) -> str | None:
        self.skip_blanks()
        m = pattern.match(self.text, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return m.group()

    def value(self) -> str | None:
        if not self.skip_blanks():
            return None
        if self.text[self.pos] == '"':
            end = self.text.find('"', self.pos + 1)
            if end < 0:
                return None
            value, self.pos = self.text[self.pos + 1 : end], end + 1
            return value
        start = self.pos
        while self.pos < len(self.text) and not self.text[self.pos].isspace():
            self.pos += 1
        return self.text[start : self.pos]


def parse_search(text: str, fields: Mapping[str, Field], *, case_sensitive: bool = True) -> Search:
    """Parse `text` for an object whose searchable fields are `fields`."""
    scanner = _Scanner(text)
    groups: list[tuple[Condition, ...]] = []
    current: list[Condition] = []
    pending_keyword = False
    sort_field, descending, page = None, False, None

    while scanner.skip_blanks():
        word = scanner.take(_WORD)
        if word is None:
            raise SearchError("INVALID_CHARECTER")
        keyword = word.lower()
        if keyword in ("and", "or"):
            if not current or pending_keyword:
                raise SearchError("INVALID_POST_OR_AND_PHRASE")
            if keyword == "or":
                groups.append(tuple(current))
                current = []
            pending_keyword = True
        elif keyword in ("sortby", "page"):
            sort_field, descending, page = _parse_tail(scanner, keyword, fields)
            break
        else:
            current.append(_parse_condition(scanner, keyword, fields, case_sensitive))
            pending_keyword = False

    if pending_keyword:
        raise SearchError("INVALID_POST_OR_AND_PHRASE")
    if current:
        groups.append(tuple(current))
    return Search(tuple(groups), sort_field, descending, page)


def _parse_condition(
    scanner: _Scanner, field: str, fields: Mapping[str, Field], case_sensitive: bool
) -> Condition:
    spec = fields.get(field)
    if spec is None:
        raise SearchError("INVALID_CONDITION_FILED")
    relation = scanner.take(_RELATION)
    if relation not in ("=", "!="):
        raise SearchError("INVALID_CONDITION_RELATION")
    value = scanner.value()
    if not value:
        raise SearchError("INVALID_CONDITION_VALUE")
    if spec.kind == "text":
        regex = ".*".join(re.escape(part) for part in value.split("*"))
        flags = 0 if case_sensitive else re.IGNORECASE
    else:
        if spec.kind == "enum" and value.lower() not in spec.choices:
            raise SearchError("INVALID_CONDITION_VALUE")
        regex, flags = re.escape(value), re.IGNORECASE
    return Condition(field, relation == "!=", re.compile(regex, flags | re.DOTALL))


def _parse_tail(
    scanner: _Scanner, keyword: str, fields: Mapping[str, Field]
) -> tuple[str | None, bool, int | None]:
    sort_field, descending, page = None, False, None
    word: str | None = keyword
    if word == "sortby":
        sort_field = (scanner.take(_WORD) or "").lower()
        if sort_field not in fields:
            raise SearchError("INVALID_SORT_FIELD")
        word = _lower(scanner.take(_WORD))
        if word in ("asc", "desc"):
            descending = word == "desc"
            word = _lower(scanner.take(_WORD))
        if word not in (None, "page"):
            raise SearchError("INVALID_SORT_DIRECTION")
    if word == "page":
        number = scanner.take(_NUMBER)
        if number is None or int(number) < 1:
            raise SearchError("INVALID_PAGE_FEILD")
        page = int(number)
    if scanner.skip_blanks():
        raise SearchError("NOTHING_COMES_AFTER_PAGE_VALUE")
    return sort_field, descending, page


def _lower(word: str | None) -> str | None:
    return word.lower() if word is not None else None

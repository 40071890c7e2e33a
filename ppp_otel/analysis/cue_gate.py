"""Which of many regular expressions can match a text, from the literals they need.

Each pattern's parse tree tells a set of literal fragments at least one of
which occurs in any text the pattern matches ("should i", "shall we", ...).
One pass over the text finds every fragment present (an Aho-Corasick
automaton, :mod:`ahocorasick`; without that package, one regular expression
that finds the same in a pass four times slower), and only the patterns whose
fragments occur need searching. A pattern with no such set is always
searched: the gate never changes what matches, it only skips searches that
cannot succeed.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

try:  # the parse tree of a pattern: re._parser since Python 3.11
    from re import _constants as _sre, _parser as _sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _sre  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

try:
    import ahocorasick
except ImportError:  # pragma: no cover - exercised by forcing the fallback in the tests
    ahocorasick = None

__all__ = ["CueGate", "required_fragments"]

T = TypeVar("T")

# How many distinct selections of items are remembered (each a tuple of a few items).
_SELECTIONS_KEPT = 4096

# The most strings enumerated for one part of a pattern ("(?:do|would) you (?:want|like)"
# is four); beyond that the part is summed up by what it requires, not what it matches.
_EXACT_LIMIT = 256

_REPEATS = {_sre.MAX_REPEAT, _sre.MIN_REPEAT}
if hasattr(_sre, "POSSESSIVE_REPEAT"):  # Python 3.11
    _REPEATS.add(_sre.POSSESSIVE_REPEAT)


class _Part:
    """What is known of the strings a part of a pattern matches.

    ``exact``: every string it can match (a superset is fine), or None when
    there are too many or they are not known. ``required``: fragments at least
    one of which occurs in any text it matches in, or None when none is known.
    """

    __slots__ = ("exact", "required")

    def __init__(self, exact: frozenset[str] | None = None, required: frozenset[str] | None = None):
        self.exact = exact
        self.required = required


_UNKNOWN = _Part()
_EMPTY = _Part(frozenset({""}))


def required_fragments(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Literal fragments at least one of which is in any text ``pattern`` matches; None if unknown.

    Only what the parse tree proves: a case-insensitive part, a back reference
    or a part that may match nothing tells no fragment.
    """
    if not isinstance(pattern.pattern, str) or pattern.flags & re.IGNORECASE:
        return None
    try:
        tree = _sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:  # noqa: BLE001 - a private API: the gate then just searches
        return None
    required = _sequence(list(tree)).required
    return None if required is None else _minimal(required)


def _condition(matched: frozenset[str]) -> frozenset[str] | None:
    """What strings a part matches, as fragments one of which is in the text: none if it may match nothing."""
    return None if "" in matched else matched


def _minimal(fragments: frozenset[str]) -> frozenset[str]:
    """The same condition with fewer fragments: one that contains another is redundant."""
    kept: list[str] = []
    for fragment in sorted(fragments, key=len):
        if not any(shorter in fragment for shorter in kept):
            kept.append(fragment)
    return frozenset(kept)


def _better(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """Of two sufficient conditions, the one that rules out more texts, by a rule of thumb:
    the longer its shortest fragment, then the longer its fragments on average (the
    places " page", " report", ... rather than "what" or "which": on the questions of
    agents' responses, the mean rules out more than the count of fragments does)."""
    if a is None or b is None:
        return a if b is None else b
    key_a = (min(map(len, a)), sum(map(len, a)) / len(a))
    key_b = (min(map(len, b)), sum(map(len, b)) / len(b))
    return a if key_a >= key_b else b


def _sequence(items: list) -> _Part:
    best: frozenset[str] | None = None
    window: list[frozenset[str]] = []  # what the items since the last unknown one match
    run: frozenset[str] = frozenset({""})
    whole = True  # whether run is still everything the items so far match
    for part in _parts(items):
        best = _better(best, part.required)
        if part.exact is None:
            best = _better(best, _condition(run))
            window, run, whole = [], frozenset({""}), False
            continue
        joined = _joined([run, part.exact])
        if joined is None:
            # Too many strings: the run so far is one condition, and the items nearest
            # this one start the next ("so, you'd like" -> "you'd like").
            best = _better(best, _condition(run))
            whole = False
            while joined is None:
                window = window[1:]
                joined = _joined(window + [part.exact])
        window.append(part.exact)
        run = joined
    best = _better(best, _condition(run))
    return _Part(run if whole else None, best)


def _parts(items: list):
    """What each item matches, a run of literals ("objection") taken as one item."""
    literal: list[str] = []
    for op, av in items:
        if op == _sre.LITERAL:
            literal.append(chr(av))
            continue
        if literal:
            yield _Part(frozenset({"".join(literal)}))
            literal = []
        yield _item(op, av)
    if literal:
        yield _Part(frozenset({"".join(literal)}))


def _joined(parts: list[frozenset[str]]) -> frozenset[str] | None:
    """Every concatenation of one string of each part, or None if they are too many."""
    joined = frozenset({""})
    for part in parts:
        joined = frozenset(a + b for a in joined for b in part)
        if len(joined) > _EXACT_LIMIT:
            return None
    return joined


def _branch(branches: list) -> _Part:
    parts = [_sequence(list(branch)) for branch in branches]
    exact = None
    if all(part.exact is not None for part in parts):
        exact = frozenset().union(*(part.exact for part in parts))
        if len(exact) > _EXACT_LIMIT:
            exact = None
    required = None
    if all(part.required is not None for part in parts):
        required = frozenset().union(*(part.required for part in parts))
    return _Part(exact, required)


def _item(op, av) -> _Part:
    if op == _sre.LITERAL:
        return _Part(frozenset({chr(av)}))
    if op == _sre.IN:
        return _Part(_characters(av))
    if op == _sre.AT:
        return _EMPTY
    if op == _sre.BRANCH:
        return _branch(av[1])
    if op == _sre.SUBPATTERN:
        _group, add_flags, del_flags, items = av
        if (add_flags | del_flags) & re.IGNORECASE:
            return _UNKNOWN
        return _sequence(list(items))
    if op in _REPEATS:
        low, high, items = av
        part = _sequence(list(items))
        if low == high == 1:
            return part
        if low == 0:
            if high == 1 and part.exact is not None:
                return _Part(part.exact | {""})
            return _UNKNOWN
        return _Part(None, part.required)
    if op == getattr(_sre, "ATOMIC_GROUP", None):
        return _sequence(list(av))
    if op == _sre.ASSERT:
        # A lookaround matches no characters of its own, but what it looks at is in the text.
        return _Part(frozenset({""}), _sequence(list(av[1])).required)
    if op == _sre.ASSERT_NOT:
        return _EMPTY
    return _UNKNOWN  # ANY, NOT_LITERAL, GROUPREF, GROUPREF_EXISTS, ...


def _characters(items) -> frozenset[str] | None:
    """The characters a class like ``[sz]`` or ``[,;:]`` matches, when it names them all."""
    chars: set[str] = set()
    for op, av in items:
        if op == _sre.LITERAL:
            chars.add(chr(av))
        elif op == _sre.RANGE and av[1] - av[0] < _EXACT_LIMIT:
            chars.update(map(chr, range(av[0], av[1] + 1)))
        else:  # NEGATE, CATEGORY (\w, \s), a wide range
            return None
    return frozenset(chars) if len(chars) <= _EXACT_LIMIT else None


class CueGate(Generic[T]):
    """For a text, the items (cues) whose patterns may match it: the others' cannot.

    ``pattern`` gives an item's compiled pattern. An item whose pattern tells no
    fragment is always among those returned.
    """

    def __init__(self, items: Sequence[T], pattern: Callable[[T], re.Pattern[str]], *, automaton: bool = True):
        self.items = tuple(items)
        self.fragments: tuple[frozenset[str] | None, ...] = tuple(required_fragments(pattern(i)) for i in self.items)
        self._always = 0
        masks: dict[str, int] = {}
        for index, fragments in enumerate(self.fragments):
            if fragments is None:
                self._always |= 1 << index
            else:
                for fragment in fragments:
                    masks[fragment] = masks.get(fragment, 0) | 1 << index
        # Few combinations of items occur (a question matches a handful of fragments).
        self._selections: dict[int, tuple[T, ...]] = {}
        self._automaton = self._regex = None
        if not masks:
            pass
        elif automaton and ahocorasick is not None:
            self._automaton = ahocorasick.Automaton()
            for fragment, mask in masks.items():
                self._automaton.add_word(fragment, mask)
            self._automaton.make_automaton()
        else:
            # The same in one regular expression, a pass four times slower: at every position a
            # trie of the fragments gives the longest one starting there; the others that
            # start there are its prefixes, whose masks are folded into its own.
            self._regex = re.compile("(?=(" + _trie_pattern(masks) + "))")
            self._prefix_masks = {
                fragment: functools.reduce(operator.or_, (masks[fragment[:n]] for n in range(1, len(fragment) + 1)
                                                          if fragment[:n] in masks))
                for fragment in masks
            }

    def possible(self, text: str) -> tuple[T, ...]:
        """The items whose patterns may match ``text``, in their order."""
        mask = self._always
        if self._automaton is not None:
            # Folded in C: a question has dozens of fragment occurrences.
            mask = functools.reduce(operator.or_, map(_found, self._automaton.iter(text)), mask)
        elif self._regex is not None:
            prefix_masks = self._prefix_masks
            for match in self._regex.finditer(text):
                mask |= prefix_masks[match.group(1)]
        selection = self._selections.get(mask)
        if selection is None:
            selection = tuple(item for index, item in enumerate(self.items) if mask >> index & 1)
            if len(self._selections) < _SELECTIONS_KEPT:
                self._selections[mask] = selection
        return selection


# The mask of an (end, mask) pair the automaton yields.
_found = operator.itemgetter(1)


def _trie_pattern(words) -> str:
    """A pattern matching the longest of ``words`` that starts where it is tried."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def pattern(node: dict) -> str:
        children = [re.escape(char) + pattern(child) for char, child in sorted(node.items()) if char]
        if not children:
            return ""
        body = children[0] if len(children) == 1 else "(?:" + "|".join(children) + ")"
        # Greedy: a longer word is tried before the word ending here.
        return "(?:" + body + ")?" if "" in node else body

    return pattern(trie)

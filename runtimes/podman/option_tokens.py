"""Split a CLI-style option list into option names and values, the way podman's flag parser reads it.

Spellings: ``--opt value`` and ``--opt=value``; ``-o value``, ``-ovalue`` and
``-o=value``; short flags grouped as ``-it``. A flag (an option that takes no
value) takes one only through ``=`` (``--rm=false``, ``-t=false``): in
``--rm false`` the ``false`` is a separate argument, as in pflag.

This module knows only which names exist and which take a value; what an
option means is the caller's business, and so is the wording of each error:
the tokenizer raises a typed ``OptionListError`` carrying the offending word
and the caller turns it into its own message. Tokens are produced lazily, so a
caller that applies each one as it comes reports the first bad item of the
list, whether the problem is its spelling or its value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "MissingValue",
    "NotAnOption",
    "OptionListError",
    "OptionTable",
    "OptionToken",
    "UnknownOption",
    "split_options",
]


class OptionListError(ValueError):
    """An item of an option list that cannot be read; ``word`` is what the user wrote."""

    def __init__(self, word: str) -> None:
        super().__init__(word)
        self.word = word


class NotAnOption(OptionListError):
    """An item where an option belongs that is not one: ``nginx``, ``-`` or ``--``."""


class UnknownOption(OptionListError):
    """An option name the table does not hold; ``word`` is the name without any ``=value``."""


class MissingValue(OptionListError):
    """An option that takes a value was the last item; ``word`` is its name as written."""


@dataclass(frozen=True)
class OptionTable:
    """The options a list may hold.

    ``takes_value`` is keyed by long name (``--publish``: True, ``--rm``: False);
    ``short`` maps a short name to its long one (``-p``: ``--publish``).
    """

    takes_value: Mapping[str, bool]
    short: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class OptionToken:
    """One option of the list."""

    name: str  # the long name, a key of OptionTable.takes_value
    spelling: str  # the name as written ("-p" for "--publish"), for messages
    value: str | None  # None only for a flag given without "="


def split_options(items: Sequence[str], table: OptionTable) -> Iterator[OptionToken]:
    """Yield the options of ``items`` in order; raise an OptionListError at the first unreadable item."""
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        if item in ("-", "--") or not item.startswith("-"):
            raise NotAnOption(item)
        if item.startswith("--"):
            name, sep, inline = item.partition("=")
            takes_value = table.takes_value.get(name)
            if takes_value is None:
                raise UnknownOption(name)
            if sep:
                yield OptionToken(name, name, inline)
            elif not takes_value:
                yield OptionToken(name, name, None)
            elif index < len(items):
                yield OptionToken(name, name, items[index])
                index += 1
            else:
                raise MissingValue(name)
            continue
        letters = item[1:]
        for position, letter in enumerate(letters):
            spelling = f"-{letter}"
            long_name = table.short.get(spelling)
            takes_value = None if long_name is None else table.takes_value.get(long_name)
            if long_name is None or takes_value is None:
                raise UnknownOption(spelling)
            rest = letters[position + 1 :]
            if takes_value:  # the value is the rest of the group, or else the next item
                if rest:
                    yield OptionToken(long_name, spelling, rest.removeprefix("="))
                elif index < len(items):
                    yield OptionToken(long_name, spelling, items[index])
                    index += 1
                else:
                    raise MissingValue(spelling)
                break
            if rest.startswith("="):
                yield OptionToken(long_name, spelling, rest[1:])
                break
            yield OptionToken(long_name, spelling, None)

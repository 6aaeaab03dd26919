"""One tokenizer for the CLI-style option lists of both Podman runtimes."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from ankaios_agent.runtimes.podman import option_tokens
from ankaios_agent.runtimes.podman.option_tokens import (
    MissingValue,
    NotAnOption,
    OptionListError,
    OptionTable,
    OptionToken,
    UnknownOption,
    split_options,
)

TABLE = OptionTable(
    takes_value=MappingProxyType(
        {"--publish": True, "--env": True, "--tty": False, "--interactive": False, "--rm": False}
    ),
    short=MappingProxyType({"-p": "--publish", "-e": "--env", "-t": "--tty", "-i": "--interactive"}),
)


def tokens(*items: str) -> list[tuple[str, str, str | None]]:
    return [(token.name, token.spelling, token.value) for token in split_options(items, TABLE)]


# Each row: the items, the (long name, spelling, value) triples they read as.
SPELLINGS: list[tuple[tuple[str, ...], list[tuple[str, str, str | None]]]] = [
    ((), []),
    (("--publish", "80"), [("--publish", "--publish", "80")]),
    (("--publish=80",), [("--publish", "--publish", "80")]),
    (("--env=A=1",), [("--env", "--env", "A=1")]),
    (("--env=",), [("--env", "--env", "")]),
    (("--env", "-t"), [("--env", "--env", "-t")]),
    (("-p", "80"), [("--publish", "-p", "80")]),
    (("-p80",), [("--publish", "-p", "80")]),
    (("-p=80",), [("--publish", "-p", "80")]),
    (("-p==80",), [("--publish", "-p", "=80")]),
    (("--rm",), [("--rm", "--rm", None)]),
    (("--rm=false",), [("--rm", "--rm", "false")]),
    (("-t",), [("--tty", "-t", None)]),
    (("-t=false",), [("--tty", "-t", "false")]),
    (("-it",), [("--interactive", "-i", None), ("--tty", "-t", None)]),
    (("-it=false",), [("--interactive", "-i", None), ("--tty", "-t", "false")]),
    (("-tp", "80"), [("--tty", "-t", None), ("--publish", "-p", "80")]),
    (("-tp80",), [("--tty", "-t", None), ("--publish", "-p", "80")]),
    (("-pt",), [("--publish", "-p", "t")]),
    (
        ("--rm", "-e", "A=1", "--publish=8080:80"),
        [("--rm", "--rm", None), ("--env", "-e", "A=1"), ("--publish", "--publish", "8080:80")],
    ),
]


@pytest.mark.parametrize(("items", "expected"), SPELLINGS)
def test_every_cli_spelling_reads_as_long_name_and_value(
    items: tuple[str, ...], expected: list[tuple[str, str, str | None]]
) -> None:
    """Long, short and grouped spellings all read as the long name, keeping the spelling for messages."""
    assert tokens(*items) == expected


# Each row: the items, the error type, the word it names.
ERRORS: list[tuple[tuple[str, ...], type[OptionListError], str]] = [
    (("nginx",), NotAnOption, "nginx"),
    (("-",), NotAnOption, "-"),
    (("--",), NotAnOption, "--"),
    (("--rm", "false"), NotAnOption, "false"),
    (("--gpus", "all"), UnknownOption, "--gpus"),
    (("--gpus=all",), UnknownOption, "--gpus"),
    (("-x",), UnknownOption, "-x"),
    (("-x=1",), UnknownOption, "-x"),
    (("-iz",), UnknownOption, "-z"),
    (("--publish",), MissingValue, "--publish"),
    (("-p",), MissingValue, "-p"),
    (("-tp",), MissingValue, "-p"),
    (("--rm", "--env"), MissingValue, "--env"),
]


@pytest.mark.parametrize(("items", "error", "word"), ERRORS)
def test_unreadable_item_raises_a_typed_error_naming_it(
    items: tuple[str, ...], error: type[OptionListError], word: str
) -> None:
    """The error's type says what is wrong and its word is what the user wrote."""
    with pytest.raises(error) as info:
        tokens(*items)
    assert info.value.word == word


def test_tokens_come_one_at_a_time_so_the_first_bad_item_is_reported_first() -> None:
    """A caller applying each token sees the good ones before the tokenizer fails on a later item."""
    stream = split_options(["-e", "A=1", "--gpus"], TABLE)
    assert next(stream) == OptionToken("--env", "-e", "A=1")
    with pytest.raises(UnknownOption):
        next(stream)


def test_short_name_of_an_option_missing_from_the_table_is_unknown() -> None:
    table = OptionTable(takes_value=MappingProxyType({}), short=MappingProxyType({"-q": "--quiet"}))
    with pytest.raises(UnknownOption) as info:
        list(split_options(["-q"], table))
    assert info.value.word == "-q"


def test_public_names_are_pinned() -> None:
    assert option_tokens.__all__ == [
        "MissingValue",
        "NotAnOption",
        "OptionListError",
        "OptionTable",
        "OptionToken",
        "UnknownOption",
        "split_options",
    ]

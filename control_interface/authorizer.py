"""Control-interface authorizer of the v1.0.1 dialect: which workload requests may reach the server.

Pure logic over small frozen input types; the relay converts the wire request
into one of the request types below, asks :meth:`Authorizer.decide`, logs the
returned :class:`Decision` with the workload's name and, on a denial, answers
the workload locally with :data:`ACCESS_DENIED` under the id it sent.

How rules are filed: a state rule goes into the read lists (``READ``), the
write lists (``WRITE``) or both (``READ_WRITE``); ``NOTHING`` goes nowhere; a
log rule goes into the log lists; allow and deny are kept apart.

How a request is decided:

* complete state (also when it subscribes to events): every field mask must be
  granted by the read lists; update state: every update mask by the write lists.
  An empty mask list is checked as the single mask ``""`` (the whole state).
* A mask is granted when some allow pattern matches it and no deny pattern does.
  Masks and patterns are split at every ``.`` (``""`` has no segments, ``a..b``
  has an empty middle segment); a pattern segment ``*`` matches any segment.
  An allow pattern grants its own subtree: the mask must be the pattern or lie
  below it. A deny pattern also forbids every ancestor of its subtree, because
  asking for the parent would hand out the denied part. An empty pattern never
  matches.
* logs: every requested workload name must match an allow log rule and none a
  deny log rule; asking for no names at all is allowed.
* logs cancel and events cancel are always allowed: the server keys campaigns and
  subscriptions by the prefixed request id, so a workload can only stop its own.
* a request without content is always denied.

Compatible mode (the default) reproduces three quirks of the reference agent,
so that a workload sees the same decisions there and here:

1. an allow pattern whose *first* segment is ``*`` grants every ancestor too
   (allow ``*.workloads.x`` grants ``desiredState``), not only the pattern ``*``;
2. a ``*`` segment in the *request* is literal text: it does not match a deny
   pattern's named segment, although the server then expands it, so the denied
   part is handed out anyway (deny ``desiredState.workloads.secret`` does not
   stop ``desiredState.workloads.*``);
3. a log pattern with a ``*`` that does not match ends the search, so later
   patterns of the same rule are never tried.

``strict=True`` closes them: only the pattern ``*`` itself reaches upwards, a
request ``*`` matches every deny segment, and the log search goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ankaios_agent.agent.model import AccessRule, AccessRules, LogRule, Operation, StateRule

ACCESS_DENIED = "Access denied"
"""The error message of the local answer to a denied request (the only text the workload sees)."""

_WILDCARD = "*"


@dataclass(frozen=True)
class CompleteStateRequest:
    field_masks: tuple[str, ...] = ()
    subscribe_for_events: bool = False


@dataclass(frozen=True)
class UpdateStateRequest:
    update_masks: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogsRequest:
    """Only the workload names count; agent name and id of the requested instances are ignored."""

    workload_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogsCancelRequest:
    pass


@dataclass(frozen=True)
class EventsCancelRequest:
    pass


@dataclass(frozen=True)
class EmptyRequest:
    """A request whose content is not set."""


AuthorizedRequest = (
    CompleteStateRequest
    | UpdateStateRequest
    | LogsRequest
    | LogsCancelRequest
    | EventsCancelRequest
    | EmptyRequest
)


@dataclass(frozen=True)
class Decision:
    """The verdict on one request and why, worded for the agent's debug log."""

    allowed: bool
    reason: str

    def describe(self, workload: str) -> str:
        verdict = "allowed" if self.allowed else "denied"
        return f"Control-interface request of workload '{workload}' {verdict}: {self.reason}"


@dataclass(frozen=True)
class _PathRules:
    allow: tuple[tuple[str, ...], ...]
    deny: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Authorizer:
    """The six rule lists of one workload. Equal authorizers decide every request alike."""

    read: _PathRules
    write: _PathRules
    log_allow: tuple[tuple[str, ...], ...]
    log_deny: tuple[tuple[str, ...], ...]
    strict: bool = False

    @classmethod
    def from_rules(cls, rules: AccessRules, *, strict: bool = False) -> Authorizer:
        return cls(
            read=_PathRules(_masks(rules.allow, Operation.READ), _masks(rules.deny, Operation.READ)),
            write=_PathRules(_masks(rules.allow, Operation.WRITE), _masks(rules.deny, Operation.WRITE)),
            log_allow=tuple(r.workload_names for r in rules.allow if isinstance(r, LogRule)),
            log_deny=tuple(r.workload_names for r in rules.deny if isinstance(r, LogRule)),
            strict=strict,
        )

    def decide(self, request: AuthorizedRequest) -> Decision:
        match request:
            case CompleteStateRequest(field_masks=masks):
                return self._decide_masks(masks, self.read, "read", "field mask")
            case UpdateStateRequest(update_masks=masks):
                return self._decide_masks(masks, self.write, "write", "update mask")
            case LogsRequest(workload_names=names):
                return self._decide_logs(names)
            case LogsCancelRequest():
                return Decision(True, "a logs cancel request is always allowed")
            case EventsCancelRequest():
                return Decision(True, "an events cancel request is always allowed")
            case EmptyRequest():
                return Decision(False, "the request has no content")

    def _decide_masks(self, masks: Sequence[str], rules: _PathRules, kind: str, noun: str) -> Decision:
        for mask in masks or ("",):
            segments = _segments(mask)
            if not any(_allow_matches(_segments(p), segments, self.strict) for p in _flat(rules.allow)):
                return Decision(False, f"{noun} '{mask}' is not granted by any {kind} allow rule")
            denied_by = next(
                (p for p in _flat(rules.deny) if _deny_matches(_segments(p), segments, self.strict)), None
            )
            if denied_by is not None:
                return Decision(
                    False, f"{noun} '{mask}' is forbidden by the {kind} deny pattern '{denied_by}'"
                )
        shown = ", ".join(f"'{m}'" for m in masks) if masks else "'' (the whole state)"
        return Decision(True, f"every {noun} ({shown}) is granted by the {kind} rules")

    def _decide_logs(self, names: Sequence[str]) -> Decision:
        for name in names:
            if not any(_log_rule_matches(rule, name, self.strict) for rule in self.log_allow):
                return Decision(False, f"logs of workload '{name}' are not granted by any log allow rule")
            if any(_log_rule_matches(rule, name, self.strict) for rule in self.log_deny):
                return Decision(False, f"logs of workload '{name}' are forbidden by a log deny rule")
        if not names:
            return Decision(True, "a logs request for no workload is always allowed")
        shown = ", ".join(f"'{n}'" for n in names)
        return Decision(True, f"logs of every requested workload ({shown}) are granted by the log rules")


def _masks(rules: Iterable[AccessRule], operation: Operation) -> tuple[tuple[str, ...], ...]:
    wanted = {operation, Operation.READ_WRITE}
    return tuple(r.filter_masks for r in rules if isinstance(r, StateRule) and r.operation in wanted)


def _flat(rules: Iterable[tuple[str, ...]]) -> Iterable[str]:
    for patterns in rules:
        yield from patterns


def _segments(path: str) -> list[str]:
    return path.split(".") if path else []


def _allow_matches(pattern: Sequence[str], request: Sequence[str], strict: bool) -> bool:
    if not pattern:
        return False
    reaches_up = pattern == [_WILDCARD] if strict else pattern[0] == _WILDCARD
    if len(pattern) > len(request) and not reaches_up:
        return False
    return all(p in (_WILDCARD, q) for p, q in zip(pattern, request, strict=False))


def _deny_matches(pattern: Sequence[str], request: Sequence[str], strict: bool) -> bool:
    if not pattern:
        return False
    return all(
        p in (_WILDCARD, q) or (strict and q == _WILDCARD) for p, q in zip(pattern, request, strict=False)
    )


def _log_rule_matches(patterns: Sequence[str], name: str, strict: bool) -> bool:
    for pattern in patterns:
        if pattern in (name, _WILDCARD):
            return True
        prefix, star, suffix = pattern.partition(_WILDCARD)
        if star:
            matched = (
                name.startswith(prefix) and name.endswith(suffix) and len(prefix) + len(suffix) <= len(name)
            )
            if matched or not strict:
                return matched
    return False


__all__ = [
    "ACCESS_DENIED",
    "AccessRule",
    "AccessRules",
    "AuthorizedRequest",
    "Authorizer",
    "CompleteStateRequest",
    "Decision",
    "EmptyRequest",
    "EventsCancelRequest",
    "LogRule",
    "LogsCancelRequest",
    "LogsRequest",
    "Operation",
    "StateRule",
    "UpdateStateRequest",
]

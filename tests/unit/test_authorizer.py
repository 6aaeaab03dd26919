"""Control-interface authorizer: every documented decision of the reference, its quirks and strict mode."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ankaios_agent.control_interface import authorizer as authorizer_module
from ankaios_agent.control_interface.authorizer import (
    ACCESS_DENIED,
    AccessRule,
    AccessRules,
    AuthorizedRequest,
    Authorizer,
    CompleteStateRequest,
    EmptyRequest,
    EventsCancelRequest,
    LogRule,
    LogsCancelRequest,
    LogsRequest,
    Operation,
    StateRule,
    UpdateStateRequest,
)

R, W, RW, NOTHING = Operation.READ, Operation.WRITE, Operation.READ_WRITE, Operation.NOTHING
P = "matching.path"


def sr(op: Operation, *masks: str) -> StateRule:
    return StateRule(op, masks)


def lr(*names: str) -> LogRule:
    return LogRule(names)


def csr(*masks: str) -> CompleteStateRequest:
    return CompleteStateRequest(masks)


def usr(*masks: str) -> UpdateStateRequest:
    return UpdateStateRequest(masks)


def logs(*names: str) -> LogsRequest:
    return LogsRequest(names)


def allowed(
    request: AuthorizedRequest,
    allow: tuple[AccessRule, ...] = (),
    deny: tuple[AccessRule, ...] = (),
    *,
    strict: bool = False,
) -> bool:
    return Authorizer.from_rules(AccessRules(allow, deny), strict=strict).decide(request).allowed


W123 = (lr("w1", "w2", "w3"),)
D345 = (lr("w3", "w4", "w5"),)

DECISIONS = [
    pytest.param(csr(), (), (), False, id="empty_field_mask_without_rules_is_denied"),
    pytest.param(usr(), (), (), False, id="empty_update_mask_without_rules_is_denied"),
    pytest.param(csr(), (sr(RW, "*"),), (), True, id="empty_field_mask_is_granted_by_wildcard_read"),
    pytest.param(usr(), (sr(RW, "*"),), (), True, id="empty_update_mask_is_granted_by_wildcard_write"),
    pytest.param(csr(), (sr(RW, "*"),), (sr(RW, "*"),), False, id="wildcard_deny_beats_wildcard_allow_read"),
    pytest.param(usr(), (sr(RW, "*"),), (sr(RW, "*"),), False, id="wildcard_deny_beats_wildcard_allow_write"),
    pytest.param(csr(P), (), (), False, id="read_without_rules_is_denied"),
    pytest.param(csr(P), (sr(R, P),), (), True, id="read_rule_grants_read"),
    pytest.param(csr(P), (sr(RW, P),), (), True, id="read_write_rule_grants_read"),
    pytest.param(csr(P), (sr(W, P),), (), False, id="write_rule_does_not_grant_read"),
    pytest.param(csr(P), (sr(R, P),), (sr(R, P),), False, id="read_deny_beats_read_allow"),
    pytest.param(csr(P), (sr(R, P),), (sr(RW, P),), False, id="read_write_deny_beats_read_allow"),
    pytest.param(csr(P), (sr(R, P),), (sr(W, P),), True, id="write_deny_does_not_affect_read"),
    pytest.param(usr(P), (), (), False, id="write_without_rules_is_denied"),
    pytest.param(usr(P), (sr(W, P),), (), True, id="write_rule_grants_write"),
    pytest.param(usr(P), (sr(RW, P),), (), True, id="read_write_rule_grants_write"),
    pytest.param(usr(P), (sr(R, P),), (), False, id="read_rule_does_not_grant_write"),
    pytest.param(usr(P), (sr(W, P),), (sr(W, P),), False, id="write_deny_beats_write_allow"),
    pytest.param(usr(P), (sr(W, P),), (sr(RW, P),), False, id="read_write_deny_beats_write_allow"),
    pytest.param(usr(P), (sr(W, P),), (sr(R, P),), True, id="read_deny_does_not_affect_write"),
    pytest.param(csr(P, P + ".2"), (sr(RW, P),), (), True, id="read_of_every_mask_below_the_rule_is_granted"),
    pytest.param(
        usr(P, P + ".2"), (sr(RW, P),), (), True, id="write_of_every_mask_below_the_rule_is_granted"
    ),
    pytest.param(csr(P, "non.matching.path"), (sr(RW, P),), (), False, id="read_needs_every_mask_granted"),
    pytest.param(usr(P, "non.matching.path"), (sr(RW, P),), (), False, id="write_needs_every_mask_granted"),
    pytest.param(logs(), (), (), True, id="logs_request_for_no_workload_is_allowed_without_rules"),
    pytest.param(logs("workload_A"), (), (), False, id="logs_without_log_rules_are_denied"),
    pytest.param(logs("workload_A"), (lr("workload_A"),), (), True, id="log_allow_rule_grants_logs"),
    pytest.param(logs("workload_A"), (), (lr("workload_A"),), False, id="log_deny_rule_alone_denies"),
    pytest.param(
        logs("workload_A"), (lr("workload_A"),), (lr("workload_A"),), False, id="log_deny_beats_log_allow"
    ),
    pytest.param(
        logs("workload_A"),
        (lr("workload_A"),),
        (lr("non_existing_workload_name"),),
        True,
        id="log_deny_of_another_workload_does_not_deny",
    ),
    pytest.param(logs("w1"), W123, D345, True, id="log_name_allowed_and_not_denied_passes"),
    pytest.param(logs("w1", "w2"), W123, D345, True, id="log_names_all_allowed_and_none_denied_pass"),
    pytest.param(logs("w3"), W123, D345, False, id="log_name_both_allowed_and_denied_is_denied"),
    pytest.param(logs("w6"), W123, D345, False, id="log_name_in_no_rule_is_denied"),
    pytest.param(logs("w1", "w3"), W123, D345, False, id="one_denied_log_name_denies_the_request"),
    pytest.param(logs("w1", "w6"), W123, D345, False, id="one_ungranted_log_name_denies_the_request"),
    pytest.param(logs("w3", "w6"), W123, D345, False, id="denied_and_ungranted_log_names_deny"),
    pytest.param(LogsCancelRequest(), (), (), True, id="logs_cancel_is_allowed_without_rules"),
    pytest.param(LogsCancelRequest(), (lr("workload_A"),), (), True, id="logs_cancel_is_allowed_with_allow"),
    pytest.param(LogsCancelRequest(), (), (lr("workload_A"),), True, id="logs_cancel_is_allowed_with_deny"),
    pytest.param(
        LogsCancelRequest(),
        (lr("workload_A"),),
        (lr("workload_A"),),
        True,
        id="logs_cancel_allowed_with_both",
    ),
    pytest.param(
        EmptyRequest(), (sr(RW, "*"), lr("*")), (), False, id="request_without_content_is_always_denied"
    ),
    # Consequences of the reference's code that its unit tests do not pin down.
    pytest.param(
        csr("desiredState"),
        (sr(R, "*.workloads.nginx"),),
        (),
        True,
        id="allow_pattern_starting_with_wildcard_grants_ancestors",
    ),
    pytest.param(
        csr(), (sr(R, "*.workloads.nginx"),), (), True, id="allow_pattern_starting_with_wildcard_grants_all"
    ),
    pytest.param(
        csr("desiredState.workloads.*"),
        (sr(R, "desiredState.workloads"),),
        (sr(R, "desiredState.workloads.secret"),),
        True,
        id="request_wildcard_passes_a_named_deny_segment",
    ),
    pytest.param(
        csr("desiredState.workloads.*.tags"),
        (sr(R, "desiredState.workloads.*.tags"),),
        (sr(R, "desiredState.workloads.ivi_updater.tags"),),
        True,
        id="request_wildcard_passes_the_documented_deny_example",
    ),
    pytest.param(
        csr("desiredState.workloads.*"),
        (sr(R, "desiredState.workloads.nginx"),),
        (),
        False,
        id="request_wildcard_is_not_granted_by_a_named_allow_segment",
    ),
    pytest.param(
        logs("abc"), (lr("w*x", "abc"),), (), False, id="unmatched_wildcard_log_pattern_ends_the_search"
    ),
    pytest.param(csr("a..b"), (sr(R, "a.*.b"),), (), True, id="wildcard_segment_matches_an_empty_segment"),
    pytest.param(
        CompleteStateRequest(("x",), subscribe_for_events=True),
        (sr(R, "x"),),
        (),
        True,
        id="event_subscription_is_authorized_as_a_read",
    ),
    pytest.param(
        CompleteStateRequest(("y",), subscribe_for_events=True),
        (sr(R, "x"),),
        (),
        False,
        id="event_subscription_outside_the_read_rules_is_denied",
    ),
    pytest.param(
        usr("desiredState.workloads.x"),
        (sr(W, "desiredState.workloads.x"),),
        (),
        True,
        id="update_is_decided_by_its_masks_only",
    ),
    pytest.param(usr(""), (sr(W, "*"),), (), True, id="explicit_empty_update_mask_is_the_whole_state"),
    pytest.param(EventsCancelRequest(), (), (), True, id="events_cancel_is_always_allowed"),
    pytest.param(csr(P), (sr(NOTHING, P),), (), False, id="nothing_rule_grants_nothing"),
    pytest.param(csr(P), (sr(R, P),), (sr(NOTHING, P),), True, id="nothing_rule_forbids_nothing"),
    pytest.param(csr(P), (StateRule(R, ()),), (), False, id="state_rule_without_patterns_never_grants"),
    pytest.param(
        csr(P), (sr(R, P),), (StateRule(R, ()),), True, id="state_rule_without_patterns_never_forbids"
    ),
    pytest.param(csr("Matching.path"), (sr(R, P),), (), False, id="mask_segments_are_case_sensitive"),
    pytest.param(logs("w1"), (sr(RW, "*"),), (), False, id="state_rules_do_not_grant_logs"),
    pytest.param(csr(P), (lr("*"),), (), False, id="log_rules_do_not_grant_state"),
]


@pytest.mark.parametrize(("request_", "allow", "deny", "expected"), DECISIONS)
def test_decision_matches_the_reference(
    request_: AuthorizedRequest, allow: tuple[AccessRule, ...], deny: tuple[AccessRule, ...], expected: bool
) -> None:
    assert allowed(request_, allow, deny) is expected


STRICT = [
    pytest.param(
        csr("desiredState"),
        (sr(R, "*.workloads.nginx"),),
        (),
        False,
        id="strict_allow_wildcard_first_segment_grants_only_below",
    ),
    pytest.param(csr(), (sr(R, "*"),), (), True, id="strict_wildcard_pattern_still_grants_everything"),
    pytest.param(
        csr("x.workloads.nginx.tags"),
        (sr(R, "*.workloads.nginx"),),
        (),
        True,
        id="strict_allow_wildcard_first_segment_grants_its_subtree",
    ),
    pytest.param(
        csr("desiredState.workloads.*"),
        (sr(R, "desiredState.workloads"),),
        (sr(R, "desiredState.workloads.secret"),),
        False,
        id="strict_request_wildcard_hits_a_named_deny_segment",
    ),
    pytest.param(
        csr("desiredState.workloads.*.tags"),
        (sr(R, "desiredState.workloads.*.tags"),),
        (sr(R, "desiredState.workloads.ivi_updater.tags"),),
        False,
        id="strict_closes_the_documented_deny_bypass",
    ),
    pytest.param(
        csr("desiredState.workloads.*"),
        (sr(R, "desiredState.workloads.nginx"),),
        (),
        False,
        id="strict_request_wildcard_still_needs_a_wildcard_allow",
    ),
    pytest.param(logs("abc"), (lr("w*x", "abc"),), (), True, id="strict_log_search_goes_past_a_wildcard"),
    pytest.param(logs("wyx"), (lr("w*x", "abc"),), (), True, id="strict_wildcard_log_pattern_still_matches"),
    pytest.param(logs("abd"), (lr("w*x", "abc"),), (), False, id="strict_log_search_can_still_fail"),
]


@pytest.mark.parametrize(("request_", "allow", "deny", "expected"), STRICT)
def test_strict_mode_closes_the_reference_quirks(
    request_: AuthorizedRequest, allow: tuple[AccessRule, ...], deny: tuple[AccessRule, ...], expected: bool
) -> None:
    assert allowed(request_, allow, deny, strict=True) is expected


def allow_pattern_matches(pattern: str, mask: str) -> bool:
    return allowed(csr(mask), (sr(R, pattern),))


def deny_pattern_matches(pattern: str, mask: str) -> bool:
    # With an allow-all rule the decision is decided by the deny pattern alone.
    return not allowed(csr(mask), (sr(R, "*"),), (sr(R, pattern),))


ALLOW_PATTERNS = [
    (
        "some.pre.fix",
        ["some.pre.fix", "some.pre.fix.test"],
        ["", "some.pre", "some.pre.fixtest", "some.pre.test", "some.pre.test.2"],
    ),
    (
        "some.*.fix",
        ["some.pre.fix", "some.pre.fix.test", "some.pre2.fix", "some.pre2.fix.test"],
        [
            "some.pre",
            "some.pre.fixtest",
            "some.pre.test",
            "some.pre.test.2",
            "some.pre.bla.fix",
            "some.pre2",
            "some.pre2.fixtest",
            "some.pre2.test",
            "some.pre2.test.2",
        ],
    ),
    ("*", ["", "some", "some.pre.fix.test"], []),
    ("", [], ["", "some.pre"]),
]

DENY_PATTERNS = [
    (
        "some.pre.fix",
        ["", "some.pre", "some.pre.fix", "some.pre.fix.test"],
        ["some2.pre", "some2.pre.fix", "some.pre.fix2", "some.pre.fix2.test"],
    ),
    (
        "some.*.fix",
        [
            "",
            "some.pre",
            "some.pre.fix",
            "some.pre.fix.test",
            "some.pre2",
            "some.pre2.fix",
            "some.pre2.fix.test",
        ],
        [
            "some2.pre",
            "some2.pre.fix",
            "some.pre.fix2",
            "some.pre.fix2.test",
            "some.pre.bla.fix",
            "some2.pre2",
            "some2.pre2.fix",
            "some.pre2.fix2",
            "some.pre2.fix2.test",
        ],
    ),
    ("*", ["", "some", "some.pre.fix.test"], []),
    ("", [], ["", "some.pre"]),
]


def _pattern_cases(table: list[tuple[str, list[str], list[str]]]) -> list[object]:
    return [
        pytest.param(pattern, mask, expected, id=f"{pattern or '<empty>'}|{mask or '<empty>'}|{expected}")
        for pattern, matches, misses in table
        for expected, masks in ((True, matches), (False, misses))
        for mask in masks
    ]


@pytest.mark.parametrize(("pattern", "mask", "expected"), _pattern_cases(ALLOW_PATTERNS))
def test_allow_pattern_grants_its_own_subtree(pattern: str, mask: str, expected: bool) -> None:
    assert allow_pattern_matches(pattern, mask) is expected


@pytest.mark.parametrize(("pattern", "mask", "expected"), _pattern_cases(DENY_PATTERNS))
def test_deny_pattern_forbids_its_subtree_and_every_ancestor(pattern: str, mask: str, expected: bool) -> None:
    assert deny_pattern_matches(pattern, mask) is expected


@pytest.mark.parametrize(
    ("pattern", "segment", "expected"),
    [("some", "some", True), ("some", "other", False), ("*", "any", True), ("*", "", True)],
)
def test_segment_matches_itself_or_a_wildcard(pattern: str, segment: str, expected: bool) -> None:
    # One segment between two fixed ones isolates the segment comparison.
    assert allow_pattern_matches(f"a.{pattern}.b", f"a.{segment}.b") is expected


def test_state_rule_matches_if_any_of_its_patterns_matches() -> None:
    rule = sr(R, "pattern.1", "pattern.2", "pattern.3")
    assert allowed(csr("pattern.2"), (rule,))
    assert not allowed(csr("no.matching.pattern"), (rule,))


LOG_PATTERNS = [
    (["workload1", "workload2"], ["workload1", "workload2"], ["workload3"]),
    (["*"], ["any_workload", "name_matches"], []),
    (["*ef"], ["abcdef", "ef"], ["abcde"]),
    (["ab*"], ["abcdef", "ab"], ["bcdef"]),
    (["ab*ef"], ["abcdef", "abef"], ["abc", "def"]),
    (["a*ab"], ["aab", "abab"], ["ab"]),
    (["a*b*c"], ["a_b*c"], ["abc"]),  # only the first star is a wildcard
    (["Abc"], ["Abc"], ["abc"]),
]


@pytest.mark.parametrize(
    ("patterns", "name", "expected"),
    [
        pytest.param(patterns, name, expected, id=f"{'|'.join(patterns)}:{name}:{expected}")
        for patterns, matches, misses in LOG_PATTERNS
        for expected, names in ((True, matches), (False, misses))
        for name in names
    ],
)
def test_log_rule_matches_names_by_prefix_and_suffix_around_one_star(
    patterns: list[str], name: str, expected: bool
) -> None:
    assert allowed(logs(name), (LogRule(tuple(patterns)),)) is expected


def test_rules_are_filed_per_operation_and_read_write_in_both() -> None:
    def rules(side: str) -> tuple[AccessRule, ...]:
        return (
            sr(R, f"state.{side}.read.mask"),
            sr(W, f"state.{side}.write.mask"),
            sr(RW, f"state.{side}.read.write.mask"),
            lr(f"{side}ed_workload"),
        )

    built = Authorizer.from_rules(AccessRules(rules("allow"), rules("deny")))
    assert built.read.allow == (("state.allow.read.mask",), ("state.allow.read.write.mask",))
    assert built.write.allow == (("state.allow.write.mask",), ("state.allow.read.write.mask",))
    assert built.read.deny == (("state.deny.read.mask",), ("state.deny.read.write.mask",))
    assert built.write.deny == (("state.deny.write.mask",), ("state.deny.read.write.mask",))
    assert built.log_allow == (("allowed_workload",),)
    assert built.log_deny == (("denyed_workload",),)


def test_authorizers_of_equal_rules_are_equal_and_order_counts() -> None:
    a, b = sr(R, "a"), sr(R, "b")
    assert Authorizer.from_rules(AccessRules((a, b))) == Authorizer.from_rules(AccessRules((a, b)))
    assert Authorizer.from_rules(AccessRules((a, b))) != Authorizer.from_rules(AccessRules((b, a)))
    assert Authorizer.from_rules(AccessRules((a,))) != Authorizer.from_rules(AccessRules((a,)), strict=True)


@pytest.mark.parametrize(
    ("rules", "needs"),
    [
        (AccessRules(), False),
        (AccessRules(deny=(sr(R, "*"),)), False),
        (AccessRules(allow=(sr(NOTHING, "x"),)), True),
        (AccessRules(allow=(StateRule(R, ()),)), True),
    ],
)
def test_control_interface_exists_iff_there_is_an_allow_rule(rules: AccessRules, needs: bool) -> None:
    assert rules.needs_control_interface is needs


@pytest.mark.parametrize(
    ("request_", "allow", "deny", "reason"),
    [
        (csr("a.b"), (), (), "field mask 'a.b' is not granted by any read allow rule"),
        (
            usr("a"),
            (sr(W, "*"),),
            (sr(W, "a.b"),),
            "update mask 'a' is forbidden by the write deny pattern 'a.b'",
        ),
        (logs("x"), (), (), "logs of workload 'x' are not granted by any log allow rule"),
        (logs("x"), (lr("*"),), (lr("x"),), "logs of workload 'x' are forbidden by a log deny rule"),
        (EmptyRequest(), (), (), "the request has no content"),
        (csr(), (sr(R, "*"),), (), "every field mask ('' (the whole state)) is granted by the read rules"),
        (usr("a", "b"), (sr(W, "*"),), (), "every update mask ('a', 'b') is granted by the write rules"),
        (LogsCancelRequest(), (), (), "a logs cancel request is always allowed"),
    ],
)
def test_decision_names_what_decided_it(
    request_: AuthorizedRequest, allow: tuple[AccessRule, ...], deny: tuple[AccessRule, ...], reason: str
) -> None:
    assert Authorizer.from_rules(AccessRules(allow, deny)).decide(request_).reason == reason


def test_decision_line_names_the_workload() -> None:
    decision = Authorizer.from_rules(AccessRules()).decide(csr("a"))
    assert decision.describe("nginx") == (
        "Control-interface request of workload 'nginx' denied: "
        "field mask 'a' is not granted by any read allow rule"
    )


def test_denied_answer_text_is_the_reference_text() -> None:
    assert ACCESS_DENIED == "Access denied"


def test_public_names_are_pinned() -> None:
    assert authorizer_module.__all__ == [
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


# Properties: the decision is monotone in the rules, and deny always wins.

_segment = st.sampled_from(["a", "b", "c", "", "*"])
_path = st.lists(_segment, max_size=4).map(".".join)
_name = st.sampled_from(["w1", "w2", "wx", "abc", "", "*", "w*", "*x", "a*c", "w*x"])
_state_rule = st.builds(StateRule, st.sampled_from(list(Operation)), st.lists(_path, max_size=3).map(tuple))
_log_rule = st.builds(LogRule, st.lists(_name, max_size=3).map(tuple))
_rule: st.SearchStrategy[AccessRule] = st.one_of(_state_rule, _log_rule)
_rules = st.lists(_rule, max_size=4).map(tuple)
_request: st.SearchStrategy[AuthorizedRequest] = st.one_of(
    st.builds(CompleteStateRequest, st.lists(_path, max_size=3).map(tuple), st.booleans()),
    st.builds(UpdateStateRequest, st.lists(_path, max_size=3).map(tuple)),
    st.builds(LogsRequest, st.lists(_name, max_size=3).map(tuple)),
    st.just(LogsCancelRequest()),
    st.just(EventsCancelRequest()),
    st.just(EmptyRequest()),
)


@settings(max_examples=400)
@given(_rules, _rules, _rule, _request, st.booleans())
def test_adding_a_deny_rule_never_allows_more(
    allow: tuple[AccessRule, ...],
    deny: tuple[AccessRule, ...],
    extra: AccessRule,
    request: AuthorizedRequest,
    strict: bool,
) -> None:
    if allowed(request, allow, (*deny, extra), strict=strict):
        assert allowed(request, allow, deny, strict=strict)


@settings(max_examples=400)
@given(_rules, _rules, _rule, _request, st.booleans())
def test_adding_an_allow_rule_never_denies_more(
    allow: tuple[AccessRule, ...],
    deny: tuple[AccessRule, ...],
    extra: AccessRule,
    request: AuthorizedRequest,
    strict: bool,
) -> None:
    if allowed(request, allow, deny, strict=strict):
        assert allowed(request, (*allow, extra), deny, strict=strict)


@settings(max_examples=400)
@given(_rules, _rules, _request, st.booleans())
def test_deny_always_wins_over_the_same_rule_allowed(
    allow: tuple[AccessRule, ...], deny: tuple[AccessRule, ...], request: AuthorizedRequest, strict: bool
) -> None:
    """Denying everything that is allowed leaves only the requests that need no rule at all."""
    always = isinstance(request, LogsCancelRequest | EventsCancelRequest) or request == LogsRequest(())
    assert allowed(request, allow, (*deny, *allow), strict=strict) is always

"""What a caller may do on one route: the rule table (routes.py) applied to who is asking. Pure: no Django.

Who is asking (middleware.identify): anonymous; a worker; an administrator; or "conflicting", when the request
carries two different users (a session and another user's token), which no client of ours sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from labeling_gate.routes import Access, Rule, rule_for


class Kind(Enum):
    ANONYMOUS = "anonymous"
    WORKER = "worker"
    ADMIN = "admin"
    CONFLICTING = "conflicting"


@dataclass(frozen=True)
class Caller:
    kind: Kind
    user_id: int | None = None

    @property
    def is_worker(self) -> bool:
        return self.kind == Kind.WORKER


ANONYMOUS = Caller(Kind.ANONYMOUS)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: Rule
    # Refused because nobody is signed in: the caller is sent to sign in (a page) or answered 401 (an API).
    sign_in: bool = False
    reason: str = ""


def decide(route: str | None, method: str, caller: Caller, action_ids: Sequence[str] = ()) -> Decision:
    rule = rule_for(route, method)
    if rule.access == Access.PUBLIC:
        return Decision(True, rule)
    if caller.kind == Kind.ANONYMOUS:
        return Decision(False, rule, sign_in=True, reason="sign in first")
    if caller.kind == Kind.CONFLICTING:
        return Decision(False, rule, reason="the request carries the credentials of two different users")
    if caller.kind == Kind.ADMIN:
        return Decision(True, rule)
    if rule.access == Access.ADMIN:
        return Decision(False, rule, reason=f"only the pipeline's administrators: {rule.why}")
    if rule.action_ids and (not action_ids or any(action not in rule.action_ids for action in action_ids)):
        return Decision(False, rule, reason=f"workers may run only these actions: {', '.join(rule.action_ids)}")
    return Decision(True, rule)

"""Which personal data each console role sees in full: only what the job needs (152-ФЗ, data
minimisation). The chat page, the JSON API and the live socket all go through here (the socket
carries ids only, see `handoff.console.live.FORWARDED`).

| data | operator | supervisor, admin |
| --- | --- | --- |
| name, tariff, balance, area, tickets, verification status and method | shown | shown |
| phone numbers (profile, billing data, form data, NLU entities, message texts) | last 4 digits | last 4 digits |
| account numbers, billing customer id | last 4 digits | shown |
| address (billing data, form data) | street only | shown |
| long digit runs in subscriber and bot messages (account numbers, codes) | last 4 digits | shown |

Why: an operator answers the chat the bot has already identified; the last four digits are
enough to confirm a number with the subscriber, and the street to talk about an outage. The
full address travels to technicians in the ticket, not through the console. Supervisors and
admins take escalations and complaints (billing disputes, a visit gone wrong) where the account
number and address are the subject. No console role needs a full phone number: the subscriber
is in the chat, and tickets carry the number to whoever calls. Editors see no chats at all.
Every opening of a chat is in the audit log (`chat_opened`), with what was shown in full.

Known limits: names and addresses the subscriber typed in free text are not recognised in
message texts (only digits are); operator and system messages are shown as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nlu.address import parse_area
from nlu.phones import MASK, mask_phone, mask_phones
from storage.models import Author, OperatorRole

PHONE_KEYS = frozenset({"phone", "phone_number", "contact_phone"})
ACCOUNT_KEYS = frozenset({"account", "account_number", "customer_id", "contract"})
ADDRESS_KEYS = frozenset({"address"})
# 6+ digits, single spaces or dashes between them, not part of a word or a ticket number
# ("V-000123"): account numbers and one-time codes in free text.
_LONG_DIGITS = re.compile(r"(?<![\w\-])\d(?:[ \-]?\d){5,15}(?![\d\w])")


@dataclass(frozen=True, slots=True)
class Policy:
    role: str
    full_accounts: bool  # account numbers and billing customer ids
    full_addresses: bool

    @property
    def unmasked(self) -> list[str]:
        """What this role sees in full, for the audit entry of a chat opening."""
        return [
            name
            for name, shown in (("account", self.full_accounts), ("address", self.full_addresses))
            if shown
        ]


_STRICT = Policy(OperatorRole.OPERATOR, full_accounts=False, full_addresses=False)
POLICIES: dict[str, Policy] = {
    OperatorRole.OPERATOR: _STRICT,
    OperatorRole.SUPERVISOR: Policy(
        OperatorRole.SUPERVISOR, full_accounts=True, full_addresses=True
    ),
    OperatorRole.ADMIN: Policy(OperatorRole.ADMIN, full_accounts=True, full_addresses=True),
}


def policy_for(role: str) -> Policy:
    """The role's policy; anything unknown gets the strictest."""
    return POLICIES.get(role, _STRICT)


def mask_account(value: object) -> str | None:
    """'100200300' -> '•••••0300': the last four characters (bullets only for four or fewer)."""
    if value is None or value == "":
        return None
    text = "".join(str(value).split())
    if len(text) <= 4:
        return MASK * len(text)
    return MASK * min(len(text) - 4, 8) + text[-4:]


def mask_address(value: object) -> str | None:
    """'Садовая 12, кв. 5' -> 'Садовая, •••': the street without house and flat."""
    if value is None or value == "":
        return None
    area = parse_area(str(value))
    return f"{area.title}, {MASK * 3}" if area is not None else MASK * 3


def kind_of(key: str) -> str | None:
    """'phone', 'account', 'address' or None for a field's key (its last part: 'customer.phone');
    a billing record's own `id` is an account-like identifier."""
    parts = key.lower().split(".")
    leaf = parts[-1]
    if leaf in PHONE_KEYS:
        return "phone"
    if leaf in ACCOUNT_KEYS or (leaf == "id" and "customer" in parts[:-1]):
        return "account"
    if leaf in ADDRESS_KEYS:
        return "address"
    return None


def show(key: str, value: Any, policy: Policy) -> Any:
    """A field's value as this role may see it."""
    kind = kind_of(key)
    if kind == "phone":
        return mask_phone(value)
    if kind == "account" and not policy.full_accounts:
        return mask_account(value)
    if kind == "address" and not policy.full_addresses:
        return mask_address(value)
    return value


def message_text(text: str, author: str, policy: Policy) -> str:
    """A message as this role may read it: phones masked in what subscribers and the bot wrote
    (the bot repeats numbers back), and for operators long digit runs too. Operators' and
    system messages are left alone (their own words; templates)."""
    if not text or author not in (Author.SUBSCRIBER, Author.BOT):
        return text
    text = mask_phones(text)
    if not policy.full_accounts:
        text = _LONG_DIGITS.sub(lambda m: mask_account(m.group()) or "", text)
    return text

"""Conditions and text templates in content, safely: no `eval`, only what an editor needs.

- Conditions (`if:`) are small Python-like expressions over slots and results:
  `balance.amount < 0`, `offer.available and not customer`, `channel == "vk"`,
  `error.reason in ["debt_too_high", "unknown"]`. A missing slot or attribute is `None`.
- Templates in texts: `{first_name}`, `{balance.amount|rub}`, `{ticket.due_at|datetime}`.
  Filters: rub, date, datetime, time, upper, lower. `{{` and `}}` are literal braces.
`names_in` / `template_names` list the root names used, so validation can flag unknown slots.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Europe/Moscow")
_TEMPLATE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w.]*)(?:\|(\w+))?\}")
_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.Name,
    ast.Load,
    ast.Attribute,
    ast.Constant,
    ast.List,
    ast.Tuple,
)


class ExprError(ValueError):
    pass


def compile_condition(source: str) -> ast.Expression:
    """Parse a condition; raises ExprError with a message for the editor."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"condition {source!r} is not valid: {exc.msg}") from exc
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExprError(
                f"condition {source!r}: {type(node).__name__} is not allowed "
                "(use names, dots, comparisons, and/or/not, literals)"
            )
        if isinstance(node, ast.Attribute | ast.Name) and _name(node).startswith("_"):
            raise ExprError(f"condition {source!r}: names starting with _ are not allowed")
    return tree


def names_in(tree: ast.Expression) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def evaluate(tree: ast.Expression, scope: Mapping[str, Any]) -> Any:
    return _eval(tree.body, scope)


def _name(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")


def _eval(node: ast.AST, scope: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return scope.get(node.id)
    if isinstance(node, ast.Attribute):
        return lookup(_eval(node.value, scope), node.attr)
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, scope) for e in node.elts]
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, scope)
        if isinstance(node.op, ast.Not):
            return not value
        return -value if isinstance(value, int | float) else None
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = _eval(v, scope)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = _eval(v, scope)
            if result:
                return result
        return result
    if isinstance(node, ast.Compare):
        left = _eval(node.left, scope)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, scope)
            if not _compare(op, left, right):
                return False
            left = right
        return True
    raise ExprError(f"cannot evaluate {type(node).__name__}")


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    try:
        if isinstance(op, ast.Eq):
            return bool(left == right)
        if isinstance(op, ast.NotEq):
            return bool(left != right)
        if isinstance(op, ast.Is):
            return left is right
        if isinstance(op, ast.IsNot):
            return left is not right
        if isinstance(op, ast.In):
            return right is not None and left in right
        if isinstance(op, ast.NotIn):
            return right is None or left not in right
        if left is None or right is None:
            return False
        if isinstance(op, ast.Lt):
            return bool(left < right)
        if isinstance(op, ast.LtE):
            return bool(left <= right)
        if isinstance(op, ast.Gt):
            return bool(left > right)
        if isinstance(op, ast.GtE):
            return bool(left >= right)
    except TypeError:
        return False
    return False


def lookup(value: Any, attr: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(attr)
    return None


def resolve(path: str, scope: Mapping[str, Any]) -> Any:
    root, *rest = path.split(".")
    value = scope.get(root)
    for attr in rest:
        value = lookup(value, attr)
    return value


# -- templates ------------------------------------------------------------------------------


def template_names(text: str) -> list[tuple[str, str | None]]:
    """(root name, filter) for each `{name}` template in the text."""
    return [(m.group(1).split(".")[0], m.group(2)) for m in _TEMPLATE.finditer(text) if m.group(1)]


def template_spans(text: str) -> list[tuple[str, str | None, int]]:
    """(root name, filter, character offset) for each `{name}` template."""
    return [
        (m.group(1).split(".")[0], m.group(2), m.start())
        for m in _TEMPLATE.finditer(text)
        if m.group(1)
    ]


def render(text: str, scope: Mapping[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value = resolve(m.group(1), scope)
        flt = m.group(2)
        if flt and flt in FILTERS:  # validation reports unknown filters; never crash a turn
            return FILTERS[flt](value)
        return _plain(value)

    return _TEMPLATE.sub(sub, text)


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
    elif isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    else:
        return None
    return dt.astimezone(TZ) if dt.tzinfo else dt


def _rub(value: Any) -> str:
    if not isinstance(value, int | float):
        return _plain(value)
    whole = f"{abs(value):,.2f}".replace(",", " ").replace(".", ",").removesuffix(",00")
    return f"{'−' if value < 0 else ''}{whole} ₽"


def _date(value: Any) -> str:
    dt = _as_datetime(value)
    return dt.strftime("%d.%m") if dt else _plain(value)


def _datetime(value: Any) -> str:
    dt = _as_datetime(value)
    return dt.strftime("%d.%m в %H:%M") if dt else _plain(value)


def _time(value: Any) -> str:
    dt = _as_datetime(value)
    return dt.strftime("%H:%M") if dt else _plain(value)


_ON_WEEKDAY = (
    "в понедельник", "во вторник", "в среду", "в четверг", "в пятницу", "в субботу",
    "в воскресенье",
)  # fmt: skip
_OF_MONTH = (
    "января", "февраля", "марта", "апреля", "мая", "июня",
    "июля", "августа", "сентября", "октября", "ноября", "декабря",
)  # fmt: skip


def _when(value: Any) -> str:
    """A day, or a visit window ({date, from, to}), said so that it stays true later:
    «в субботу, 5 декабря, с 09:00 до 12:00» (a window's `label` says «завтра»)."""
    if isinstance(value, dict) and value.get("date"):
        try:
            day = date.fromisoformat(str(value["date"]))
        except ValueError:
            return _plain(value.get("label") or value)
        said = f"{_ON_WEEKDAY[day.weekday()]}, {day.day} {_OF_MONTH[day.month - 1]}"
        if value.get("from") and value.get("to"):
            said += f", с {value['from']} до {value['to']}"
        return said
    dt = _as_datetime(value)
    if dt is None:
        return _plain(value)
    return f"{_ON_WEEKDAY[dt.weekday()]}, {dt.day} {_OF_MONTH[dt.month - 1]}"


FILTERS: dict[str, Callable[[Any], str]] = {
    "when": _when,
    "rub": _rub,
    "date": _date,
    "datetime": _datetime,
    "time": _time,
    "upper": lambda v: _plain(v).upper(),
    "lower": lambda v: _plain(v).lower(),
}

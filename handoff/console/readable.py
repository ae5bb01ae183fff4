"""The bot's raw data as an operator reads it: what the bot collected in a chat (slot labels,
tariff names instead of codes, lists summarised, «да/нет», dates in the console's time zone),
button presses by the button's title, handoff reasons and refusals in Russian.

Titles come from the loaded content where it has them (flow titles, button titles of responses
and articles, slot choices, yes/no wording); the rest from the tables here. Values that are
personal data still go through the role's privacy policy (`handoff.console.privacy`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime, tzinfo
from typing import Any

from dialogs.content import Content
from dialogs.content.model import (
    FLOW_PAYLOAD,
    INTENT_PAYLOAD,
    KB_PAYLOAD,
    NONE_OF_THESE,
    SLOT_PAYLOAD,
    STEP_PAYLOAD,
    ButtonSpec,
    Response,
)
from handoff.console import privacy
from handoff.console.privacy import Policy

SLOT_LABELS = {
    "address": "Адрес",
    "phone": "Телефон",
    "account": "Лицевой счёт",
    "window": "Удобное время визита",
    "confirm": "Подтверждение",
    "tariff": "Выбранный тариф",
    "tariff_choice": "Выбранный тариф",
    "tariff_current": "Текущий тариф",
    "tariff_change": "Смена тарифа",
    "tariffs": "Тарифы",
    "complaint_text": "Текст жалобы",
    "problem": "Проблема",
    "ticket_comment": "Комментарий к заявке",
    "ticket": "Заявка",
    "my_tickets": "Заявки абонента",
    "balance": "Баланс",
    "outage": "Авария",
    "offices": "Офисы",
    "promised_payment": "Обещанный платёж",
    "promised_payment_offer": "Предложение обещанного платежа",
    "visit_reschedule": "Перенос визита",
    "link_code": "Код привязки",
    "error": "Ошибка",
    "customer": "Абонент в биллинге",
    "contract": "Договор",
    "name": "Название",
    "code": "Код",
    "price": "Цена",
    "summary": "Описание",
    "kind": "Вид",
    "home": "Домашний тариф",
    "number": "Номер",
    "status": "Статус",
    "due_at": "Срок",
    "reason": "Причина",
    "amount": "Сумма",
    "until": "До",
    "count": "Количество",
    "details": "Подробности",
    "text": "Текст",
    "title": "Название",
    "items": "Список",
    "current": "Текущая",
    "visit": "Визит",
    "comment": "Комментарий",
    "created_at": "Создана",
}
REASONS = {
    "asked for a human": "абонент попросил оператора",
    "the bot did not understand": "бот не понял абонента",
    "complaint": "жалоба",
    "promised payment refused by billing": "биллинг отказал в обещанном платеже",
    "visit reschedule refused": "не удалось перенести визит мастера",
}
# Refusals of the console's API (desk, canned replies, uploads, the guard), for the toasts.
REFUSALS: tuple[tuple[str, str], ...] = (
    (r"log in first", "Войдите в консоль заново."),
    (r"missing or wrong CSRF token", "Сессия устарела (нет CSRF-токена): обновите страницу."),
    (r"the request body took over .*", "Запрос шёл слишком долго — попробуйте ещё раз."),
    (r"another operator has this chat", "Этот чат уже у другого оператора."),
    (r"this chat is not yours", "Это не ваш чат."),
    (r"the chat is already yours", "Чат уже ваш."),
    (r"editors have no access to chats", "Редакторам чаты недоступны."),
    (r"supervisors only", "Только для супервизоров."),
    (r"an empty reply", "Пустой ответ."),
    (r"write a reply or attach an image", "Напишите ответ или приложите картинку."),
    (r"a reply is at most (\d+) characters", r"Ответ — не больше \1 символов."),
    (r"choose a group or an operator to transfer to", "Выберите группу или оператора."),
    (r"transfer to a group or to an operator", "Передать можно группе или оператору."),
    (r"unknown operator", "Нет такого оператора."),
    (r"no operator (.+)", r"Нет оператора \1."),
    (r"unknown group (.+)", r"Нет группы \1."),
    (r"operator_id must be a number", "Оператор указан неверно."),
    (r"no (?:chat|conversation) (\d+)", r"Нет чата \1."),
    (r"resolution must be one of .*", "Выберите итог из списка."),
    (r"status must be one of .*", "Неизвестный статус."),
    (r"the chat is (\w+), not with an operator", r"Чат сейчас не у оператора (\1)."),
    (r"the chat is (\w+); only waiting chats can be taken", "Взять можно только чат из очереди."),
    (r"can't (\w+) a chat that is (\w+)", "Это действие сейчас недоступно для чата."),
    (r"the bot's content is not loaded: nothing to send", "Контент бота не загружен."),
    (r"only PNG, JPEG or GIF images can be attached", "Можно приложить только PNG, JPEG или GIF."),
    (r"the image is larger than (\d+) MB", r"Картинка больше \1 МБ."),
    (r"no such image", "Нет такой картинки."),
    (r"the body must be a JSON object", "Неверный запрос."),
    (r"/(\S+) already exists", r"Заготовка /\1 уже есть."),
    (r"title: 1-100 characters", "Название — от 1 до 100 символов."),
    (r"text: 1-(\d+) characters", r"Текст — от 1 до \1 символов."),
    (r"shortcut: .*", "Сокращение: 1–31 буква, цифра, «_» или «-» (например, /pay)."),
)
_REFUSALS = [(re.compile(f"^{pattern}$"), russian) for pattern, russian in REFUSALS]
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_TITLES: dict[str, dict[str, str]] = {}  # content fingerprint -> payload -> title
SHOWN_ITEMS = 3  # of a list, named before «и ещё N»


def refusal(message: str) -> str:
    """A console refusal in Russian (messages already in Russian are kept)."""
    for pattern, russian in _REFUSALS:
        if pattern.match(message):
            return pattern.sub(russian, message)
    return message


def reason(raw: str | None, content: Content | None) -> str | None:
    """Why a chat was handed over, for people: a flow's name becomes its title."""
    if not raw:
        return raw
    if raw in REASONS:
        return REASONS[raw]
    if raw.startswith("transfer from "):
        return f"передан от {raw.removeprefix('transfer from ')}"
    if content is not None and raw in content.flows:
        return f"сценарий «{content.flows[raw].title}»"
    return raw


# -- buttons -------------------------------------------------------------------------------------


def _specs(response: Response) -> Iterator[ButtonSpec]:
    for variant in response.variants:
        for _, override in variant.channels:
            for row in override.buttons:
                yield from row
        for row in variant.buttons:
            yield from row


def _content_titles(content: Content) -> dict[str, str]:
    """payload -> title of every button the content defines (kept per content version)."""
    cached = _TITLES.get(content.fingerprint)
    if cached is not None:
        return cached
    found: dict[str, str] = {}
    for response in content.responses.values():
        for spec in _specs(response):
            if spec.payload:
                found.setdefault(spec.payload, spec.title)
    for flow in content.flows.values():
        for ins in flow.program:
            for said in (getattr(ins, "response", None), getattr(ins, "prompt", None)):
                if isinstance(said, Response):
                    for spec in _specs(said):
                        if spec.payload:
                            found.setdefault(spec.payload, spec.title)
    for article in content.articles.values():
        for row in article.buttons:
            for spec in row:
                if spec.payload:
                    found.setdefault(spec.payload, spec.title)
    if len(_TITLES) > 4:  # content reloads: keep the latest few
        _TITLES.clear()
    _TITLES[content.fingerprint] = found
    return found


def button_title(payload: str, content: Content | None, slots: Mapping[str, Any]) -> str:
    """The title of the button that sent `payload`, as the subscriber saw it."""
    if content is None:
        return "кнопка"
    bot = content.bot
    known = _content_titles(content).get(payload)
    if known:
        return known
    if payload == NONE_OF_THESE:
        return bot.none_of_these
    if payload.startswith("resume:"):
        return bot.yes if payload == "resume:yes" else bot.no
    if payload.startswith(INTENT_PAYLOAD):
        flow = content.intent_flows.get(payload.removeprefix(INTENT_PAYLOAD))
        if flow in content.flows:
            return content.flows[flow].title
    if payload.startswith(FLOW_PAYLOAD) and payload.removeprefix(FLOW_PAYLOAD) in content.flows:
        return content.flows[payload.removeprefix(FLOW_PAYLOAD)].title
    if payload.startswith(STEP_PAYLOAD):
        name = payload.removeprefix(STEP_PAYLOAD).partition(":")[0]
        if name in content.flows:
            return content.flows[name].title
    if payload.startswith(SLOT_PAYLOAD):
        name, _, value = payload.removeprefix(SLOT_PAYLOAD).partition("=")
        return _slot_button(name, value, content, slots)
    if payload.startswith(KB_PAYLOAD):
        rest = payload.removeprefix(KB_PAYLOAD)
        kind, _, article = rest.partition(":")
        if kind in ("more", "yes", "no") and article:
            return {"more": bot.kb_more, "yes": bot.kb_yes, "no": bot.kb_no}[kind]
        if rest in content.articles:
            return content.articles[rest].title
    return "кнопка"


def _slot_button(name: str, value: str, content: Content, slots: Mapping[str, Any]) -> str:
    slot = content.slots.get(name)
    if slot is None:
        return value or "кнопка"
    if slot.type == "yes_no":
        return {"yes": content.bot.yes, "no": content.bot.no}.get(value, value)
    if slot.type == "time_window":
        return _window(value)
    for choice in slot.choices:
        if choice.value == value:
            return choice.title
    chosen = _chosen_item(name, value, content, slots)
    if chosen is not None:
        return _named(chosen) or value
    return value


def _window(raw: str) -> str:
    """'2026-12-05 10:00-14:00' -> '05.12 10:00–14:00'."""
    day, _, hours = raw.partition(" ")
    try:
        when = date.fromisoformat(day)
    except ValueError:
        return raw
    return f"{when:%d.%m} {hours.replace('-', '–')}".strip()


def _chosen_item(
    name: str, value: Any, content: Content, slots: Mapping[str, Any]
) -> dict[str, Any] | None:
    slot = content.slots.get(name)
    source = slot.choices_from if slot is not None else None
    if source is None:
        return None
    items = slots.get(source.of)
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and str(item.get(source.value)) == str(value):
            return item
    return None


# -- what the bot collected -------------------------------------------------------------------


def _named(item: Mapping[str, Any]) -> str | None:
    for key in ("name", "title", "label", "number"):
        if isinstance(item.get(key), str | int) and item.get(key) != "":
            return str(item[key])
    return None


def when(value: str, tz: tzinfo) -> str:
    """An ISO date or timestamp -> '05.12 14:30' (the console's time zone) or '05.12.2026'."""
    try:
        if "T" not in value and " " not in value:
            return f"{date.fromisoformat(value):%d.%m.%Y}"
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if at.tzinfo is not None:
        at = at.astimezone(tz)
    return f"{at:%d.%m %H:%M}"


def _label(key: str, content: Content | None) -> str:
    if key in SLOT_LABELS:
        return SLOT_LABELS[key]
    slot = content.slots.get(key) if content is not None else None
    if slot is not None:
        for variant in slot.prompt.variants:
            if variant.text:
                first = variant.text.strip().splitlines()[0]
                return first if len(first) <= 60 else first[:59] + "…"
    return key


def slot_label(key: str, content: Content | None) -> str:
    """A slot's name for people (its label, else its question's first line, else the name)."""
    return _label(key, content)


def value_text(value: Any, tz: tzinfo) -> str:
    """One value for people: «да/нет», dates, a named thing by its name, lists summarised."""
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return when(value, tz) if _ISO.match(value) else value
    if isinstance(value, dict):
        if _is_window(value):
            return str(value["label"])
        named = _named(value)
        if named is not None:
            price = value.get("price")
            return f"{named} — {price:g} ₽" if isinstance(price, int | float) else named
        return "; ".join(
            f"{SLOT_LABELS.get(k, k)}: {value_text(v, tz)}"
            for k, v in value.items()
            if v not in (None, "", [], {})
        )
    if isinstance(value, list):
        names = [value_text(v, tz) for v in value]
        if len(names) <= SHOWN_ITEMS:
            return ", ".join(names)
        return (
            f"{len(names)} шт.: {', '.join(names[:SHOWN_ITEMS])} и ещё {len(names) - SHOWN_ITEMS}"
        )
    return str(value)


def slot_rows(
    slots: Mapping[str, Any], content: Content | None, policy: Policy, tz: tzinfo
) -> list[dict[str, str]]:
    """ "What the bot collected", one row per slot, personal data masked by the role's policy."""
    rows: list[dict[str, str]] = []
    for key, value in slots.items():
        if key.startswith("_"):
            continue
        if content is not None and isinstance(value, str | int) and not isinstance(value, bool):
            chosen = _chosen_item(key, value, content, slots)
            if chosen is not None:
                value = chosen
        rows += _rows(key, _label(key, content), value, policy, tz)
    return rows


def _is_window(value: Any) -> bool:
    return isinstance(value, dict) and "label" in value and {"date", "from"} <= set(value)


def _rows(key: str, label: str, value: Any, policy: Policy, tz: tzinfo) -> list[dict[str, str]]:
    if value is None or value in ("", [], {}):
        return []
    if isinstance(value, dict) and not _is_window(value):
        inner = {k: v for k, v in value.items() if not isinstance(v, dict)}
        rows: list[dict[str, str]] = []
        if _named(value):
            rows.append(
                {"key": key, "label": label, "value": value_text(_masked(key, inner, policy), tz)}
            )
        else:
            for k, v in inner.items():
                rows += _rows(f"{key}.{k}", f"{label}: {SLOT_LABELS.get(k, k)}", v, policy, tz)
        for k, v in value.items():  # a named thing's parts (a tariff's home tariff) on their own
            if isinstance(v, dict):
                rows += _rows(f"{key}.{k}", SLOT_LABELS.get(k, k), v, policy, tz)
        return rows
    return [{"key": key, "label": label, "value": value_text(_masked(key, value, policy), tz)}]


def _masked(key: str, value: Any, policy: Policy) -> Any:
    """`value` with every field the role may not see masked (`privacy.show` by field name)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _masked(f"{key}.{k}", v, policy) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(key, v, policy) for v in value]
    return privacy.show(key, value, policy)

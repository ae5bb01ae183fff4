"""Telecom slang, abbreviations and spelling variants, written one way before featurisation.

Subscribers write «инет», «тырнет», «симку», «есимка», «мобилу посеял», «скока бабла», «4джи».
Each line below maps such variants to one plain form, so that what the engine learned from
«интернет» also counts for «инет» and the other way round. The embedded engine applies it to
the training examples and to every message alike (`nlu.embedded.normalise`); a change here
changes the model, so the model cache is keyed by `SIGNATURE` too.

Rules are for words whose meaning is the same in every telecom context, never for words that
decide between two intents; Russian endings are kept where the form carries them («инета» ->
«интернета», «симку» -> «симкарту»). The text arrives lowercased with ё written е. Rasa does not
see these rules (it trains on the data as written), which is why the training data keeps its
slang examples too.
"""

from __future__ import annotations

import hashlib
import re

_W = r"[0-9a-zа-я]"  # a word character for the boundaries below

# (pattern, replacement), applied in order on whole words. Later rules see earlier results.
RULES: tuple[tuple[str, str], ...] = (
    # eSIM before SIM: «есимка», «есимку», «е-сим», «e-sim», «e sim»
    (r"(?:есим\w*|е-сим\w*|e-?\s?sim\w*)", "esim"),
    # SIM card: «сим карта», «сим-карту», «симкарта», «симку», «симок», «симочка», «сим»
    (r"сим[\s-]?карт(\w*)", r"симкарт\1"),
    (r"симки", "симкарты"),
    (r"симк(а|у|е|ой|ою)", r"симкарт\1"),
    (r"(?:симок|симочк\w*)", "симкарта"),
    (r"сим", "симкарта"),
    # internet: «инет», «инета», «тырнет», «интырнет»
    (r"(?:инет|тырнет|интырнет|интернэт)(а|у|ом|е)?", r"интернет\1"),
    # Wi-Fi: «вай фай», «вай-фай», «вайфай», «wi-fi», «wi fi»
    (r"(?:вай[\s-]?фа[йяюе]\w*|wi[\s-]?fi)", "wifi"),
    # mobile generations: «4г», «4 g», «4джи», «3жи», «лте»
    (r"([2345])\s?(?:g|г|джи|жи)", r"\1g"),
    (r"лте", "lte"),
    # the phone itself: «мобила», «мобилу», «мобилка», «мобильник», «тел», «телефончик»
    (r"(?:мобил(?:а|у|ы|е|ой|к[аиуеой]|кой|ьник\w*)|тел|телефончик\w*)", "телефон"),
    # TV set: «телек», «телик», «телека»
    (r"(?:телек|телик)\w*", "телевизор"),
    # money: «бабки», «бабла», «бабос», «лавэ», «деньжата»
    (r"(?:бабк(?:и|ах|ами)|бабок|бабл(?:о|а|у|ом)|бабос\w*|лав[эе]|деньжат\w*)", "деньги"),
    # cash: «нал», «налом», «налик», «наличка», «наличкой»
    (r"(?:нал|налом|налик\w*|наличк\w*)", "наличные"),
    # salary: «зп», «зарплата», «получка»
    (r"(?:зп|получк\w*)", "зарплата"),
    # banks
    (r"(?:сбер|сбера|сбере|сбером|сбол)", "сбербанк"),
    (r"(?:тинек|тинька|тинькоф|тиньков\w*)", "тинькофф"),
    # other operators: any of them says the same to the classifier («перейти от билайна»)
    (r"(?:мтс|билайн\w*|мегафон\w*|теле2|tele2|йот[аеуы]|yota|beeline|megafon|mts)", "мтс"),
    # colloquial spellings
    (r"(?:скока|скоко|скок|сколко)", "сколько"),
    (r"(?:че|чо|шо|што)", "что"),
    (r"(?:щас|ща|щя|счас)", "сейчас"),
    (r"(?:нету|нема)", "нет"),
    (r"(?:ниче|ничо|нифига)", "ничего"),
    (r"(?:чел|чела|челу|челом)", "человек"),
    (r"(?:пжлст|пжл|плз|плиз|пж)", "пожалуйста"),
    (r"(?:спс|пасиб|пасибо|спасиб|спасибки|сяп|спасибочки)", "спасибо"),
    (r"(?:прив|привки|приветик\w*|превед)", "привет"),
    (r"(?:покеда|покедова|покасики)", "пока"),
    # the personal account and the account's web page
    (r"лк", "личный кабинет"),
    # blocking: «заблочить», «заблочьте», «блокнуть», «заблокать»
    (r"(?:заблоч\w*|блокн\w*|заблокать)", "заблокировать"),
    (r"разблоч\w*", "разблокировать"),
    # promised payment: «обещанка», «обещалка»
    (r"(?:обещанк\w*|обещалк\w*)", "обещанный платеж"),
    # abroad: «за бугром», «за бугор»
    (r"за\s+бугр(?:ом|е)", "за границей"),
    (r"за\s+бугор", "за границу"),
    # the plan: «тарифчик»
    (r"тарифчик\w*", "тариф"),
)

_COMPILED = tuple((re.compile(rf"(?<!{_W})(?:{p})(?!{_W})"), r) for p, r in RULES)
# Any rule at all, in one pass: most messages have no slang, and then no rule can change them
# (a rule only sees another's result when that one matched), so they skip the 35 passes.
_ANY = re.compile(rf"(?<!{_W})(?:{'|'.join(f'(?:{p})' for p, _ in RULES)})(?!{_W})")
SIGNATURE = hashlib.sha256(repr(RULES).encode()).hexdigest()[:8]  # changes with the rules


def canonical(text: str) -> str:
    """`text` (lowercase, ё as е) with slang and variants written one way."""
    if _ANY.search(text) is None:
        return text
    for pattern, replacement in _COMPILED:
        text = pattern.sub(replacement, text)
    return text

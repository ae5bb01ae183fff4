"""Text normalisation the slot parsers share: what a subscriber types, with the differences
that do not matter (case, ё, dashes, spaces, emoji and punctuation) taken out."""

from __future__ import annotations

import unicodedata

_TRANSLATE = str.maketrans({"ё": "е", "Ё": "Е", "–": "-", "—": "-", "−": "-", "‒": "-"})


def norm(text: str) -> str:
    """NFKC (NBSP -> space, full-width digits), lower case, ё -> е, one kind of dash, one space."""
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE).lower()
    return " ".join(text.split())


_DROP_CATEGORIES = frozenset({"So", "Sk", "Cf", "Me", "Mn", "Co", "Cs", "Cn"})


def plain(text: str) -> str:
    """Letters and digits only: emoji and punctuation become spaces; lower case, ё -> е."""
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        if unicodedata.category(ch) in _DROP_CATEGORIES or not ch.isalnum():
            out.append(" ")
        else:
            out.append(ch.lower())
    return " ".join("".join(out).replace("ё", "е").split())

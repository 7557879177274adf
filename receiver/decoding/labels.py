"""CSV header labels: the API's field names as the platform writes them in each language.

Exports requested with `language` other than `enUs` may carry localised header rows. Matching
ignores case, accents, a byte-order mark, spaces, `_`, `-` and `.`, so `chat_id`, `Chat ID` and
`CHATID` all name `chatId`. To accept a new spelling, add it to `LABELS`.
"""

from __future__ import annotations

import unicodedata

from storage.schema import API_FIELDS

# field -> language -> accepted labels (the first is the platform's; later ones are variants seen
# or expected in the wild).
LABELS: dict[str, dict[str, tuple[str, ...]]] = {
    "id": {"enUs": ("ID",), "esEs": ("ID",), "ptBr": ("ID",)},
    "chatId": {"enUs": ("Chat ID",), "esEs": ("ID del chat",), "ptBr": ("ID do chat",)},
    "chatThreadId": {
        "enUs": ("Chat thread ID", "Thread ID"),
        "esEs": ("ID del hilo del chat", "ID del hilo"),
        "ptBr": ("ID da thread do chat", "ID da thread", "ID do tópico"),
    },
    "content": {"enUs": ("Content",), "esEs": ("Contenido",), "ptBr": ("Conteúdo",)},
    "rawContent": {
        "enUs": ("Raw content", "Original content"),
        "esEs": ("Contenido sin procesar", "Contenido original", "Contenido bruto"),
        "ptBr": ("Conteúdo bruto", "Conteúdo original", "Conteúdo sem processamento"),
    },
    "externalId": {"enUs": ("External ID",), "esEs": ("ID externo",), "ptBr": ("ID externo",)},
    "role": {"enUs": ("Role",), "esEs": ("Rol", "Papel"), "ptBr": ("Papel", "Função")},
    "senderId": {
        "enUs": ("Sender ID",),
        "esEs": ("ID del remitente",),
        "ptBr": ("ID do remetente",),
    },
    "createdAt": {
        "enUs": ("Created at", "Created"),
        "esEs": ("Creado en", "Creado el", "Fecha de creación"),
        "ptBr": ("Criado em", "Data de criação"),
    },
    "updatedAt": {
        "enUs": ("Updated at", "Updated"),
        "esEs": ("Actualizado en", "Actualizado el", "Fecha de actualización"),
        "ptBr": ("Atualizado em", "Data de atualização"),
    },
}

_IGNORED = frozenset(" _-.\t\ufeff")


def normalise(label: str) -> str:
    """The form labels are compared in: no accents, no case, no spacing or punctuation."""
    decomposed = unicodedata.normalize("NFKD", label.strip().lstrip("\ufeff"))
    return "".join(
        char
        for char in decomposed.casefold()
        if char not in _IGNORED and not unicodedata.combining(char)
    )


def _build_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for field, languages in LABELS.items():
        spellings = [field, *(label for labels in languages.values() for label in labels)]
        for spelling in spellings:
            key = normalise(spelling)
            if index.setdefault(key, field) != field:
                raise ValueError(f"label {spelling!r} names both {index[key]} and {field}")
    return index


_INDEX = _build_index()
if set(LABELS) != set(API_FIELDS):
    raise ValueError("LABELS must cover exactly the API fields")


def field_for(label: str) -> str | None:
    """The API field a header label names, or None when it is not one of ours."""
    return _INDEX.get(normalise(label))


def map_header(labels: list[str]) -> list[str]:
    """API names for a header row; unknown labels are kept as written (without BOM/spaces)."""
    names = []
    for position, label in enumerate(labels):
        field = field_for(label)
        cleaned = label.strip().lstrip("\ufeff").strip()
        names.append(field or cleaned or f"column_{position + 1}")
    return names

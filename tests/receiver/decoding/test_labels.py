"""The header-label table: each language's labels name the API's fields."""

from __future__ import annotations

import pytest

from receiver.decoding.labels import LABELS, field_for, map_header
from storage.schema import API_FIELDS


@pytest.mark.parametrize("language", ["enUs", "esEs", "ptBr"])
def test_every_field_has_labels_in_every_language_that_map_back(language: str) -> None:
    for field in API_FIELDS:
        labels = LABELS[field][language]
        assert labels
        assert all(field_for(label) == field for label in labels)


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ("createdAt", "createdAt"),
        ("created_at", "createdAt"),
        ("  CREATED AT ", "createdAt"),
        ("\ufeffID", "id"),
        ("Conteudo", "content"),
        ("CONTEÚDO BRUTO", "rawContent"),
        ("ID del hilo del chat", "chatThreadId"),
        ("id-do-remetente", "senderId"),
        ("Actualizado en", "updatedAt"),
        ("Papel", "role"),
    ],
)
def test_matching_ignores_case_accents_spacing_and_a_bom(label: str, field: str) -> None:
    assert field_for(label) == field


def test_unknown_labels_are_kept_as_written() -> None:
    assert map_header(["\ufeff ID ", "Ticket Nº", "", "Created at"]) == [
        "id",
        "Ticket Nº",
        "column_3",
        "createdAt",
    ]

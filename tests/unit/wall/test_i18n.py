"""Every string exists in Vietnamese and English, with the same placeholders."""

from __future__ import annotations

import string

import pytest

from services.common.figures import Standing as Status
from services.metrics.wall.i18n import (
    CLIENT_KEYS,
    LANGS,
    STATUS_ICONS,
    STRINGS,
    fmt_day,
    fmt_int,
    fmt_pct,
    status_label,
)


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    vi, en = STRINGS["vi"], STRINGS["en"]
    assert set(vi) == set(en)
    for key in vi:
        assert vi[key].strip() and en[key].strip(), key
        assert placeholders(vi[key]) == placeholders(en[key]), key


@pytest.mark.parametrize("lang", LANGS)
def test_every_status_has_words_and_a_shape(lang: str) -> None:
    for status in Status:
        assert status_label(lang, status)  # type: ignore[arg-type]
        assert STATUS_ICONS[status].strip()
    assert len(set(STATUS_ICONS.values())) == len(Status)


def test_client_strings_exist() -> None:
    for lang in LANGS:
        assert set(CLIENT_KEYS) <= set(STRINGS[lang])


def test_vietnamese_and_english_number_formats() -> None:
    assert fmt_int(11703, "vi") == "11.703"
    assert fmt_int(11703, "en") == "11,703"
    assert fmt_pct(0.9994, "vi", 2) == "99,94 %"
    assert fmt_pct(0.9994, "en", 2) == "99.94 %"
    assert fmt_pct(None, "en") == "–"


def test_a_rate_just_under_target_is_never_rounded_up_to_it() -> None:
    assert fmt_pct(0.9996, "en") == "99.9 %"


def test_days() -> None:
    assert fmt_day("2026-11-02", "vi") == "2/11"
    assert fmt_day("2026-11-02", "en") == "2 Nov"

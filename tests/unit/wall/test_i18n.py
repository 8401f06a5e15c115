"""Every string exists in Vietnamese and English, with the same placeholders."""

from __future__ import annotations

import string
from datetime import UTC, datetime

import pytest

from services.common.figures import Standing as Status
from services.common.units import VN_TZ
from services.wall.i18n import (
    CLIENT_KEYS,
    LANGS,
    STATUS_ICONS,
    STRINGS,
    fmt_day,
    fmt_time,
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


CALQUES = {
    "vi": ("worker", "(day)", "ngân sách lỗi", "sự kiện", "Im lặng", "đang mở"),
    "en": ("worker", "(day)", "error budget", "Silent"),
}


@pytest.mark.parametrize("lang", LANGS)
def test_no_software_words_or_calques_reach_the_operator(lang: str) -> None:
    for key, value in STRINGS[lang].items():  # type: ignore[index]
        assert not any(word in value for word in CALQUES[lang]), key


def test_the_indicator_and_its_target_have_different_names() -> None:
    # "Chỉ tiêu" named both columns; an IOC writes "Chỉ số" and "Mục tiêu".
    vi, en = STRINGS["vi"], STRINGS["en"]
    assert (vi["kpi"], vi["target"]) == ("Chỉ số", "Mục tiêu")
    assert (en["kpi"], en["target"]) == ("Indicator", "Target")
    assert not any("Chỉ tiêu" in v or "chỉ tiêu" in v for v in vi.values())


def test_the_live_clock_is_in_vietnam_time() -> None:
    at = datetime(2026, 12, 4, 3, 15, 2, tzinfo=UTC)
    assert fmt_time(at, "vi") == fmt_time(at.astimezone(VN_TZ), "en") == "10:15:02"


def test_days() -> None:
    assert fmt_day("2026-11-02", "vi") == "2/11"
    assert fmt_day("2026-11-02", "en") == "2 Nov"

"""Light and dark: colours come from the palette and text always reads well on its bubble."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chase.schemas import ChatMessage, UserRef
from client.qt.chat_view import ChatView
from client.qt.models import MessageListModel
from client.qt.qt import QApplication, QColor, QImage, QPalette, QSettings
from client.qt.theme import (
    MIN_CONTRAST,
    Colours,
    ThemeChoice,
    ThemeManager,
    contrast,
    dark_palette,
    is_dark,
    light_palette,
)

ME, BOB = UserRef(id=1, username="alice"), UserRef(id=2, username="bob")


@pytest.fixture
def themes(qapp: Any, tmp_path: Path) -> Any:
    manager = ThemeManager(qapp, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    yield manager
    manager.apply(ThemeChoice.SYSTEM)


@pytest.mark.parametrize("palette", [light_palette, dark_palette], ids=["light", "dark"])
def test_every_text_colour_reads_well_on_its_bubble(qapp: Any, palette: Any) -> None:
    colours = Colours.from_palette(palette())
    for text, bubble in ((colours.text, colours.other_bubble), (colours.own_text, colours.own_bubble),
                         (colours.failed_text, colours.failed_bubble), (colours.header, colours.other_bubble),
                         (colours.own_header, colours.own_bubble), (colours.link, colours.other_bubble)):
        assert contrast(text, bubble) >= MIN_CONTRAST, (text.name(), bubble.name())


def test_a_palette_that_pairs_light_text_with_light_bubbles_still_gives_dark_text(qapp: Any) -> None:
    # The reported bug: a dark system theme's white text drawn on fixed light bubbles.
    palette = QPalette(light_palette())
    palette.setColor(QPalette.ColorRole.Text, QColor("#ffffff"))
    colours = Colours.from_palette(palette)
    assert contrast(colours.text, colours.other_bubble) >= MIN_CONTRAST
    assert colours.text.lightness() < 100


def test_forcing_dark_then_back_to_the_system(themes: Any, qapp: Any, tmp_path: Path) -> None:
    system_base = qapp.palette().color(QPalette.ColorRole.Base)
    themes.apply(ThemeChoice.DARK)
    assert is_dark(qapp.palette()) and qapp.style().name() == "fusion"
    # Kept for the next start.
    assert ThemeManager(qapp, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)).choice is ThemeChoice.DARK
    themes.apply(ThemeChoice.LIGHT)
    assert not is_dark(qapp.palette())
    themes.apply(ThemeChoice.SYSTEM)
    assert qapp.palette().color(QPalette.ColorRole.Base) == system_base


def _darkest_and_bubble(image: QImage, bubble: QColor) -> tuple[QColor, int]:
    """The pixel farthest in lightness from ``bubble`` among pixels inside bubbles, and the number
    of pixels that have exactly the bubble's colour."""
    count, far, far_gap = 0, bubble, -1
    for y in range(image.height()):
        for x in range(image.width()):
            pixel = image.pixelColor(x, y)
            if pixel.rgb() == bubble.rgb():
                count += 1
            elif abs(pixel.lightness() - bubble.lightness()) > far_gap and _near_bubble(image, x, y, bubble):
                far, far_gap = pixel, abs(pixel.lightness() - bubble.lightness())
    return far, count


def _near_bubble(image: QImage, x: int, y: int, bubble: QColor) -> bool:
    # Text pixels are surrounded by bubble pixels a few pixels away on both sides.
    left = image.pixelColor(max(0, x - 6), y).rgb() == bubble.rgb()
    right = image.pixelColor(min(image.width() - 1, x + 6), y).rgb() == bubble.rgb()
    return left and right


@pytest.mark.parametrize("choice", [ThemeChoice.LIGHT, ThemeChoice.DARK])
def test_the_drawn_text_contrasts_with_its_bubble(themes: Any, qtbot: Any, choice: ThemeChoice) -> None:
    themes.apply(choice)
    model = MessageListModel(ME.id)
    model.set_messages([ChatMessage(id=1, sender=BOB, recipient_id=None, body="Readable text on any theme",
                                    created_at=datetime(2026, 1, 1, 12, 30, tzinfo=UTC), client_msg_id="c1")])
    view = ChatView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(500, 200)
    view.show()
    qtbot.waitExposed(view)
    image = view.viewport().grab().toImage()
    colours = Colours.from_palette(QApplication.instance().palette())
    text, bubble_pixels = _darkest_and_bubble(image, colours.other_bubble)
    assert bubble_pixels > 500  # the bubble is drawn in the palette's colour
    assert contrast(text, colours.other_bubble) >= MIN_CONTRAST, (text.name(), colours.other_bubble.name())
    assert is_dark(QApplication.instance().palette()) is (choice is ThemeChoice.DARK)

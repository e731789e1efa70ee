"""Light and dark: every colour the client draws comes from the palette, so it follows the system.

By default the app keeps the platform's style and palette (a dark desktop gives a dark app).
The person can force light or dark (View menu): the app then uses Qt's Fusion style with a
palette of its own, the same on every platform. Message bubbles, names and text are derived
from whatever palette is in use (:class:`Colours`), and the text colour is checked against its
bubble: if the palette pairs them badly, black or white is used instead, whichever reads better.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from client.qt.qt import QApplication, QColor, QFont, QPalette, QSettings, QStyleFactory, Qt, QWidget

THEME_KEY = "appearance/theme"
#: WCAG's minimum contrast for body text.
MIN_CONTRAST = 4.5


class ThemeChoice(StrEnum):
    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


def saved_theme(settings: QSettings) -> ThemeChoice:
    try:
        return ThemeChoice(str(settings.value(THEME_KEY, ThemeChoice.SYSTEM.value)))
    except ValueError:
        return ThemeChoice.SYSTEM


def luminance(colour: QColor) -> float:
    """Relative luminance (WCAG 2), 0 for black to 1 for white."""
    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4
    return 0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF()) + 0.0722 * channel(colour.blueF())


def contrast(a: QColor, b: QColor) -> float:
    """The WCAG contrast ratio of two colours, from 1 (same) to 21 (black on white)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def blend(a: QColor, b: QColor, share: float) -> QColor:
    """``a`` moved ``share`` (0..1) of the way towards ``b``."""
    return QColor.fromRgbF(a.redF() + (b.redF() - a.redF()) * share,
                           a.greenF() + (b.greenF() - a.greenF()) * share,
                           a.blueF() + (b.blueF() - a.blueF()) * share)


def readable_on(background: QColor, preferred: QColor, minimum: float = MIN_CONTRAST) -> QColor:
    """``preferred`` if it reads well on ``background``, else black or white (the better one)."""
    if contrast(preferred, background) >= minimum:
        return preferred
    black, white = QColor("#000000"), QColor("#ffffff")
    return black if contrast(black, background) >= contrast(white, background) else white


def is_dark(palette: QPalette) -> bool:
    return luminance(palette.color(QPalette.ColorRole.Base)) < 0.3


@dataclass(frozen=True)
class Colours:
    """What the chat view draws with, derived from a palette."""

    own_bubble: QColor
    other_bubble: QColor
    failed_bubble: QColor
    text: QColor             # message text on either bubble
    own_text: QColor
    failed_text: QColor
    header: QColor           # sender and time
    own_header: QColor
    failed_header: QColor
    link: QColor
    own_link: QColor
    separator: QColor        # date separators
    unread_line: QColor      # the "new messages" line
    system_text: QColor      # a room's membership events ("bob joined"), on the view's background
    error: QColor            # problems shown in labels

    @classmethod
    def from_palette(cls, palette: QPalette) -> Colours:
        role = QPalette.ColorRole
        base, text = palette.color(role.Base), palette.color(role.Text)
        highlight = palette.color(role.Highlight)
        dark = is_dark(palette)
        own = blend(base, highlight, 0.35 if dark else 0.2)
        other = blend(base, text, 0.12 if dark else 0.07)
        red = QColor("#ff5c5c") if dark else QColor("#b00020")
        failed = blend(base, red, 0.25 if dark else 0.12)
        own_text, other_text = readable_on(own, text), readable_on(other, text)
        link = palette.color(role.Link)
        return cls(
            own_bubble=own, other_bubble=other, failed_bubble=failed,
            text=other_text, own_text=own_text, failed_text=readable_on(failed, text),
            header=readable_on(other, blend(other_text, other, 0.3)),
            own_header=readable_on(own, blend(own_text, own, 0.3)),
            failed_header=readable_on(failed, red),
            link=readable_on(other, link), own_link=readable_on(own, link),
            separator=blend(text, base, 0.4),
            unread_line=readable_on(base, red, 3.0),
            system_text=readable_on(base, blend(text, base, 0.4)),
            error=readable_on(palette.color(role.Window), red),
        )


def tint(widget: QWidget, colour: QColor) -> None:
    """Draw ``widget``'s text in ``colour`` (set again when the palette changes)."""
    palette = widget.palette()
    palette.setColor(QPalette.ColorRole.WindowText, colour)
    widget.setPalette(palette)


def emphasised(widget: QWidget, scale: float) -> None:
    """A bold font ``scale`` times the widget's size: a title, drawn in the palette's colours
    (a style sheet would pin them to the palette of the moment)."""
    font = QFont(widget.font())
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * scale)
    widget.setFont(font)


def dark_palette() -> QPalette:
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    palette = QPalette()
    for name, value in (
        (role.Window, "#26282b"), (role.WindowText, "#e8e8e8"), (role.Base, "#1b1c1e"),
        (role.AlternateBase, "#2a2c30"), (role.Text, "#e8e8e8"), (role.Button, "#33363a"),
        (role.ButtonText, "#e8e8e8"), (role.BrightText, "#ffffff"), (role.Highlight, "#3d7bd9"),
        (role.HighlightedText, "#ffffff"), (role.Link, "#7ab8ff"), (role.LinkVisited, "#b89cff"),
        (role.PlaceholderText, "#8d9096"), (role.ToolTipBase, "#33363a"), (role.ToolTipText, "#e8e8e8"),
        (role.Light, "#44474c"), (role.Midlight, "#3a3d41"), (role.Mid, "#2d2f33"),
        (role.Dark, "#17181a"), (role.Shadow, "#000000"),
    ):
        palette.setColor(name, QColor(value))
    for name in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(group.Disabled, name, QColor("#7b7e83"))
    return palette


def light_palette() -> QPalette:
    fusion = QStyleFactory.create("Fusion")
    palette = fusion.standardPalette() if fusion is not None else QPalette()
    palette.setColor(QPalette.ColorRole.Link, QColor("#0b57d0"))
    return palette


#: The platform's own style and palette, taken before the app first changes them.
_SYSTEM: tuple[str, QPalette] | None = None


class ThemeManager:
    """Applies the chosen theme to the whole app, and remembers the choice."""

    def __init__(self, app: QApplication, settings: QSettings) -> None:
        global _SYSTEM
        self._app, self._settings = app, settings
        if _SYSTEM is None:
            _SYSTEM = (app.style().name() if app.style() is not None else "fusion", QPalette(app.palette()))
        # What the platform gave us, to go back to when the choice is "system" again.
        self._system_style, self._system_palette = _SYSTEM
        self.choice = saved_theme(settings)

    def apply(self, choice: ThemeChoice | None = None) -> None:
        """Use ``choice`` (default: the saved one) now, and remember it."""
        if choice is not None:
            self.choice = choice
            self._settings.setValue(THEME_KEY, choice.value)
        hints = self._app.styleHints()
        if self.choice is ThemeChoice.SYSTEM:
            hints.unsetColorScheme()
            self._app.setStyle(self._system_style)
            self._app.setPalette(self._system_palette)
            return
        hints.setColorScheme(Qt.ColorScheme.Dark if self.choice is ThemeChoice.DARK else Qt.ColorScheme.Light)
        self._app.setStyle("Fusion")
        self._app.setPalette(dark_palette() if self.choice is ThemeChoice.DARK else light_palette())

"""The chat view: a list of message bubbles, drawn as plain text, that wraps long lines.

A QListView over :class:`~client.qt.models.MessageListModel` with a small delegate: the
delegate measures each bubble for the current width (so resizing re-wraps) and draws the
header with ``QPainter.drawText`` and the body through a QTextDocument filled with
``setPlainText``: neither ever interprets markup. The document wraps at word boundaries and
breaks a word only when it is longer than a line (a pasted URL).

One's own messages not stored yet are drawn faded, with what is happening to them where the
time would be; one the server refused is drawn in red with the reason.
"""

from __future__ import annotations

from client.core.outbox import PendingState
from client.qt.models import MessageRoles
from client.qt.qt import (
    QAbstractItemView,
    QColor,
    QFont,
    QFontMetrics,
    QListView,
    QModelIndex,
    QPainter,
    QRect,
    QSize,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    Qt,
    QTextDocument,
    QTextOption,
    pyqtSignal,
)

PAD = 8          # inside a bubble
GAP = 4          # between bubbles
MARGIN = 10      # between a bubble and the view's edge
MAX_SHARE = 0.75  # a bubble takes at most this share of the width
OWN_COLOUR = QColor("#d7ecff")
OTHER_COLOUR = QColor("#f0f0f0")
HEADER_COLOUR = QColor("#555555")
# Not stored yet: a paler bubble, text faded less so it stays easy to read.
PENDING_BUBBLE_OPACITY = 0.5
PENDING_TEXT_OPACITY = 0.7
FAILED_COLOUR = QColor("#fde4e4")
FAILED_HEADER_COLOUR = QColor("#b00020")
# The header (sender and time, or a pending message's status) wraps if a reason is long.
HEADER_FLAGS = Qt.TextFlag.TextWordWrap.value


def body_document(text: str, font: QFont, width: int) -> QTextDocument:
    """``text`` laid out as plain text (never markup), wrapped to ``width`` pixels."""
    document = QTextDocument()
    document.setDefaultFont(font)
    document.setDocumentMargin(0)
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    document.setDefaultTextOption(option)
    document.setPlainText(text)
    document.setTextWidth(width)
    return document


class MessageDelegate(QStyledItemDelegate):
    def __init__(self, view: QListView) -> None:
        super().__init__(view)
        self._view = view

    @staticmethod
    def _header_font(base: QFont, index: QModelIndex) -> QFont:
        font = QFont(base)
        font.setBold(True)
        font.setItalic(bool(index.data(MessageRoles.PENDING)))
        font.setPointSizeF(max(6.0, base.pointSizeF() * 0.9))
        return font

    def _bubble_width(self) -> int:
        return max(80, int((self._view.viewport().width() - 2 * MARGIN) * MAX_SHARE))

    @staticmethod
    def _header(index: QModelIndex) -> str:
        return f"{index.data(MessageRoles.SENDER)}  {index.data(MessageRoles.TIME)}"

    def _layout(self, option: QStyleOptionViewItem,
                index: QModelIndex) -> tuple[QRect, QRect, QRect, QTextDocument]:
        """The bubble, header and body rectangles for ``index`` in ``option.rect``, and the body."""
        inner = self._bubble_width() - 2 * PAD
        header_box = QFontMetrics(self._header_font(option.font, index)).boundingRect(
            0, 0, inner, 10_000, HEADER_FLAGS, self._header(index))
        body = body_document(index.data(MessageRoles.BODY) or "", option.font, inner)
        body_width = min(inner, int(body.idealWidth()) + 1)
        body_height = int(body.size().height()) + 1
        width = max(header_box.width(), body_width) + 2 * PAD
        height = header_box.height() + body_height + 2 * PAD + 2
        own = bool(index.data(MessageRoles.OWN))
        left = option.rect.right() - MARGIN - width if own else option.rect.left() + MARGIN
        bubble = QRect(left, option.rect.top() + GAP // 2, width, height)
        header_rect = QRect(left + PAD, bubble.top() + PAD, inner, header_box.height())
        body_rect = QRect(left + PAD, header_rect.bottom() + 2, body_width, body_height)
        return bubble, header_rect, body_rect, body

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        option.rect = QRect(0, 0, self._view.viewport().width(), 0)
        bubble = self._layout(option, index)[0]
        return QSize(self._view.viewport().width(), bubble.height() + GAP)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        bubble, header_rect, body_rect, body = self._layout(option, index)
        pending = index.data(MessageRoles.PENDING)
        failed = pending == PendingState.FAILED
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        faded = bool(pending) and not failed
        if faded:
            painter.setOpacity(PENDING_BUBBLE_OPACITY)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(FAILED_COLOUR if failed else OWN_COLOUR if index.data(MessageRoles.OWN) else OTHER_COLOUR)
        painter.drawRoundedRect(bubble, 8, 8)
        if faded:
            painter.setOpacity(PENDING_TEXT_OPACITY)
        painter.setPen(FAILED_HEADER_COLOUR if failed else HEADER_COLOUR)
        painter.setFont(self._header_font(option.font, index))
        painter.drawText(header_rect, HEADER_FLAGS, self._header(index))
        painter.translate(body_rect.topLeft())
        body.drawContents(painter)
        painter.restore()


class ChatView(QListView):
    """Emits :attr:`reached_top` when the user scrolls to the top (time to load older messages)."""

    reached_top = pyqtSignal()

    def __init__(self) -> None:
        super().__init__()
        self.setItemDelegate(MessageDelegate(self))
        self.setWordWrap(True)
        self.setUniformItemSizes(False)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.verticalScrollBar().valueChanged.connect(self._scrolled)
        self._follow_bottom = True

    def setModel(self, model) -> None:  # noqa: ANN001, N802 - Qt's name
        super().setModel(model)
        model.rowsAboutToBeInserted.connect(self._before_insert)
        model.rowsInserted.connect(self._after_insert)
        model.modelReset.connect(self.scrollToBottom)

    def _scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow_bottom = value >= bar.maximum() - 4
        if value == bar.minimum() and bar.maximum() > bar.minimum():
            self.reached_top.emit()

    def _before_insert(self, _parent: QModelIndex, first: int, _last: int) -> None:
        bar = self.verticalScrollBar()
        self._follow_bottom = bar.value() >= bar.maximum() - 4

    def _after_insert(self, _parent: QModelIndex, first: int, last: int) -> None:
        if first == 0 and self.model().rowCount() > last + 1:
            # Older messages came in above: keep the message the user was reading in place.
            self.scrollTo(self.model().index(last + 1, 0), QAbstractItemView.ScrollHint.PositionAtTop)
        elif self._follow_bottom:
            self.scrollToBottom()

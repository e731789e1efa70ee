"""The chat view: the timeline of one conversation, drawn as plain text bubbles.

A QListView over :class:`~client.qt.models.MessageListModel` with a small delegate. The
delegate measures each bubble for the current width (so resizing re-wraps) and draws the
header with ``QPainter.drawText`` and the body through a QTextDocument filled with
``setPlainText``: neither ever interprets markup. http(s) links found in the plain text
(:mod:`client.qt.linkify`) are underlined ranges of it, and only they open on a click.
Every colour comes from the palette (:class:`client.qt.theme.Colours`), so light and dark
both read well.

Above a message the delegate draws a date separator when the day changes, and the "New
messages" line above the first unread one. A room's membership event ("alice invited bob") is
a centred, muted line of its own: no bubble and no sender header (the time shows on hover),
selectable and copyable like any message. The view keeps to the bottom while the person is
there, whatever changes the layout (new rows, a resize, a notice shown below); scrolled up,
a "jump to latest" button counts what arrived meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from client.core.outbox import PendingState
from client.qt.linkify import Link, is_openable
from client.qt.models import MessageRoles
from client.qt.qt import (
    QAbstractItemView,
    QApplication,
    QColor,
    QContextMenuEvent,
    QCursor,
    QDesktopServices,
    QEvent,
    QFont,
    QFontMetrics,
    QFrame,
    QKeyEvent,
    QKeySequence,
    QListView,
    QMenu,
    QModelIndex,
    QMouseEvent,
    QPainter,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QResizeEvent,
    QSize,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    Qt,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextEdit,
    QTextOption,
    QToolButton,
    QUrl,
    QWidget,
    pyqtSignal,
)
from client.qt.theme import Colours

PAD = 8          # inside a bubble
GAP = 4          # between bubbles
MARGIN = 10      # between a bubble and the view's edge
MAX_SHARE = 0.75  # a bubble takes at most this share of the width
BAND = 8         # vertical space around a separator's text
# Not stored yet: a paler bubble, text faded less so it stays easy to read.
PENDING_BUBBLE_OPACITY = 0.5
PENDING_TEXT_OPACITY = 0.75
# The header (sender and time, or a pending message's status) wraps if a reason is long.
HEADER_FLAGS = Qt.TextFlag.TextWordWrap.value
NEW_MESSAGES = "New messages"
#: How close to the bottom (pixels) still counts as "at the bottom".
BOTTOM_SLACK = 4


def body_document(text: str, font: QFont, width: int, *, colour: QColor | None = None,
                  links: list[Link] | None = None, link_colour: QColor | None = None) -> QTextDocument:
    """``text`` laid out as plain text (never markup), wrapped to ``width`` pixels.

    With ``colour`` every character is drawn in it (not in the application palette's text
    colour, which may not suit the bubble); ``links`` are underlined anchors of the same text.
    """
    document = QTextDocument()
    document.setDefaultFont(font)
    document.setDocumentMargin(0)
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    document.setDefaultTextOption(option)
    document.setPlainText(text)
    if colour is not None:
        whole = QTextCursor(document)
        whole.select(QTextCursor.SelectionType.Document)
        plain = QTextCharFormat()
        plain.setForeground(colour)
        whole.mergeCharFormat(plain)
    for link in links or ():
        cursor = QTextCursor(document)
        cursor.setPosition(link.start)
        cursor.setPosition(link.end, QTextCursor.MoveMode.KeepAnchor)
        anchor = QTextCharFormat()
        anchor.setAnchor(True)
        anchor.setAnchorHref(link.url)
        anchor.setFontUnderline(True)
        if link_colour is not None:
            anchor.setForeground(link_colour)
        cursor.mergeCharFormat(anchor)
    document.setTextWidth(width)
    return document


@dataclass
class BubbleLayout:
    """Where one row's parts go, in view coordinates."""

    bands: list[tuple[QRect, str, bool]]  # separator rectangles: (rect, text, is the unread line)
    bubble: QRect
    header: QRect
    body: QRect
    document: QTextDocument


class MessageDelegate(QStyledItemDelegate):
    def __init__(self, view: QListView) -> None:
        super().__init__(view)
        self._view = view

    def colours(self) -> Colours:
        return Colours.from_palette(self._view.palette())

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

    @staticmethod
    def _system_font(base: QFont) -> QFont:
        font = QFont(base)
        font.setItalic(True)
        font.setPointSizeF(max(6.0, base.pointSizeF() * 0.9))
        return font

    def layout(self, rect: QRect, font: QFont, index: QModelIndex) -> BubbleLayout:
        """The separators, bubble, header and body of ``index`` drawn in ``rect``.

        A membership event's "bubble" is only the area of its centred line (no header).
        """
        colours = self.colours()
        own = bool(index.data(MessageRoles.OWN))
        failed = index.data(MessageRoles.PENDING) == PendingState.FAILED
        top = rect.top()
        bands: list[tuple[QRect, str, bool]] = []
        band_height = QFontMetrics(font).height() + 2 * BAND
        for text, unread in ((index.data(MessageRoles.DAY_BREAK) or "", False),
                             (NEW_MESSAGES if index.data(MessageRoles.UNREAD_BREAK) else "", True)):
            if text:
                bands.append((QRect(rect.left(), top, rect.width(), band_height), text, unread))
                top += band_height
        if index.data(MessageRoles.EVENT):
            return self._system_layout(rect, top, font, index, bands)
        inner = self._bubble_width() - 2 * PAD
        header_box = QFontMetrics(self._header_font(font, index)).boundingRect(
            0, 0, inner, 10_000, HEADER_FLAGS, self._header(index))
        text_colour = colours.failed_text if failed else colours.own_text if own else colours.text
        body = body_document(index.data(MessageRoles.BODY) or "", font, inner, colour=text_colour,
                             links=index.data(MessageRoles.LINKS) or [],
                             link_colour=colours.own_link if own else colours.link)
        body_width = min(inner, int(body.idealWidth()) + 1)
        body_height = int(body.size().height()) + 1
        width = max(header_box.width(), body_width) + 2 * PAD
        height = header_box.height() + body_height + 2 * PAD + 2
        left = rect.right() - MARGIN - width if own else rect.left() + MARGIN
        bubble = QRect(left, top + GAP // 2, width, height)
        header_rect = QRect(left + PAD, bubble.top() + PAD, inner, header_box.height())
        body_rect = QRect(left + PAD, header_rect.bottom() + 2, body_width, body_height)
        return BubbleLayout(bands, bubble, header_rect, body_rect, body)

    def _system_layout(self, rect: QRect, top: int, font: QFont, index: QModelIndex,
                       bands: list[tuple[QRect, str, bool]]) -> BubbleLayout:
        inner = max(80, rect.width() - 2 * MARGIN - 2 * PAD)
        body = body_document(index.data(MessageRoles.BODY) or "", self._system_font(font), inner,
                             colour=self.colours().system_text)
        option = body.defaultTextOption()
        option.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        body.setDefaultTextOption(option)
        body_width = min(inner, int(body.idealWidth()) + 1)
        body.setTextWidth(body_width)
        body_height = int(body.size().height()) + 1
        left = rect.left() + (rect.width() - body_width) // 2
        body_rect = QRect(left, top + GAP // 2 + PAD // 2, body_width, body_height)
        area = body_rect.adjusted(-PAD, -PAD // 2, PAD, PAD // 2)
        return BubbleLayout(bands, area, QRect(left, body_rect.top(), body_width, 0), body_rect, body)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        width = self._view.viewport().width()
        laid = self.layout(QRect(0, 0, width, 0), option.font, index)
        return QSize(width, laid.bubble.bottom() + 1 + GAP // 2)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        laid = self.layout(option.rect, option.font, index)
        colours = self.colours()
        pending = index.data(MessageRoles.PENDING)
        failed = pending == PendingState.FAILED
        own = bool(index.data(MessageRoles.OWN))
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for rect, text, unread in laid.bands:
            self._paint_band(painter, option.font, rect, text,
                             colours.unread_line if unread else colours.separator)
        if index.data(MessageRoles.EVENT):
            self._paint_system_line(painter, option, laid)
            painter.restore()
            return
        faded = bool(pending) and not failed
        if faded:
            painter.setOpacity(PENDING_BUBBLE_OPACITY)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colours.failed_bubble if failed else colours.own_bubble if own else colours.other_bubble)
        painter.drawRoundedRect(laid.bubble, 8, 8)
        if option.state & QStyle.StateFlag.State_Selected:
            painter.setOpacity(1.0)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(self._view.palette().color(self._view.palette().ColorRole.Highlight))
            painter.drawRoundedRect(laid.bubble.adjusted(0, 0, -1, -1), 8, 8)
        if faded:
            painter.setOpacity(PENDING_TEXT_OPACITY)
        painter.setPen(colours.failed_header if failed else colours.own_header if own else colours.header)
        painter.setFont(self._header_font(option.font, index))
        painter.drawText(laid.header, HEADER_FLAGS, self._header(index))
        painter.translate(laid.body.topLeft())
        laid.document.drawContents(painter)
        painter.restore()

    def _paint_system_line(self, painter: QPainter, option: QStyleOptionViewItem, laid: BubbleLayout) -> None:
        if option.state & QStyle.StateFlag.State_Selected:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(self._view.palette().color(self._view.palette().ColorRole.Highlight))
            painter.drawRoundedRect(laid.bubble.adjusted(0, 0, -1, -1), 8, 8)
        painter.translate(laid.body.topLeft())
        laid.document.drawContents(painter)

    @staticmethod
    def _paint_band(painter: QPainter, font: QFont, rect: QRect, text: str, colour: QColor) -> None:
        label_font = QFont(font)
        label_font.setBold(True)
        painter.setFont(label_font)
        metrics = QFontMetrics(label_font)
        label_width = metrics.horizontalAdvance(text) + 16
        middle = rect.center().y()
        painter.setPen(colour)
        left_end = rect.center().x() - label_width // 2
        painter.drawLine(rect.left() + MARGIN, middle, left_end, middle)
        painter.drawLine(left_end + label_width, middle, rect.right() - MARGIN, middle)
        painter.drawText(QRect(left_end, rect.top(), label_width, rect.height()),
                         Qt.AlignmentFlag.AlignCenter.value, text)

    # --- selecting part of a message's text: a read-only text box over its body -----------

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem,  # noqa: N802 - Qt's name
                     index: QModelIndex) -> QWidget:
        laid = self.layout(self._view.visualRect(index), self._view.font(), index)
        editor = QTextEdit(parent)
        editor.setObjectName("message_text")
        editor.setReadOnly(True)
        editor.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                       | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        editor.setFrameShape(QFrame.Shape.NoFrame)
        editor.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        editor.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        editor.setLineWrapMode(QTextEdit.LineWrapMode.FixedPixelWidth)
        editor.setLineWrapColumnOrWidth(laid.body.width())
        document = laid.document
        document.setParent(editor)
        editor.setDocument(document)  # the same plain text, colours and links as drawn
        colours = self.colours()
        palette = editor.palette()
        if index.data(MessageRoles.EVENT):
            bubble = self._view.palette().color(palette.ColorRole.Base)  # no bubble behind it
        else:
            bubble = colours.own_bubble if index.data(MessageRoles.OWN) else colours.other_bubble
        palette.setColor(palette.ColorRole.Base, bubble)
        editor.setPalette(palette)
        editor.viewport().setCursor(Qt.CursorShape.IBeamCursor)
        return editor

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem,  # noqa: N802
                             index: QModelIndex) -> None:
        laid = self.layout(option.rect, option.font, index)
        editor.setGeometry(laid.body.adjusted(0, 0, 2, 2))

    def setEditorData(self, editor: QWidget, index: QModelIndex) -> None:  # noqa: N802 - Qt's name
        pass  # the text is there from createEditor, and is never changed

    def setModelData(self, editor: QWidget, model: object, index: QModelIndex) -> None:  # noqa: N802
        pass  # read-only: nothing goes back to the model

    def link_at(self, index: QModelIndex, point: QPoint) -> str | None:
        """The http(s) address under ``point`` (view coordinates) in row ``index``, if any."""
        laid = self.layout(self._view.visualRect(index), self._view.font(), index)
        if not laid.body.contains(point):
            return None
        href = laid.document.documentLayout().anchorAt((point - laid.body.topLeft()).toPointF())
        return href if href and is_openable(href) else None


class ChatView(QListView):
    """Emits :attr:`reached_top` when the user scrolls to the top (time to load older messages).

    ``open_url`` opens a link (the desktop's browser by default; tests pass their own).
    """

    reached_top = pyqtSignal()
    #: The number shown on the jump button changed (0: at the bottom).
    unseen_changed = pyqtSignal(int)

    def __init__(self, open_url: Callable[[str], object] | None = None) -> None:
        super().__init__()
        self._open_url = open_url or (lambda url: QDesktopServices.openUrl(QUrl(url)))
        self.delegate = MessageDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setWordWrap(True)
        self.setUniformItemSizes(False)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setMouseTracking(True)
        self.setAccessibleName("Messages")
        # A double click opens the message's text for selecting part of it (Escape closes it).
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked)
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._range_changed)
        bar.actionTriggered.connect(lambda _action: self._user_scrolls())
        bar.sliderPressed.connect(self._user_scrolls)
        self._follow_bottom = True
        #: While set, the view keeps this row at its top (opened at the first unread message).
        self._anchor: QPersistentModelIndex | None = None
        self.unseen = 0
        self.jump_button = QToolButton(self)
        self.jump_button.setObjectName("jump_to_latest")
        self.jump_button.setToolTip("Jump to the latest message (End)")
        self.jump_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.jump_button.clicked.connect(self.jump_to_latest)
        self.jump_button.hide()

    # --- where the view is ----------------------------------------------------------------

    def setModel(self, model) -> None:  # noqa: ANN001, N802 - Qt's name
        super().setModel(model)
        model.rowsAboutToBeInserted.connect(self._before_insert)
        model.rowsInserted.connect(self._after_insert)
        model.modelReset.connect(lambda: self.open_at(None))

    @property
    def at_bottom(self) -> bool:
        return self._follow_bottom

    def open_at(self, row: int | None) -> None:
        """Show the conversation from ``row`` (the first unread one) at the top, or at its end."""
        self._set_unseen(0)
        if row is None or not (0 <= row < self.model().rowCount()):
            self._anchor = None
            self._follow_bottom = True
            self.scrollToBottom()
            return
        self._anchor = QPersistentModelIndex(self.model().index(row, 0))
        self._follow_bottom = False
        self._to_anchor()

    def _to_anchor(self) -> None:
        if self._anchor is not None and self._anchor.isValid():
            self.scrollTo(self.model().index(self._anchor.row(), 0), QAbstractItemView.ScrollHint.PositionAtTop)
            bar = self.verticalScrollBar()
            if bar.value() >= bar.maximum() - BOTTOM_SLACK:
                # Everything after the anchor fits: that is the bottom, keep to it from now on.
                self._anchor = None
                self._follow_bottom = True

    def jump_to_latest(self) -> None:
        self._anchor = None
        self._follow_bottom = True
        self.scrollToBottom()
        self._set_unseen(0)

    def _set_unseen(self, count: int) -> None:
        self.unseen = count
        self.jump_button.setText(f"↓  {count} new" if count else "↓  Latest")
        self.jump_button.adjustSize()
        self._place_jump_button()
        self.unseen_changed.emit(count)

    def _update_jump_button(self) -> None:
        bar = self.verticalScrollBar()
        self.jump_button.setVisible(not self._follow_bottom and bar.maximum() > bar.minimum())

    def _place_jump_button(self) -> None:
        viewport = self.viewport().geometry()
        size = self.jump_button.sizeHint()
        self.jump_button.setGeometry(viewport.right() - size.width() - 12, viewport.bottom() - size.height() - 12,
                                     size.width(), size.height())

    def _scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        at_bottom = value >= bar.maximum() - BOTTOM_SLACK
        if self._anchor is None:
            self._follow_bottom = at_bottom
        if at_bottom and self._anchor is None and self.unseen:
            self._set_unseen(0)
        if value == bar.minimum() and bar.maximum() > bar.minimum():
            self.reached_top.emit()
        self._update_jump_button()

    def _range_changed(self, _minimum: int, _maximum: int) -> None:
        # Rows grew or shrank, the window or a neighbour resized: keep what the person sees.
        if self._anchor is not None:
            self._to_anchor()
        elif self._follow_bottom:
            self.scrollToBottom()
        self._update_jump_button()

    def _user_scrolls(self) -> None:
        # The person takes over: no more holding the first unread message in place.
        if self._anchor is not None:
            self._anchor = None
            bar = self.verticalScrollBar()
            self._follow_bottom = bar.value() >= bar.maximum() - BOTTOM_SLACK

    def wheelEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt's name
        self._user_scrolls()
        super().wheelEvent(event)

    def _before_insert(self, _parent: QModelIndex, first: int, _last: int) -> None:
        if self._anchor is None:
            bar = self.verticalScrollBar()
            self._follow_bottom = bar.value() >= bar.maximum() - BOTTOM_SLACK

    def _after_insert(self, _parent: QModelIndex, first: int, last: int) -> None:
        rows = self.model().rowCount()
        if first == 0 and rows > last + 1:
            # Older messages came in above: keep the message the user was reading in place.
            self.scrollTo(self.model().index(last + 1, 0), QAbstractItemView.ScrollHint.PositionAtTop)
        elif self._follow_bottom:
            self.scrollToBottom()
        elif last == rows - 1:
            self._set_unseen(self.unseen + last - first + 1)
        self._update_jump_button()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._place_jump_button()
        if self._follow_bottom and self._anchor is None:
            self.scrollToBottom()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.viewport().update()

    # --- text: copy, links, context menu --------------------------------------------------

    def selected_text(self) -> str:
        """The bodies of the selected messages, in timeline order, one blank line apart."""
        rows = sorted(index.row() for index in self.selectionModel().selectedIndexes())
        return "\n\n".join(self.model().index(row, 0).data(MessageRoles.BODY) or "" for row in rows)

    def copy_selection(self) -> None:
        text = self.selected_text()
        if text:
            QApplication.clipboard().setText(text)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selection()
            return
        if event.key() == Qt.Key.Key_End:
            self.jump_to_latest()
            return
        if event.key() in (Qt.Key.Key_PageUp, Qt.Key.Key_PageDown, Qt.Key.Key_Up, Qt.Key.Key_Home):
            self._user_scrolls()
        super().keyPressEvent(event)

    def link_at(self, point: QPoint) -> str | None:
        index = self.indexAt(point)
        return self.delegate.link_at(index, point) if index.isValid() else None

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        over_link = self.link_at(event.position().toPoint()) is not None
        self.viewport().setCursor(Qt.CursorShape.PointingHandCursor if over_link else Qt.CursorShape.ArrowCursor)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        super().mouseReleaseEvent(event)
        if event.button() == Qt.MouseButton.LeftButton and not event.modifiers():
            url = self.link_at(event.position().toPoint())
            if url is not None:
                self._open_url(url)

    def context_menu(self, point: QPoint) -> QMenu | None:
        """The menu for the message at ``point`` (view coordinates): copy text, copy or open link."""
        index = self.indexAt(point)
        if not index.isValid():
            return None
        if not self.selectionModel().isSelected(index):
            self.setCurrentIndex(index)
        menu = QMenu(self)
        body = index.data(MessageRoles.BODY) or ""
        many = len(self.selectionModel().selectedIndexes()) > 1
        copy = menu.addAction("Copy selected messages" if many else "Copy text")
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.triggered.connect(self.copy_selection if many else lambda: QApplication.clipboard().setText(body))
        if not many:
            menu.addAction("Select text…").triggered.connect(lambda: self.edit(index))
        links = index.data(MessageRoles.LINKS) or []
        url = self.link_at(point) or (links[0].url if len(links) == 1 else None)
        if url is not None:
            menu.addAction("Copy link").triggered.connect(lambda: QApplication.clipboard().setText(url))
            menu.addAction("Open link").triggered.connect(lambda: self._open_url(url))
        menu.addSeparator()
        when = menu.addAction(index.data(MessageRoles.FULL_TIME) or "")
        when.setEnabled(False)
        return menu

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt's name
        menu = self.context_menu(event.pos())  # already in the viewport's coordinates
        if menu is not None:
            menu.exec(event.globalPos() if event.reason() == event.Reason.Mouse else QCursor.pos())

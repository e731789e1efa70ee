"""The one module that imports PyQt6: everything else in client/qt imports Qt names from here.

One import site means one place to switch bindings and one place that knows which Qt parts
are optional (QtMultimedia may be missing or have no audio device: sound then degrades).
"""

from __future__ import annotations

from PyQt6.QtCore import (
    QAbstractItemModel,
    QAbstractListModel,
    QByteArray,
    QConcatenateTablesProxyModel,
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSettings,
    QSize,
    QSortFilterProxyModel,
    QStandardPaths,
    QStringListModel,
    Qt,
    QTimer,
    QUrl,
    pyqtSignal,
)
from PyQt6.QtGui import (
    QAction,
    QActionGroup,
    QBrush,
    QCloseEvent,
    QColor,
    QContextMenuEvent,
    QCursor,
    QDesktopServices,
    QFont,
    QFontMetrics,
    QGuiApplication,
    QIcon,
    QImage,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPalette,
    QPixmap,
    QPolygon,
    QResizeEvent,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextOption,
)
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStatusBar,
    QStyle,
    QStyledItemDelegate,
    QStyleFactory,
    QStyleOptionViewItem,
    QSystemTrayIcon,
    QTextEdit,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)


def load_multimedia() -> tuple[type, type] | None:
    """(QMediaDevices, QSoundEffect), or None when QtMultimedia cannot load on this machine.

    Imported on demand, not with this module: loading it probes audio back-ends, which is slow
    and noisy, and a machine without them must still run the app (silently).
    """
    try:
        from PyQt6.QtMultimedia import QMediaDevices, QSoundEffect
    except ImportError:
        return None
    return QMediaDevices, QSoundEffect

__all__ = [
    "QAbstractItemModel", "QAbstractItemView", "QAbstractListModel", "QAction", "QActionGroup", "QApplication", "QBrush",
    "QByteArray", "QCheckBox", "QCloseEvent", "QColor", "QConcatenateTablesProxyModel",
    "QContextMenuEvent", "QCursor",
    "QDesktopServices", "QDialog", "QDialogButtonBox", "QEvent", "QFont", "QFontMetrics",
    "QFormLayout", "QFrame", "QGuiApplication", "QHBoxLayout", "QIcon", "QImage",
    "QItemSelectionModel", "QKeyEvent", "QKeySequence", "QLabel", "QLineEdit", "QListView",
    "QListWidget", "QListWidgetItem", "QMainWindow", "QMenu", "QMessageBox", "QModelIndex",
    "QMouseEvent", "QObject", "QPainter", "QPalette", "QPersistentModelIndex", "QPixmap",
    "QPlainTextEdit", "QPoint", "QPolygon", "QPushButton", "QRect", "QResizeEvent", "QSettings",
    "QShortcut", "QSize", "QSizePolicy", "QSortFilterProxyModel", "QSplitter", "QStandardPaths",
    "QStatusBar", "QStringListModel", "QStyle", "QStyleFactory", "QStyleOptionViewItem",
    "QStyledItemDelegate", "QSystemTrayIcon", "QTextCharFormat", "QTextCursor", "QTextDocument",
    "QTextEdit", "QTextOption", "QTimer", "QToolButton", "QToolTip", "QUrl", "QVBoxLayout",
    "QWidget", "Qt", "load_multimedia", "pyqtSignal",
]

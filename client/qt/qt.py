"""The one module that imports PyQt6: everything else in client/qt imports Qt names from here.

One import site means one place to switch bindings and one place that knows which Qt parts
are optional (QtMultimedia may be missing or have no audio device: sound then degrades).
"""

from __future__ import annotations

from PyQt6.QtCore import (
    QAbstractListModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSettings,
    QSize,
    QStandardPaths,
    Qt,
    QTimer,
    QUrl,
    pyqtSignal,
)
from PyQt6.QtGui import (
    QBrush,
    QCloseEvent,
    QColor,
    QFont,
    QFontMetrics,
    QIcon,
    QKeyEvent,
    QPainter,
    QPalette,
    QPixmap,
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
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStatusBar,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
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
    "QAbstractItemView", "QAbstractListModel", "QApplication", "QBrush", "QCheckBox", "QCloseEvent",
    "QColor", "QDialog", "QDialogButtonBox", "QEvent", "QFont", "QFontMetrics", "QFormLayout", "QFrame", "QHBoxLayout", "QIcon",
    "QKeyEvent", "QLabel", "QLineEdit", "QListView", "QMainWindow", "QMessageBox", "QModelIndex",
    "QObject", "QPainter", "QPalette", "QPersistentModelIndex", "QPixmap", "QPlainTextEdit",
    "QPushButton", "QRect", "QSettings", "QSize", "QSplitter", "QStandardPaths",
    "QStatusBar", "QStyle", "QStyleOptionViewItem", "QStyledItemDelegate", "QTextDocument",
    "QTextOption", "QTimer", "QUrl",
    "QVBoxLayout", "QWidget", "Qt", "load_multimedia", "pyqtSignal",
]

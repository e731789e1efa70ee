"""Render the desktop client's end-to-end encryption screens to docs/images/ (offscreen Qt):
e2ee-bar.png (the encrypted and verified states), e2ee-safety-number.png and
e2ee-recovery-key.png. The numbers and keys are made by the real code from fresh keys."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
OUT = ROOT / "docs" / "images"


def main() -> int:
    import vodozemac

    from client.core.e2ee.manager import recovery_key_text
    from client.core.e2ee.safety import fingerprint
    from client.qt.e2ee_widgets import EncryptionBar, RecoveryKeyDialog, SafetyNumberDialog
    from client.qt.qt import QApplication, QVBoxLayout, QWidget

    app = QApplication.instance() or QApplication(sys.argv)
    OUT.mkdir(parents=True, exist_ok=True)
    states = QWidget()
    layout = QVBoxLayout(states)
    for verified, changed in ((False, False), (True, False), (True, True)):
        bar = EncryptionBar()
        bar.show_private("bob", verified=verified, changed=changed)
        layout.addWidget(bar)
    public = EncryptionBar()
    public.show_public()
    layout.addWidget(public)
    states.resize(820, 200)
    alice, bob = vodozemac.Account(), vodozemac.Account()
    number = fingerprint({1: [("alice-laptop", alice.ed25519_key.to_base64())],
                          2: [("bob-phone", bob.ed25519_key.to_base64())]})
    safety = SafetyNumberDialog(None, "bob", number)
    recovery = RecoveryKeyDialog(None, recovery_key_text(vodozemac.PkDecryption().key.to_bytes()))
    for widget, name in ((states, "e2ee-bar.png"), (safety, "e2ee-safety-number.png"),
                         (recovery, "e2ee-recovery-key.png")):
        widget.show()
        app.processEvents()
        if not widget.grab().save(str(OUT / name)):
            print(f"could not save {name}", file=sys.stderr)
            return 1
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

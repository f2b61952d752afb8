"""Mails the live server sent: it runs with Django's file backend into `live.mail_dir` (tests/e2e/wharf.py).

Each file holds the messages of one connection, each followed by a line of 79 dashes.
"""

from __future__ import annotations

import email
import email.policy
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

SEPARATOR = re.compile(rb"^-{79}$", re.MULTILINE)
URL = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class Mail:
    to: list[str]
    subject: str
    body: str
    path: Path

    def links(self) -> list[str]:
        return URL.findall(self.body)


def mails(mail_dir: Path) -> list[Mail]:
    """Every mail in `mail_dir`, oldest file first."""
    found = []
    for path in sorted(mail_dir.glob("*.log"), key=lambda p: (p.stat().st_mtime, p.name)):
        for chunk in SEPARATOR.split(path.read_bytes()):
            if not chunk.strip():
                continue
            msg = email.message_from_bytes(chunk.strip() + b"\n", policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            part = msg.get_body(preferencelist=("plain", "html"))
            body = part.get_content() if part is not None else ""
            to = [addr.strip().lower() for addr in (msg.get("To") or "").split(",") if addr.strip()]
            found.append(Mail(to=to, subject=str(msg.get("Subject", "")), body=body, path=path))
    return found


def wait_for_mail(live, *, to: str, subject_contains: str = "", timeout: float = 10.0) -> Mail:
    """The newest mail to `to` (with `subject_contains` in its subject) the live server sent, waiting up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        matching = [m for m in mails(live.mail_dir) if to.lower() in m.to and subject_contains in m.subject]
        if matching:
            return matching[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no mail to {to!r} (subject containing {subject_contains!r}) within {timeout} s")
        time.sleep(0.1)

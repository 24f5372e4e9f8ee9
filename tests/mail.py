"""A real SMTP server for tests (aiosmtpd on a free port) and the mailbox it fills.

    def test_x(make_app, smtp_server):
        app = make_app(**smtp_server.settings)
        ...
        mail = smtp_server.mailbox.wait_for("fan@example.com")
        link = mail.link()

Messages are parsed with the default policy, so Japanese subjects come back decoded.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from bench.processes import free_port

LINK = re.compile(r"https?://\S+")


@dataclass
class Mail:
    to: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return str(self.message.get_body(preferencelist=("plain",)).get_content())  # type: ignore[union-attr]

    def link(self) -> str:
        found = LINK.findall(self.body)
        assert len(found) == 1, self.body
        return found[0]


@dataclass
class Mailbox:
    mails: list[Mail] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def add(self, mail: Mail) -> None:
        with self.arrived:
            self.mails.append(mail)
            self.arrived.notify_all()

    def to(self, address: str) -> list[Mail]:
        with self.arrived:
            return [m for m in self.mails if address in m.to]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> Mail:
        """The `count`-th mail to `address`, waiting for it to arrive (the state, not a time)."""
        with self.arrived:
            ok = self.arrived.wait_for(lambda: len(self.to_unlocked(address)) >= count, timeout)
            assert ok, f"no mail #{count} to {address}: {[m.to for m in self.mails]}"
            return self.to_unlocked(address)[count - 1]

    def to_unlocked(self, address: str) -> list[Mail]:
        return [m for m in self.mails if address in m.to]


class _Handler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mailbox.add(Mail(list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox

    @property
    def settings(self) -> dict[str, Any]:
        """Settings overrides that send the app's mail here."""
        return {
            "smtp_host": self.host,
            "smtp_port": self.port,
            "smtp_security": "none",
            "mail_from": "ふるさと <no-reply@furusato.test>",
        }


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    # Controller(port=0) does not work: start() connects to the port to check it is up.
    port = free_port()
    controller = Controller(_Handler(mailbox), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, mailbox)
    finally:
        controller.stop()


@pytest.fixture
def mailbox(smtp_server: SmtpServer) -> Mailbox:
    return smtp_server.mailbox

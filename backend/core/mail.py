"""Outgoing mail: SMTP when SMTP_HOST is set, else one file per mail under instance/mail/.

The file fallback is for the embedded run (`make run` on a laptop): the link a mail carries is
then read from the file, whose path is logged. A server deployment sets SMTP_HOST and friends
(README). Mail is sent by its caller (the request that causes it, or a worker task that sends
what was queued) with a 10 s timeout; a failure is logged and the caller decides what happens
(a "send again" button, a retry later).
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import time
import uuid
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from backend.config import Settings

log = logging.getLogger(__name__)
SMTP_TIMEOUT = 10.0


class MailError(RuntimeError):
    """The mail could not be handed to the SMTP server."""


def build(
    settings: Settings,
    to: str,
    subject: str,
    body: str,
    *,
    cte: str = "base64",
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject  # non-ASCII (Japanese) is RFC 2047-encoded by the policy
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="furusato")
    for name, value in (headers or {}).items():  # e.g. List-Unsubscribe
        msg[name] = value
    msg.set_content(body, cte=cte)
    return msg


def send(
    settings: Settings,
    to: str,
    subject: str,
    body: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> Path | None:
    """Send one plain-text mail (with extra `headers`, if any). Returns the file written in the
    embedded run, else None.

    Raises :class:`MailError` when the SMTP server cannot be reached or refuses the mail.
    """
    if not settings.smtp_host:
        # 8-bit text in the file, so whoever runs the app can read the link in it.
        return _write(
            settings.mail_folder, build(settings, to, subject, body, cte="8bit", headers=headers)
        )
    msg = build(settings, to, subject, body, headers=headers)
    try:
        if settings.smtp_security == "ssl":
            ctx = ssl.create_default_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT, context=ctx
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT)
        with smtp:
            if settings.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("mail to %s not sent: %s", to, type(exc).__name__)
        raise MailError(str(exc)) from None
    log.info("mail %s sent to %s", msg["Message-ID"], to)
    return None


def _write(folder: Path, msg: EmailMessage) -> Path:
    # 0700: a mail holds a sign-in link, only the app's user may read it.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(msg.as_bytes())
    log.info("mail to %s written to %s (SMTP_HOST is not set)", msg["To"], path)
    return path

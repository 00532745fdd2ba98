"""Secrets stay in the process: command lines are masked before any report, dump or metric shows them.

Masked by default (the value becomes `***`):
- options that look like secrets: `--db-password=x`, `--token x`, `--api-key=x`, `-secret x`;
- `KEY=value` arguments whose key looks like one: `PGPASSWORD=x`, `AWS_SECRET_ACCESS_KEY=x`;
- credentials in URLs: `postgres://user:x@host` becomes `postgres://user:***@host`;
- `-p<value>` (the password glued to the flag) after the MySQL and MariaDB clients.

`looseends.redact(r"--license\\s+\\S+", ...)` adds patterns: a match is masked whole, or only its group
named `secret` when the pattern has one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MASK = "***"
_WORDS = (
    r"(?:password|passwd|passphrase|pwd|secret|token|api[-_]?key|apikey|access[-_]?key|private[-_]?key"
    r"|credentials?|auth)"
)
_SECRET_OPTION = re.compile(rf"^(-{{1,2}}[\w.-]*{_WORDS}[\w.-]*)(?:([=:])(.*))?$", re.I)
_SECRET_ASSIGNMENT = re.compile(rf"^([A-Za-z_][\w.-]*{_WORDS}[\w.-]*=)(.+)$", re.I)
_URL_CREDENTIALS = re.compile(r"([a-zA-Z][\w+.-]*://[^/\s:@]*:)([^@\s/]+)(@)")
_GLUED_PASSWORD_CLIENTS = re.compile(r"(?:^|/)(?:mysql\w*|mariadb\w*)$")

_extra: list[re.Pattern[str]] = []


def redact(*patterns: str) -> None:
    """Mask what these regular expressions match in every command line looseends shows, from now on."""
    compiled = [re.compile(pattern) for pattern in patterns]
    _extra.extend(compiled)


def redact_command(command: str | Sequence[str]) -> str:
    """A command line with its secrets masked: argument by argument when the parts are known."""
    parts = command.split(" ") if isinstance(command, str) else [str(part) for part in command]
    masked: list[str] = []
    mask_next = False
    client = bool(parts) and bool(_GLUED_PASSWORD_CLIENTS.search(parts[0]))
    for part in parts:
        if mask_next and part and not part.startswith("-"):
            masked.append(MASK)
            mask_next = False
            continue
        shown = _argument(part, client)
        masked.append(shown)
        option = _SECRET_OPTION.match(part)
        mask_next = shown == part and option is not None and option.group(2) is None
    text = " ".join(masked)
    for pattern in _extra:
        text = pattern.sub(_masker, text)
    return text


def _argument(part: str, client: bool) -> str:
    option = _SECRET_OPTION.match(part)
    if option is not None and option.group(2) is not None:
        return f"{option.group(1)}{option.group(2)}{MASK}"
    assignment = _SECRET_ASSIGNMENT.match(part)
    if assignment is not None:
        return f"{assignment.group(1)}{MASK}"
    if client and len(part) > 2 and part.startswith("-p") and not part.startswith("--"):
        return f"-p{MASK}"
    return _URL_CREDENTIALS.sub(rf"\g<1>{MASK}\g<3>", part)


def _masker(match: re.Match[str]) -> str:
    if "secret" in match.re.groupindex and match.group("secret") is not None:
        start, end = match.span("secret")
        whole_start = match.start()
        text = match.group()
        return text[: start - whole_start] + MASK + text[end - whole_start :]
    return MASK

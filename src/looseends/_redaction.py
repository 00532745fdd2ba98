"""Secrets stay in the process: command lines are masked before any report, dump or metric shows them.

Masked by default (the value becomes `***`):
- options that look like secrets: `--db-password=x`, `--token x`, `--api-key=x`, `-secret x`, `--pass=x`,
  `-passin pass:x`;
- `KEY=value` settings whose key looks like one, alone or in a list: `PGPASSWORD=x`, `password=x`,
  `--set db.password=x,replicas=2`, `?access_token=x&page=2`;
- HTTP headers that carry credentials: `-H "Authorization: Bearer x"`, `Cookie: x`, `X-Api-Key: x`;
- credentials in URLs: `postgres://user:x@host` becomes `postgres://user:***@host`; `user:x` after
  `-u`/`--user`/`--proxy-user` (curl);
- the password after `-p` of sshpass, and glued to `-p` after the MySQL and MariaDB clients.

`looseends.redact(r"--license\\s+\\S+", ...)` adds patterns: a match is masked whole, or only its group
named `secret` when the pattern has one. Masking errs on the side of hiding: a `-u 1000:1000` is shown
as `-u 1000:***`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MASK = "***"
_WORDS = (
    r"(?:password|passwd|passphrase|pwd|secret|token|api[-_]?key|apikey|access[-_]?key|private[-_]?key"
    r"|credentials?|auth)"
)
_SECRET_OPTION = re.compile(
    rf"^(-{{1,2}}(?:[\w.-]*{_WORDS}[\w.-]*|(?:[\w.]+[-_])?pass(?:in|out)?))(?:([=:])(.*))?$", re.I
)
# key=value inside an argument: at its start or after a list separator (helm's --set, a query string).
_SECRET_SETTING = re.compile(rf"((?:^|(?<=[,&;?]))[\w.-]*{_WORDS}[\w.-]*=)([^,&;\s]+)", re.I)
_SECRET_HEADER = re.compile(
    r"((?:proxy-)?authorization|cookie|x-[\w-]*(?:token|key|secret|auth)[\w-]*)(\s*:\s*)"
    r"((?:bearer|basic|token|digest|negotiate)\s+)?([^\s\"']+)",
    re.I,
)
_URL_CREDENTIALS = re.compile(r"([a-zA-Z][\w+.-]*://[^/\s:@]*:)([^@\s/]+)(@)")
_USER_COLON_PASSWORD = re.compile(r"^([^:\s]*:)(.+)$")
_USER_OPTIONS = frozenset({"-u", "--user", "-U", "--proxy-user"})
_GLUED_USER = re.compile(r"^(--user=|--proxy-user=|-u|-U)(.+)$")
_GLUED_PASSWORD_CLIENTS = re.compile(r"(?:^|/)(?:mysql\w*|mariadb\w*|sshpass)$")
_SPACED_PASSWORD_CLIENTS = re.compile(r"(?:^|/)sshpass$")  # `-p secret`; mysql's `-p db` names a database

_extra: list[re.Pattern[str]] = []


def redact(*patterns: str) -> None:
    """Mask what these regular expressions match in every command line looseends shows, from now on."""
    compiled = [re.compile(pattern) for pattern in patterns]
    _extra.extend(compiled)


def redact_command(command: str | Sequence[str]) -> str:
    """A command line with its secrets masked: argument by argument when the parts are known."""
    parts = command.split(" ") if isinstance(command, str) else [str(part) for part in command]
    program = parts[0] if parts else ""
    glued = bool(_GLUED_PASSWORD_CLIENTS.search(program))
    spaced = bool(_SPACED_PASSWORD_CLIENTS.search(program))
    masked: list[str] = []
    after = ""  # the option before this argument, when it takes a secret as its value
    for part in parts:
        if after and part and not part.startswith("-"):
            masked.append(_value(part, after))
            after = ""
            continue
        shown = _argument(part, glued)
        masked.append(shown)
        after = _takes_a_secret(part, spaced) if shown == part else ""
    text = _SECRET_HEADER.sub(_header_masker, " ".join(masked))
    for pattern in _extra:
        text = pattern.sub(_masker, text)
    return text


def _takes_a_secret(part: str, spaced: bool) -> str:
    """The option itself when the next argument is its secret value, else ""."""
    option = _SECRET_OPTION.match(part)
    if (option is not None and option.group(2) is None) or part in _USER_OPTIONS or (spaced and part == "-p"):
        return part
    return ""


def _value(part: str, option: str) -> str:
    if option in _USER_OPTIONS:
        return _USER_COLON_PASSWORD.sub(rf"\g<1>{MASK}", part)
    return MASK


def _argument(part: str, glued: bool) -> str:
    option = _SECRET_OPTION.match(part)
    if option is not None and option.group(2) is not None:
        return f"{option.group(1)}{option.group(2)}{MASK}"
    if glued and len(part) > 2 and part.startswith("-p") and not part.startswith("--"):
        return f"-p{MASK}"
    user = _GLUED_USER.match(part)
    if user is not None:
        return user.group(1) + _value(user.group(2), "--user")
    part = _SECRET_SETTING.sub(rf"\g<1>{MASK}", part)
    return _URL_CREDENTIALS.sub(rf"\g<1>{MASK}\g<3>", part)


def _header_masker(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2)}{match.group(3) or ''}{MASK}"


def _masker(match: re.Match[str]) -> str:
    if "secret" in match.re.groupindex and match.group("secret") is not None:
        start, end = match.span("secret")
        whole_start = match.start()
        text = match.group()
        return text[: start - whole_start] + MASK + text[end - whole_start :]
    return MASK

"""Secrets kept out of what respop stores and shows.

A run stores its configuration's text (``runs.config_toml``) and, when it fails, its error
(``runs.error``); the board shows the text, and the errors met opening the configuration or the
store. None of them may carry a credential: the store URL's password, the board password's hash,
or any value of a key named like a secret. This module removes them:

* :func:`redacted_config_text`: a configuration's TOML text without its secrets (stored by
  :func:`respop.store.publish.collect`, redacted again by the board when it shows older runs);
* :func:`hide_url_password`: one URL with its password (and password-like query values) hidden;
* :func:`redact_text`: free text (an error message) without URL passwords, ``password=...``
  pairs, nor the secret values it is given.

The credentials themselves come from the environment or from files outside the configuration
(``RESPOP_STORE_URL``, ``[store] url_file``, ``RESPOP_DASHBOARD_PASSWORD_HASH``,
``[dashboard] password_hash_file``; see :mod:`respop.config` and docs/configuration.md).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

HIDDEN = "***"
"""What replaces a secret value (SQLAlchemy hides URL passwords the same way)."""

UNREADABLE = "# configuration non publiée : son texte n'a pas pu être relu pour en masquer les secrets\n"
"""What is stored instead of a configuration text that cannot be parsed (nothing of it is kept)."""

SECRET_WORDS = ("password", "passwd", "secret", "token")
"""A key whose name contains one of these holds a secret (``password_hash``, ``api_token``...)."""

MIN_SECRET_LENGTH = 4
"""Secrets this long or longer must not be written anywhere in a redacted text; a shorter one (a
two-letter password) may appear by chance inside other words and is checked as a value only."""

# scheme://user:password@ in free text: the password is what lies between the first ":" after the
# user name and the "@" (no white space, no quote: a URL inside text or inside a TOML string)
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)(?P<password>[^\s@'\"]+)(?=@)")
# key=value pairs of a libpq connection string or of a URL's query: password=..., sslpassword=...
_KEY_VALUE = re.compile(
    r"(?P<head>\b[\w.\-]*(?:" + "|".join(SECRET_WORDS) + r")[\w.\-]*\s*=\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,'\")]+)",
    re.IGNORECASE,
)


def is_secret_key(name: str) -> bool:
    """True for a configuration key that holds a secret (its name contains password, secret,
    token...); a ``*_file`` key names the file holding a secret: a path, not the secret."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS) and not lowered.endswith("_file")


def url_password(url: str) -> str | None:
    """The password of a URL (decoded), or None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except (ArgumentError, ValueError, TypeError):
        match = _URL_PASSWORD.search(url)
        return match.group("password") if match else None


def hide_url_password(url: str) -> str:
    """``url`` with its password and any password-like query value replaced by ``***``; a URL
    without them is returned unchanged."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return redact_text(url)
    secret_query = [k for k in parsed.query if is_secret_key(k)]
    if parsed.password is None and not secret_query:
        return url
    if secret_query:
        parsed = parsed.update_query_dict({k: HIDDEN for k in secret_query})
    # a password SQLAlchemy could not tell from the rest (an "@" in it) is hidden as text
    return redact_text(parsed.render_as_string(hide_password=True))


def redact_text(text: str, *secrets: str | None) -> str:
    """Free text (an error message) without URL passwords, ``password=...`` pairs and the given
    secret values; a secret given as a URL has its password removed too, however it is written."""
    known: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        password = url_password(secret) if "://" in secret else None
        if password:
            text = text.replace(secret, hide_url_password(secret))  # the URL stays readable
            known.update(_encoded_forms(password))
        elif "://" not in secret:
            known.add(secret)
    for value in sorted(known, key=len, reverse=True):
        text = text.replace(value, HIDDEN)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + HIDDEN, text)
    return _KEY_VALUE.sub(lambda m: m.group("head") + HIDDEN, text)


def config_secrets(text: str) -> list[str]:
    """The secret values of a configuration's TOML text (:func:`secret_values`); none when it
    cannot be parsed."""
    try:
        return secret_values(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, TypeError):
        return []


def secret_values(data: object) -> list[str]:
    """Every secret string of a parsed configuration: the values under secret keys, and the URLs
    holding a password (whole, and their password)."""
    found: list[str] = []
    for _key, value, secret in _leaves(data):
        if not isinstance(value, str) or value in ("", HIDDEN):
            continue
        if secret:
            found.append(value)
        elif "://" in value and hide_url_password(value) != value:
            found.append(value)
            password = url_password(value)
            if password and password != HIDDEN:
                found.append(password)
    return found


def redacted_config_text(text: str) -> str:
    """The configuration's TOML text with its secrets replaced by ``***``, else :data:`UNREADABLE`.

    The text keeps its layout and comments. Each secret string is replaced where it is written as
    a TOML string: a URL by the same URL with ``***`` for its password, any value under a secret
    key (``password_hash`` included) by ``"***"``; a secret key's value that is not a string is
    replaced by ``"***"`` on its line; long secrets are replaced wherever else they are written (a
    comment), and URL passwords everywhere. The result is parsed again and checked: it must still
    be TOML, hold no secret value and contain none of the secrets written anywhere. A text that
    cannot be parsed, or whose secrets cannot be removed so, is kept as nothing but
    :data:`UNREADABLE`."""
    if not text:
        return text
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, TypeError):
        return UNREADABLE
    secrets = secret_values(data)
    out = text
    replacements: dict[str, str] = {}
    for key, value, secret in _leaves(data):
        if secret and not isinstance(value, str) and key is not None:
            out = _replace_assignment(out, key)  # a number, a date, a boolean: the rest of its line
        elif not isinstance(value, str) or value in ("", HIDDEN):
            continue
        elif secret:
            replacements[value] = HIDDEN
        elif "://" in value:
            hidden = hide_url_password(value)
            if hidden != value:
                replacements[value] = hidden
    ordered = sorted(replacements, key=len, reverse=True)
    for value in ordered:
        hidden = replacements[value]
        # basic strings ("...", """...""") hold the value escaped, literal strings ('...') as is
        for quote_, raw, new in (('"""', _basic_escape(value), _basic_escape(hidden)), ('"', _basic_escape(value), _basic_escape(hidden)),
                                 ("'''", value, hidden), ("'", value, hidden)):
            out = out.replace(f"{quote_}{raw}{quote_}", f"{quote_}{new}{quote_}")
    for value in ordered:  # elsewhere (a comment, inside a longer string): long enough values only
        if len(value) >= MIN_SECRET_LENGTH:
            out = out.replace(value, replacements[value])
    out = _URL_PASSWORD.sub(lambda m: m.group("head") + HIDDEN, out)
    return out if _clean(out, secrets) else UNREADABLE


def _clean(text: str, secrets: list[str]) -> bool:
    """True when ``text`` is TOML whose values hold no secret and in which no secret is written."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    if secret_values(data) or any(secret and value != HIDDEN for _key, value, secret in _leaves(data)):
        return False
    forms = {form for s in secrets for form in (s, _basic_escape(s), *_encoded_forms(s))}
    return not any(form in text for form in forms if len(form) >= MIN_SECRET_LENGTH)


def _leaves(data: object, key: str | None = None, secret: bool = False) -> Iterator[tuple[str | None, object, bool]]:
    """(key, value, under a secret key) of every value of a parsed TOML document; the items of an
    array carry their array's key."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, k, secret or is_secret_key(k))
    elif isinstance(data, list):
        for item in data:
            yield from _leaves(item, key, secret)
    else:
        yield key, data, secret


def _replace_assignment(text: str, key: str) -> str:
    """``key = <the rest of the line>`` → ``key = "***"`` (the key bare or quoted, maybe dotted)."""
    name = re.escape(key)
    pattern = re.compile(
        r"^(?P<head>[ \t]*(?:(?:[A-Za-z0-9_\-]+|\"[^\"\n]*\"|'[^'\n]*')[ \t]*\.[ \t]*)*"
        rf"(?:{name}|\"{name}\"|'{name}')[ \t]*=[ \t]*).*$",
        re.MULTILINE,
    )
    return pattern.sub(lambda m: m.group("head") + f'"{HIDDEN}"', text)


def _basic_escape(value: str) -> str:
    """``value`` as written inside a TOML basic string: backslash and double quote escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _encoded_forms(password: str) -> set[str]:
    """The ways a password may be written: as is and percent-encoded (in a URL)."""
    return {password, quote(password, safe=""), quote_plus(password)}

"""One redaction policy for every output: records, request data, Sentry events, SQL parameters.

A :class:`RedactionPolicy` is built once and applied many times. It is a pipeline processor
(``policy(record, levelno) -> record``), so ``configure()`` puts it in front of every sink and no
sink ever sees a secret; the same object's helpers (:meth:`~RedactionPolicy.redact_headers`,
:meth:`~RedactionPolicy.redact_url`, :meth:`~RedactionPolicy.redact_query`,
:meth:`~RedactionPolicy.redact_mapping`, :meth:`~RedactionPolicy.redact_text`) serve the HTTP
layer and the integrations. Module-level functions of the same names use the configured policy.

What it does, in order of cost:

* **Keys.** A field whose key, once normalised (lower case, without ``-``, ``_``, ``.``, spaces
  and brackets, so ``api_key`` = ``Api-Key`` = ``apiKey`` = ``X-API-KEY``), is a denied key or
  ends with a denied suffix (``...password``, ``...token``, ``...secret``) has its value replaced
  by ``[REDACTED]``, at any depth. The same rule applies to ``key=value``, ``key: value`` and
  ``'key': 'value'`` pairs inside text: messages, exception messages and stack traces, where
  local variables appear as ``name = value`` lines.
* **Values.** Text anywhere (the message, field values, exception text, bytes) is scanned for
  JWTs, ``Bearer``/``Basic`` credentials, card numbers (Luhn-checked), private-key blocks, URL
  passwords, AWS, GitHub, Stripe, Slack, Google, OpenAI-style and other provider keys, and
  high-entropy tokens; with ``pii=True`` also e-mail addresses (masked the guide's way,
  ``joh***@***.com``), phone numbers and US SSNs.
* **Never** the guide's "any 32+ alphanumeric string is a key" rule: it would redact request
  IDs, UUIDs, SHA-256 hashes and trace IDs. The entropy rule here ignores hexadecimal strings
  and anything made of words, and servicelog's own top-level fields (``request_id``,
  ``trace.id``, ``@timestamp``, ``log.level``, ``service.name``, ... :data:`OWN_FIELDS`) are
  never touched.

Guarantees, each pinned by a test in ``tests/redaction/``: it never raises (an object whose
methods raise is read the way the JSON renderer reads it; if redaction itself fails, values
become ``[REDACTION FAILED]`` rather than leak); redacting twice equals redacting once; time is
bounded on hostile input (text is cut to ``max_text`` characters before matching, no regex
has nested ambiguity, and a denied key's value is found in one pass however long it is); and
a record without secrets is returned as is, not copied.

Speed: the common record (the keys of a record seen before, strings seen before) costs about
0.45 us: key decisions and "this string is clean" answers are cached, and a plan per record
shape checks the values with five C-level calls (see ``bench/redaction_bench.py``).
"""

from __future__ import annotations

import base64
import binascii
import math
import numbers
import os
import re
import sys
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time, timedelta
from enum import Enum
from itertools import islice
from operator import itemgetter
from typing import Any, Final, NamedTuple, TypeVar

from . import _errors
from .record import DROPPED_FIELDS, dataclass_fields, guarded_repr, items_cut, safe_repr

__all__ = [
    "DEFAULT_KEYS",
    "DEFAULT_KEY_SUFFIXES",
    "OWN_FIELDS",
    "PII_KEYS",
    "REDACTED",
    "REDACTION_FAILED",
    "Callback",
    "Match",
    "RedactionPolicy",
    "default_policy",
    "get_policy",
    "normalize_key",
    "redact_headers",
    "redact_mapping",
    "redact_query",
    "redact_text",
    "redact_url",
]

REDACTED: Final = "[REDACTED]"
#: What a value becomes when it could not be inspected (a hostile object, an internal error).
REDACTION_FAILED: Final = "[REDACTION FAILED]"
_CYCLE = "<cycle>"  # the JSON renderer's markers, so a line reads the same either way
_TOO_DEEP = "<max depth>"

# --- keys -------------------------------------------------------------------------------------
# Every entry is a *normalised* key (see normalize_key). A key is denied when it equals one of
# DEFAULT_KEYS or ends with one of DEFAULT_KEY_SUFFIXES. Suffixes are for words that only ever
# name a secret, whatever precedes them (db_password, X-Foo-Secret, refresh_token); short or
# ambiguous words match the whole key only ("auth" must not catch "oauth_provider" or "author").
DEFAULT_KEY_SUFFIXES: Final[tuple[str, ...]] = (
    # the guide's LogSanitizer.SENSITIVE_FIELDS (it matched them as substrings)
    "password",
    "passwd",
    "secret",
    "token",  # also Sentry's "token", "csrftoken", "x_csrftoken", OWASP "access tokens"
    "apikey",  # also Sentry's "api_key", "apikey", "x_api_key"; header X-API-Key
    "authorization",  # also Sentry's "authorization"; headers Authorization, Proxy-Authorization
    # sentry-python sentry_sdk/scrubber.py DEFAULT_DENYLIST
    "credentials",
    "privatekey",
    "sessionid",  # Django; also PHPSESSID
    "cookie",  # Sentry "cookie", "set_cookie"; headers Cookie, Set-Cookie
    # OWASP Logging Cheat Sheet, "data to exclude": passwords, session identifiers, access
    # tokens, encryption keys and other primary secrets, database connection strings
    "passphrase",
    "secretkey",
    "accesskey",  # AWS aws_secret_access_key, aws_access_key_id is "...keyid" (below)
    "encryptionkey",
    "signingkey",
    "masterkey",
    "clientsecret",  # OAuth (already covered by "secret"; kept to document the source)
    "connectionstring",
)

DEFAULT_KEYS: Final[frozenset[str]] = frozenset(
    {
        # the guide's LogSanitizer.SENSITIVE_FIELDS
        "pwd",
        "auth",
        "creditcard",
        "cc",
        "ssn",
        "socialsecurity",
        # sentry-python DEFAULT_DENYLIST (the words a suffix above does not already cover)
        "session",
        "mysqlpwd",
        "credential",
        "csrf",
        "xsrf",
        "aiohttpsession",
        "connectsid",  # Express connect.sid
        "phpsessid",
        "usersession",
        "symfony",
        # OWASP cheat sheet: payment card data, one-time codes, keys
        "cardnumber",
        "ccnumber",
        "cvv",
        "cvc",
        "cvv2",
        "pin",
        "otp",
        "pass",
        "awsaccesskeyid",
        "socialsecuritynumber",
        # catalog item I6: local variables named password, secret and key
        "key",
        # HTTP request headers that carry credentials (and Sentry's SENSITIVE_ENV_KEYS)
        "xauthtoken",
        "xamzsecuritytoken",
        "xamzsignature",
        "xamzcredential",
        "signature",
        "xhubsignature",
        "xhubsignature256",
        # OpenTelemetry's semantic conventions: a query parameter of Google Cloud Storage's
        # signed URLs (Azure's "sig" is denied in query strings only: _QUERY_KEYS)
        "xgoogsignature",
        # pydantic's text of a ValidationError quotes what it was given ("[type=..,
        # input_value='hunter2', input_type=str]"): an exception's message and trace would
        # carry a password that failed a length check
        "inputvalue",
    }
)

#: Denied in query strings only (and in URLs' queries inside text: ``?code=``, ``&sig=``): an
#: OAuth 2.0 authorization code (``/callback?code=...``) is a bearer credential (RFC 6749
#: section 10.5), ``sig`` an Azure SAS signature (OpenTelemetry's list for signed URLs); a field
#: named ``code`` elsewhere is an error code, ``sig`` a signal number.
_QUERY_KEYS: Final[frozenset[str]] = frozenset({"code", "sig"})
#: Record fields (ECS's, sentry-sdk's) whose text is a URL's query string: redacted as one (so
#: :data:`_QUERY_KEYS` are denied there), whoever wrote the record.
_QUERY_FIELDS: Final[frozenset[str]] = frozenset({"url.query", "http.query"})
_QUERY_KEY_HINT = re.compile(r"[?&;#](?:code|sig)=", re.IGNORECASE)
#: ``&`` as JSON escapes it (Go's encoder does by default): ``?a=1\u0026code=...`` in text. A
#: key found after it (``u0026code``) is judged without it. (Looked for apart from the hint: in
#: one pattern, an alternative that is no single character doubles the hint's search.)
_ESCAPED_AMP = "u0026"
_ESCAPED_AMP_TEXT = "\\u0026"

#: With ``pii=True``: personal data. Sentry's DEFAULT_PII_DENYLIST (x_forwarded_for, x_real_ip,
#: ip_address, remote_addr) plus the OWASP cheat sheet's personal data.
PII_KEYS: Final[frozenset[str]] = frozenset(
    {
        "xforwardedfor",
        "xrealip",
        "ipaddress",
        "remoteaddr",
        "phone",
        "phonenumber",
        "mobile",
        "mobilenumber",
        "dob",
        "dateofbirth",
        "birthdate",
        "iban",
        "bankaccount",
        "accountnumber",
        "routingnumber",
        "passportnumber",
        "taxid",
    }
)

#: servicelog's own fields: never redacted, whatever they hold (they are IDs and metadata we
#: wrote ourselves; a request ID is validated where it is read). Exact top-level keys only: a
#: user's ``process.command_line`` or a nested ``{"service.db_password": ...}`` is checked like
#: any other key (a ``service.*`` / ``process.*`` prefix used to exempt them at any depth).
OWN_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "@timestamp",
        "log.level",
        "log.logger",
        "log.origin.file.name",
        "log.origin.file.line",
        "log.origin.function",
        "log.suppressed",
        "ecs.version",
        "event.dataset",
        "request_id",
        "http.request.id",
        "trace.id",
        "span.id",
        "transaction.id",
        "parent.id",
        "trace_id",
        "span_id",
        "servicelog.channel",
        # the static fields (_config.py) and the thread name (record.py)
        "service.name",
        "service.version",
        "service.environment",
        "process.pid",
        "process.thread.name",
    }
)

_KEY_SEPARATORS = str.maketrans("", "", "-_. []")
_QUOTED_KEY = re.compile(r"[bB]?(['\"])(.*)\1", re.DOTALL)  # a key's repr: b'x', 'x'


def normalize_key(key: str) -> str:
    """The form keys are compared in: lower case, without ``-``, ``_``, ``.``, spaces, ``[]``.

    A key written as a quoted literal (``b'x-api-key'`` or ``'token'``, as reports of local
    variables write a dict's bytes keys) is judged by what is between its quotes.

    >>> normalize_key("Api-Key") == normalize_key("apiKey") == normalize_key("API_KEY") == "apikey"
    True
    >>> normalize_key("b'X-Api-Key'")
    'xapikey'
    """
    quoted = _QUOTED_KEY.fullmatch(key)
    if quoted is not None:
        key = quoted.group(2)
    return key.lower().translate(_KEY_SEPARATORS)


# --- the callback -----------------------------------------------------------------------------
class Match(NamedTuple):
    """Why a value is about to be replaced; passed to the policy's callback.

    Attributes:
        rule: ``"key"`` for a denied key, else the pattern's name (``"jwt"``, ``"bearer"``,
            ``"card"``, ``"email"``, ``"aws_access_key"``, a user pattern's name, ...).
        text: the denied key for ``"key"``, else the text the pattern matched.
        replacement: what the policy puts in place of the value by default.
    """

    rule: str
    text: str
    replacement: Any


KeyPath = tuple[str | int, ...]
#: ``callback(path, value, match) -> replacement``. *path* leads from the record (or the value
#: given to a helper) to the field; *value* is what would be replaced: the field's whole value
#: for a key rule, the matched text for a pattern. Return *value* itself to keep it, or
#: ``match.replacement`` for the default. A callback that raises gets the default.
Callback = Callable[[KeyPath, Any, Match], Any]

# --- text patterns ----------------------------------------------------------------------------
# Every pattern has bounded repetition (but a denied key's value, see _PAIR_VALUE), starts where
# a lookbehind or a literal pins it, and has no nested ambiguous quantifiers, so matching is
# linear in the text (with small constants);
# text is also cut to max_text characters first. Validation that a regex does badly (Luhn,
# entropy, SSN ranges) is done in Python on the few candidates.
#
# The boundary classes count "*" and "]" (a mask's and "[REDACTED]"'s edges) as part of a
# word: a phone number glued to another stays glued once its neighbour is masked, so a second
# pass finds nothing the first did not (idempotence).

# key=value, key: value, "key": "value", 'key': 'value', name = value (traceback locals).
# The key must start a name: not after a word character or ".", and not after "word-" (so the
# "Key" of "X-Api-Key" is not taken for a key of its own), but after "--" (a CLI flag).
_PAIR_KEY_SOURCE = (
    r"""(?<![\w.*\]])(?<!\w-)(\\?["']|)([A-Za-z_][\w.\-\[\]]{0,63})\1"""
    r"""[ \t]{0,4}(=>|[=:])[ \t]{0,4}"""
)
_PAIR_KEY = re.compile(_PAIR_KEY_SOURCE)
# The same, and b'key': (the repr of a dict with bytes keys, a parsed form's). A pattern of its
# own, used only on text holding b' or b": the optional prefix costs ~20% on every other text.
_PAIR_KEY_BYTES = re.compile(
    _PAIR_KEY_SOURCE.replace(r"""(?<!\w-)""", r"""(?<!\w-)(?:[bB](?=\\?["']))?""", 1)
)
_BYTES_PREFIX = re.compile(r"""[bB]\\?["']""")  # a fast search; _has_bytes_prefix checks the rest


def _query_key(m: re.Match[str], text: str) -> bool:
    """Whether the pair found by *m* is a :data:`_QUERY_KEYS` parameter of a URL's query or
    fragment (``?code=``, ``&sig=``, ``;code=``, ``#code=``: OpenID Connect's
    ``response_mode=fragment``): no space around its ``=``, and a ``?`` (or a ``#`` after a
    path) before it in the same run of text without whitespace (``flags&code=0x1`` is code,
    ``see #code=5`` prose)."""
    start = m.start(2)
    key = m.group(2)
    if _escaped_amp(key, text, start):  # ...\u0026code=: after an "&"
        key, start = key[len(_ESCAPED_AMP) :], start + len(_ESCAPED_AMP)
        separator = "&"
    else:
        separator = text[start - 1 : start]
    if not (
        m.group(3) == "="
        and not m.group(1)
        and m.end(2) == m.start(3)
        and m.end(3) == m.end()
        and key.lower() in _QUERY_KEYS
        and separator in ("?", "&", ";", "#")
    ):
        return False
    marks = _url_marks(text)
    begin = _before(marks[0], start) + 1  # the start of the run of text without whitespace
    if _before(marks[1], start) >= begin:  # a "?" in it
        return True
    # A fragment only in what reads as a URL (a path before its "#"): "see #code=5" is prose.
    fragment = _after(marks[2], begin)
    return begin <= fragment < start and begin <= _after(marks[3], begin) < fragment


_WHITESPACE = re.compile(r"\s")
_URL_MARKS = (_WHITESPACE, re.compile(r"\?"), re.compile("#"), re.compile("/"))
#: The last text :func:`_url_marks` read, and its marks (one slot: a tuple, swapped whole).
_marks_cache: list[tuple[str, tuple[list[int], ...]]] = [("", ([], [], [], []))]


def _url_marks(text: str) -> tuple[list[int], ...]:
    r"""Where *text* has whitespace, ``?``, ``#`` and ``/``, in order: found once per text, so
    that judging each of many ``code=`` pairs costs a binary search, not a pass over the text
    before it. (A search for ``\S*\Z`` in a 4,096-character window per pair took 0.3 ms a pair
    in ordinary text, seconds for a 60 KB message of pairs, and saw no ``?`` further back.)"""
    cached = _marks_cache[0]
    if cached[0] is not text:
        cached = (text, tuple([m.start() for m in mark.finditer(text)] for mark in _URL_MARKS))
        _marks_cache[0] = cached
    return cached[1]


def _before(positions: list[int], end: int) -> int:
    """The last of *positions* before *end*, or -1."""
    k = bisect_left(positions, end)
    return positions[k - 1] if k else -1


def _after(positions: list[int], start: int) -> int:
    """The first of *positions* at or after *start*, or a number past any text's end."""
    k = bisect_left(positions, start)
    return positions[k] if k < len(positions) else sys.maxsize


# Percent-encoding hides pairs, URLs and quoted values from the text rules: a URL in a query
# value ("?next=%2Fcb%3Fcode%3Dabc", OAuth's redirect), "https%3A%2F%2Fuser%3Apass%40host",
# "%7B%22password%22%3A%22x%22%7D". A run of text without whitespace that holds an escape is
# also scanned decoded (:meth:`RedactionPolicy._encoded`), every layer of encoding at once.
_ENCODED_MARK = re.compile(r"%[0-9A-Fa-f]{2}")
_ESCAPE_RUN = re.compile(r"((?:%[0-9A-Fa-f]{2})+)")
#: How many runs with an escape one text may have scanned each on its own; and how many layers
#: of encoding are decoded (%253D is two).
_ENCODED_RUNS = 32
_ENCODED_LAYERS = 4
#: The longest run whose changes are written back one by one (a longer one: from the first
#: change to the last, decoded).
_ALIGN_MAX = 4096
#: What ends a run of text: ASCII whitespace.
_RUN_SPACES = " \t\n\r\f\v"
_RUN_END = re.compile(f"[{_RUN_SPACES}]")
#: What a decoded character that would end a run or a value becomes (whitespace; an invalid
#: UTF-8 byte): the decoded run stays one run, and a value holding an encoded space is whole.
_PLACEHOLDER = "\ufffd"


def _percent_decoded(text: str) -> tuple[str, list[int]]:
    """*text* with its escapes decoded, as UTF-8, and where each of its characters starts in
    *text* (then *text*'s length). Whitespace and bytes that are no UTF-8 decode to
    :data:`_PLACEHOLDER`."""
    pieces = _ESCAPE_RUN.split(text)  # literal, escapes, literal, ..., literal
    out: list[str] = []
    starts: list[int] = []
    pos = 0
    for i, piece in enumerate(pieces):
        if not i % 2:
            out.append(piece)
            starts.extend(range(pos, pos + len(piece)))
            pos += len(piece)
            continue
        for char in bytes.fromhex(piece.replace("%", "")).decode("utf-8", "surrogateescape"):
            starts.append(pos)
            if "\udc80" <= char <= "\udcff":  # an invalid byte
                out.append(_PLACEHOLDER)
                pos += 3
            else:
                out.append(_PLACEHOLDER if char.isspace() else char)
                pos += 3 * len(char.encode("utf-8"))
    starts.append(pos)
    return "".join(out), starts


def _fully_decoded(text: str) -> tuple[str, list[int]]:
    """:func:`_percent_decoded`, again while escapes remain (up to :data:`_ENCODED_LAYERS`),
    with where each character starts in *text*."""
    decoded, starts = _percent_decoded(text)
    for _ in range(_ENCODED_LAYERS - 1):
        if "%" not in decoded or _ENCODED_MARK.search(decoded) is None:
            break
        decoded, inner = _percent_decoded(decoded)
        starts = [starts[k] for k in inner]
    return decoded, starts


def _run_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The run of text without whitespace around ``text[start:end]``."""
    begin = max(text.rfind(space, 0, start) for space in _RUN_SPACES) + 1
    after = _RUN_END.search(text, end)
    return begin, (after.start() if after is not None else len(text))


def _changes(old: str, new: str) -> list[tuple[int, int, int, int]]:
    """Where *new* differs from *old*: ``(i1, i2, j1, j2)``, ``old[i1:i2]`` became
    ``new[j1:j2]``, in order. Aligned (difflib) up to :data:`_ALIGN_MAX` characters; a
    stretch of fewer than 4 equal characters between two changes counts as changed (a mask's
    letters that happen to match the secret's); longer text: one span, from the first change
    to the last."""
    if len(old) <= _ALIGN_MAX and len(new) <= _ALIGN_MAX:
        from difflib import SequenceMatcher

        spans: list[tuple[int, int, int, int]] = []
        for tag, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
            if tag == "equal":
                continue
            if spans and i1 - spans[-1][1] < 4:  # (the same stretch in both: i1 - i2 == j1 - j2)
                spans[-1] = (spans[-1][0], i2, spans[-1][2], j2)
            else:
                spans.append((i1, i2, j1, j2))
        return spans
    limit = min(len(old), len(new))
    head = 0
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return [(head, len(old) - tail, head, len(new) - tail)]


def _escaped_amp(key: str, text: str, start: int) -> bool:
    """Whether *key*, found at *start* in *text*, begins with a JSON-escaped ``&``
    (``\\u0026``; the key found is then ``u0026code``)."""
    return key[:5] == _ESCAPED_AMP and len(key) > 5 and text[start - 1 : start] == "\\"


def _found_key(m: re.Match[str]) -> str:
    """The key of a pair found in text, without a JSON-escaped ``&`` before it."""
    key = m.group(2)
    if _escaped_amp(key, m.string, m.start(2)):
        return key[len(_ESCAPED_AMP) :]
    return key


def _has_bytes_prefix(text: str) -> bool:
    """Whether *text* has a b'...' or b"..." that starts a word (not the end of 'bob')."""
    if "b'" not in text and 'b"' not in text and "B'" not in text and "b\\" not in text:
        return False  # two or three substring searches: cheaper than the regex on most text
    for m in _BYTES_PREFIX.finditer(text):
        before = text[m.start() - 1 : m.start()]
        if not (before.isalnum() or before in ("_", ".")):  # also at the start: ""
            return True
    return False


# A value: quoted (to its closing quote, or the end of the line if unclosed), bracketed (to
# the matching bracket, see _balanced_end), or bare (its first character here; _bare_end finds
# its end). No length limit: a value is masked whole however long (the text was cut to
# max_text first); each branch is a single pass ("unrolled" escapes, no nested choice).
_PAIR_VALUE = re.compile(
    r"""(?P<scheme>(?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken|TOKEN|[Dd]igest|DIGEST)"""
    r"""[ \t]{1,4})?"""
    r"""(?P<value>[bBrRuU]{0,2}\\?"[^"\\\n]*(?:\\.[^"\\\n]*)*"?"""
    r"""|[bBrRuU]{0,2}\\?'[^'\\\n]*(?:\\.[^'\\\n]*)*'?"""
    r"""|[{\[(]|[^\s"'\\]|\\(?!["']))"""
)
_KEEP_VALUES = frozenset({"", "None", "null", "nil", "True", "False", "true", "false", REDACTED})
_OPENERS = {"{": "}", "[": "]", "(": ")"}
_BRACKETS = {
    opener: re.compile(f"[{re.escape(opener + closer)}\n]") for opener, closer in _OPENERS.items()
}
# Where a bare value may end: whitespace, a quote (or an escaped one: JSON in a string), a
# bracket it did not open (the end of the repr or call it sits in: "Creds(user=bob,
# password=hunter2)"), or the next parameter of a query string or a list ("token=abc&page=1",
# "a=1;token=x;b=2", "user=bob,password=x,role=admin", and "\u0026": "&" escaped in JSON).
# Brackets it opens are followed.
_BARE_STOPS = re.compile(
    r"""[\s"']|\\(?=["'])|[()\[\]{}]|(?:[&;,]|\\u0026)(?=[A-Za-z_][\w.\-\[\]]{0,63}=)"""
)
# A bare identifier called: "password = read_secret(...)" in a traceback's source line.
# A lambda's head: its parameters (names, defaults of a few plain characters, * and **) and ":";
# without parameters, "lambda:" then a space, a closing bracket, a comma or the end
# (``password=lambda:hunter2`` is a value).
_LAMBDA = re.compile(r"lambda(?:[ \t]+[\w*][\w*, \t=.'\"\[\]-]{0,120}:|:(?=[\s)\],]|$))")
_CALL = re.compile(r"[A-Za-z_][\w.]{0,127}[(\[]")  # a call or a subscript: os.environ["X"]
# Keys whose value is a list of parts ("Cookie: theme=dark; sessid=...", "Authorization:
# Digest username=..., response=..."): written header-style, the value is the rest of the line.
_LINE_VALUE_KEYS = ("cookie", "authorization")
_LINE_END = re.compile(r"""[\r"']|\\["']""")  # searched within the line

# scheme://user:password@host. The password ends at the last "@" of the authority (the one
# followed by a host, then "/", "?", "#", a quote, whitespace or the end), so it may hold "@",
# "/" and "#" unencoded, and the user name "@" (smtp://alerts@corp.com:pw@smtp.corp.com).
# "host:8080/users/bob@x.com" (a port, then a path) is no password: see _userinfo_repl. No
# "[" or "]" (RFC 3986 wants them encoded there): a password never runs into a "[REDACTED]".
# Possessive runs: nothing to backtrack into on text full of "://" and no "@".
_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.\-*\]])([A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s:/?#\[\]]{0,256}:)"
    r"""([^\s?@\[\]]{1,256}+(?:@[^\s?@\[\]]{0,256}+){0,8}?)@(?=[^\s@/?#'"<>\\]{0,256}(?:[\s/?#'"<>\\]|$))"""
)
_PORT_AND_PATH = re.compile(r"[0-9]{1,5}[/#]")
_AUTH_SCHEME = re.compile(
    r"(?<![A-Za-z0-9_\-*\]])([Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken|TOKEN)([ \t]{1,4})"
    r"([A-Za-z0-9\-._~+/]{1,4096}=*)"
)
_QUERY_SEPARATORS = re.compile(r"([&;])")
_CLEAN_QUERY_MAX_LEN = 512
_CLEAN_QUERIES_MAX = 1024
_codec: tuple[Callable[..., str], Callable[[str], str]] | None = None


def _url_codec() -> tuple[Callable[..., str], Callable[[str], str]]:
    """``urllib.parse.quote`` and ``unquote_plus``, imported on first use (only the HTTP
    helpers need them) and kept: an import statement costs ~1 us on every call."""
    global _codec
    if _codec is None:
        from urllib.parse import quote, unquote_plus

        _codec = (quote, unquote_plus)
    return _codec


_JWT = re.compile(
    r"(?<![A-Za-z0-9_\-*\]])eyJ[A-Za-z0-9_\-]{8,4096}\.[A-Za-z0-9_\-]{2,8192}\.[A-Za-z0-9_\-]{0,4096}"
)
# Known provider formats. Each branch starts with a literal, so the engine skips ahead cheaply;
# the name comes from the prefix (_PROVIDER_NAMES).
_PROVIDER = re.compile(
    r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"  # AWS access key ID
    r"|gh[pousr]_[A-Za-z0-9]{36,251}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{22,242}"  # GitHub fine-grained tokens
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{10,247}"  # Stripe secret and restricted keys
    r"|whsec_[A-Za-z0-9+/=]{24,250}"  # Stripe webhook secrets
    r"|xox[abposr]-[A-Za-z0-9\-]{10,250}"  # Slack tokens
    r"|AIza[A-Za-z0-9_\-]{35}"  # Google API keys
    r"|sk-[A-Za-z0-9_\-]{20,250}"  # OpenAI, Anthropic (sk-ant-...), DeepSeek, ... keys
    r"|glpat-[A-Za-z0-9_\-]{20,250}"  # GitLab personal access tokens
    r"|npm_[A-Za-z0-9]{36}"  # npm tokens
    r"|SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"  # SendGrid
    r"|hf_[A-Za-z0-9]{30,250}"  # Hugging Face
    r"|pypi-AgE[A-Za-z0-9_\-]{50,250}"  # PyPI upload tokens
)
_PROVIDER_NAMES = (
    ("AKIA", "aws_access_key"),
    ("ASIA", "aws_access_key"),
    ("ABIA", "aws_access_key"),
    ("ACCA", "aws_access_key"),
    ("gh", "github_token"),
    ("github_pat_", "github_token"),
    ("sk_", "stripe_key"),
    ("rk_", "stripe_key"),
    ("whsec_", "stripe_webhook_secret"),
    ("xox", "slack_token"),
    ("AIza", "google_api_key"),
    ("sk-", "api_key"),
    ("glpat-", "gitlab_token"),
    ("npm_", "npm_token"),
    ("SG.", "sendgrid_key"),
    ("hf_", "huggingface_token"),
    ("pypi-", "pypi_token"),
)
_PROVIDER_MIN_LEN = 15
#: Every _PROVIDER match starts with one of these (github_pat_ with "gh").
_PROVIDER_PREFIXES = tuple(prefix for prefix, _ in _PROVIDER_NAMES)
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-*]")
_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PRIVATE_KEY_END = re.compile(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_MAX_KEY_BLOCK = 16384
# High-entropy tokens: candidates only; _looks_random decides.
_TOKEN = re.compile(r"[A-Za-z0-9+/_\-]{32,1024}={0,2}")
_HEXISH = re.compile(r"[0-9a-fA-F\-:]+")
_WORD = re.compile(r"[A-Z]?[a-z]{3,}")
_DIGIT_GROUP = re.compile(r"[0-9]+")
# Short text no rule can match, like "/items/42" or "pending": letters, "/" and "_", then at
# most 12 digits (no separator that a key=value, URL, e-mail, phone number or SSN needs; too
# few digits for a card; too short for a provider key or a JWT).
_PLAIN_SHORT = re.compile(r"[A-Za-z/_]*[0-9]{0,12}")
_DIGIT_RUN = re.compile(r"[0-9][0-9 ().\-]{8}")
# Bounded by non-alphanumerics on both sides: digit runs inside hex IDs and hashes are not cards.
_CARD = re.compile(r"(?<![0-9A-Za-z*\]])[0-9](?:[ \-]?[0-9]){12,40}(?![0-9A-Za-z*\[])")
_SSN = re.compile(r"(?<![0-9\-*\]])([0-9]{3})-([0-9]{2})-([0-9]{4})(?![0-9\-*\[])")
_PHONE = re.compile(
    r"(?<![\w+\-.*\]])(?:"
    r"\+[0-9]{1,3}[ .\-]?(?:\([0-9]{1,4}\)[ .\-]?)?[0-9]{1,4}(?:[ .\-][0-9]{1,4}){1,5}"
    r"|\([0-9]{3}\)[ .\-]?[0-9]{3}[ .\-][0-9]{4}"
    r"|[0-9]{3}[ .\-][0-9]{3}[ .\-][0-9]{4}"
    r")(?![\w\-*\[])"
)
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-*\]])([A-Za-z0-9._%+\-]{1,64})@"
    r"([A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.([A-Za-z]{2,24}))(?![A-Za-z0-9\-*\[])"
)
_CARD_MASK = "****-****-****-"
_SSN_MASK = "***-**-****"
_PHONE_MASK = "***-***-****"


# Luhn's doubled digit (2d, minus 9 above 9), as a digit: one translate() for half the digits.
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")


def _luhn(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits, in C calls only: each half of the digits
    is summed as bytes (minus 48 a digit), the doubled half after a translate()."""
    total = sum(digits[-1::-2].encode()) + sum(digits[-2::-2].translate(_LUHN_DOUBLED).encode())
    return (total - 48 * len(digits)) % 10 == 0


def _card_lengths(digits: str) -> tuple[int, ...]:
    """The lengths a card number starting with these digits (at least 4) may have: those of
    its issuer, or none for a prefix no issuer uses (a tenth of random digit runs pass Luhn:
    this keeps most of them from being taken for cards)."""
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":  # Visa
        return (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return (16,)
    if two in (34, 37):  # American Express
        return (15,)
    if four == 6011 or two in (62, 65) or 644 <= int(digits[:3]) <= 649:  # Discover, UnionPay
        return (16, 19)
    if 3528 <= four <= 3589:  # JCB
        return (16,)
    if 300 <= int(digits[:3]) <= 305 or two in (36, 38):  # Diners Club
        return (14, 16)
    return ()


#: The first digit of every issuer's numbers above: a run starting otherwise is no card.
_CARD_FIRST = frozenset("23456")


def _find_card(run: str) -> tuple[int, int] | None:
    """The span of a card number inside a run of digits, spaces and dashes, if any.

    Cards are written whole or in groups of 3 to 6 digits (4-4-4-4, Amex 4-6-5); a window of
    groups is tried only if every group in it is that long, so "1 2-3 4..." costs nothing.
    """
    found = list(_DIGIT_GROUP.finditer(run, 0, 256))
    parts = [m.group() for m in found]
    last = len(parts) - 1
    tried = 0
    for i, first in enumerate(parts):
        if first[0] not in _CARD_FIRST:
            continue
        # A window grows by whole groups; its digits are built as it grows (no join per try).
        # Every window from here shares its prefix, so the issuer's lengths are looked up once.
        digits = first
        grouped = 3 <= len(first) <= 6  # only then may later groups join it
        lengths: tuple[int, ...] | None = None
        j = i
        while True:
            count = len(digits)
            if 13 <= count <= 19:
                tried += 1
                if lengths is None:
                    lengths = _card_lengths(digits)
                if count in lengths and _luhn(digits):
                    return found[i].start(), found[j].end()
            if j >= last or count > 19 or tried > 64 or not grouped:
                break
            j += 1
            following = parts[j]
            if not 3 <= len(following) <= 6:
                break
            digits += following
    return None


def _valid_ssn(m: re.Match[str]) -> bool:
    area, group, serial = m.group(1), m.group(2), m.group(3)
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _entropy(text: str) -> float:
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def _looks_random(token: str) -> bool:
    """A secret-looking token: long, mixed case with digits, not hex, not made of words.

    UUIDs, SHA hashes, trace and span IDs and nginx request IDs are hexadecimal; paths,
    identifiers and class names are mostly words; neither is taken for a secret.
    """
    core = token.rstrip("=")
    if len(core) < 32 or _HEXISH.fullmatch(core):
        return False
    # The cheap tests first: most candidates in a stack trace are file paths. (_TOKEN matches
    # ASCII only, so comparing case-mapped copies is "has an upper / a lower case letter".)
    if core.count("/") >= 3 or core.count("-") + core.count("_") >= 4:
        return False  # a path or a kebab/snake-case name
    if core.lower() == core or core.upper() == core or _DIGIT_GROUP.search(core) is None:
        return False  # needs digits and both cases
    wordy = sum(len(w) for w in _WORD.findall(core))
    if wordy * 10 >= len(core) * 4:
        return False  # 40% or more of it is words of 4+ letters
    return _entropy(core) >= 4.0


_PAIR_PREFILTER_MIN = 256
_DENY_WORDS: dict[tuple[frozenset[str], tuple[str, ...]], tuple[str, ...]] = {}


def _deny_words(deny: frozenset[str], suffixes: tuple[str, ...]) -> tuple[str, ...]:
    """The fewest words such that every denied key and suffix contains one of them."""
    words = set(deny) | set(suffixes)
    atoms = tuple(sorted(w for w in words if not any(o != w and o in w for o in words)))
    if len(_DENY_WORDS) >= 16:
        _DENY_WORDS.clear()
    _DENY_WORDS[(deny, suffixes)] = atoms
    return atoms


def _cut(text: str, limit: int) -> str:
    """Keep the head and tail of an over-long text, dropping a token split by the cut."""
    half = max(limit // 2 - 64, 1)
    head, tail = text[:half], text[-half:]
    space = head.rfind(" ", half - 1024)
    head = head[:space] if space > 0 else head[: max(half - 256, 0)]
    space = tail.find(" ", 0, 1024)
    tail = tail[space + 1 :] if space >= 0 else tail[256:]
    return f"{head} ...<{len(text) - len(head) - len(tail)} chars cut>... {tail}"


# How much text before the tail of an over-long text is redacted with it (see _scan_cut).
_CUT_LEAD = 4096


def _cut_head(text: str, half: int) -> str:
    """The head kept of an over-long text: up to a space near *half* characters, else up to
    a parameter's ``&`` or ``;`` (a long URL: never inside a mask)."""
    head = text[:half]
    space = head.rfind(" ", half - 1024)
    if space <= 0:
        space = max(head.rfind("&", half - 1024), head.rfind(";", half - 1024))
    return head[:space] if space > 0 else head[: max(half - 256, 0)]


def _cut_tail(text: str, half: int) -> str:
    """The tail kept of a redacted text: its last *half* characters from a line's start if
    one is near, else from a whitespace (never inside a token: a split secret, or a split word
    that looks random, would be written or redacted differently the next time)."""
    tail = text[-half:]
    newline = tail.find("\n", 0, 1024)
    if newline >= 0:
        return tail[newline + 1 :]
    space = _WHITESPACE.search(tail)
    return tail[space.end() :] if space is not None else ""


# --- the policy -------------------------------------------------------------------------------
_EXEMPT, _PLAIN, _DENY = 0, 1, 2
_PLAIN_INFO = (_PLAIN, None)  # the key rule's answer for what is no (name, value) pair
_PAIR_ALLOWED, _PAIR_DENIED, _PAIR_WORD = 0, 1, 2  # _pair_rule()'s answers
_SCALARS = frozenset({int, float, bool, type(None)})
#: A record's text to scan inside its containers, in ``max_text``s; past it, strings longer
#: than _ALWAYS_SCANNED characters are cut whole (their length kept).
_TEXT_BUDGET = 4
_ALWAYS_SCANNED = 64
_ALWAYS_CLEAN = (None, True, False)
# Written as numbers or ISO strings, never as free text. (Decimal, Fraction and UUID by name or
# ABC: importing decimal, fractions and uuid here would double configure()'s import time.)
_SAFE_TYPES = (numbers.Number, datetime, date, time, timedelta)
_SAFE_NAMES = frozenset({"UUID", "Decimal"})
_CACHE_MAX = 4096
_CLEAN_MAX_LEN = 256
# Longer clean strings are remembered too (the same stack trace logged again and again costs a
# hash instead of a ~0.4 ms scan), up to _LONG_CLEAN_CHARS characters in all per policy: then
# the clean set starts over. The budget is kept by the set's id (a stale entry only makes a
# later set start over early).
_LONG_CLEAN_MAX_LEN = 32768
_LONG_CLEAN_CHARS = 1 << 20
_long_clean_chars: dict[int, int] = {}
T = TypeVar("T")


def _no_values(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return ()


def _getter(keys: list[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if not keys:
        return _no_values
    # itemgetter of one key returns the bare value; asking twice keeps it a tuple.
    return itemgetter(*keys) if len(keys) > 1 else itemgetter(keys[0], keys[0])


class _Failed(Exception):
    """A hostile value could not be inspected (its own methods raised)."""


class _Walk(set[int]):
    """One record's walk: the ids of the containers it is inside (a cycle is one of them
    again), and how many more items it may look at (``max_total_items``)."""

    __slots__ = ("chars", "left")

    #: How many more container items it may look at (``max_total_items``).
    left: int
    #: How many more characters of text inside containers it may scan (four times
    #: ``max_text``); past them, longer strings are written as their length alone.
    chars: int

    def keep(self, most: int) -> int:
        """How many entries a container may keep, its marker included: *most*
        (``max_items``), fewer once the walk's items run short, none once they ran out (the
        container is then written as its marker alone, a string: a chain of one-item lists
        costs nothing more, and a second walk finds the same)."""
        left = self.left
        return most if left >= most else left if left > 0 else 0


def _length(value: Any) -> int:
    """A container's length as orjson and the renderers see it: a subclass of ``dict``,
    ``list`` or ``tuple`` may say otherwise in its own ``__len__``."""
    if isinstance(value, dict):
        return dict.__len__(value)
    if isinstance(value, list):
        return list.__len__(value)
    if isinstance(value, tuple):
        return tuple.__len__(value)
    return len(value)


def _take(
    active: _Walk, value: Any, iterable: Iterable[Any], most: int
) -> tuple[list[Any], int] | None:
    """The items of the container *value* (read from *iterable*) that the walk keeps: at most
    *most* (``max_items``) entries, its marker included, fewer once the record's count runs
    short, and how many more it holds (0: not cut); counted in ``active.left``. ``None`` once
    the count ran out (the container is then written as its marker alone)."""
    keep = active.keep(most)
    if not keep:
        return None
    items = list(islice(iterable, keep + 1))
    # (At least 2 when there are more: a __len__ of its own may say fewer.)
    more = max(_length(value), keep + 1) - keep + 1 if len(items) > keep else 0
    if more:
        del items[keep - 1 :]
    active.left -= keep if more else len(items)
    return items, more


def _cut_to_marker(value: Any) -> Any:
    """A container past the walk's count: its marker alone, a string (an empty one as it is)."""
    size = _length(value)
    return items_cut(size) if size else value


class RedactionPolicy:
    """What to redact, and how: keys, value patterns, exemptions and a callback.

    Build one and reuse it; it is immutable, thread-safe and caches its decisions. Call it as a
    pipeline processor, or use its helpers on request data.

    Args:
        keys: more keys to deny, compared whole after :func:`normalize_key`.
        key_suffixes: more denied suffixes (a key ending with one is denied).
        allow_keys: keys never redacted nor scanned, even if denied above (normalised too).
        patterns: more value patterns, ``{name: regex}``; matches become ``[REDACTED]``.
            Keep them simple (bounded repetition): they run on every uncached string.
        pii: also mask e-mail addresses, phone numbers and US SSNs, and deny :data:`PII_KEYS`.
        entropy: redact long mixed-case tokens that look random (hex and wordy ones never).
        callback: ``(path, value, match) -> replacement``, see :data:`Callback`.
        defaults: start from the default keys and patterns (``False``: only what you pass).
        replacement: the text a denied key's value becomes.
        max_text: longer text is cut to its head and tail before matching (bounded time and
            memory). The default, 64 KiB, is four times the JSON renderer's default
            ``max_line_bytes``: raise it with ``max_line_bytes`` if lines must carry more.
        max_depth: nesting below this depth is replaced by ``"<max depth>"``.
        max_items: a list, tuple, set or dict with more items keeps its first
            ``max_items - 1`` and ends with a marker (``"<N more items>"``, or a
            ``"<truncated>"`` key), as the JSON renderer cuts them: a million-item list costs
            the walk of a thousand, and nothing unwalked is ever written.
        max_total_items: the most items one record's walk looks at, in all its containers
            together (markers included). A container that would pass it is cut there, and
            each one reached after it is written as its marker alone (``"<N items cut>"``): a
            list of a thousand dicts of a thousand keys costs the walk of ten thousand items,
            not a million (and a 16 KiB JSON line shows far fewer anyway).

    Raises:
        ValueError: for a pattern that does not compile, or a limit below its minimum.
    """

    __slots__ = (
        "_allow",
        "_by_len",
        "_by_shape",
        "_callback",
        "_clean",
        "_clean_queries",
        "_deny",
        "_frozen",
        "_key_cache",
        "_pair_keys",
        "_patterns",
        "_suffixes",
        "defaults",
        "entropy",
        "max_depth",
        "max_items",
        "max_text",
        "max_total_items",
        "pii",
        "replacement",
    )

    def __init__(
        self,
        *,
        keys: Iterable[str] = (),
        key_suffixes: Iterable[str] = (),
        allow_keys: Iterable[str] = (),
        patterns: Mapping[str, str | re.Pattern[str]] | None = None,
        pii: bool = False,
        entropy: bool = True,
        callback: Callback | None = None,
        defaults: bool = True,
        replacement: str = REDACTED,
        max_text: int = 65536,
        max_depth: int = 64,
        max_items: int = 1000,
        max_total_items: int = 10_000,
    ) -> None:
        if max_text < 1024:
            raise ValueError(f"max_text must be at least 1024, got {max_text!r}")
        if max_depth < 1:
            raise ValueError(f"max_depth must be at least 1, got {max_depth!r}")
        if max_items < 10:
            raise ValueError(f"max_items must be at least 10, got {max_items!r}")
        if max_total_items < max_items:
            raise ValueError(
                f"max_total_items must be at least max_items ({max_items}), got {max_total_items!r}"
            )
        self.pii = bool(pii)
        self.entropy = bool(entropy)
        self.defaults = bool(defaults)
        self.replacement = replacement
        self.max_text = max_text
        self.max_depth = max_depth
        self.max_items = max_items
        self.max_total_items = max_total_items
        deny = set(DEFAULT_KEYS) if defaults else set()
        suffixes = set(DEFAULT_KEY_SUFFIXES) if defaults else set()
        if pii and defaults:
            deny |= PII_KEYS
        deny |= {normalize_key(k) for k in keys}
        suffixes |= {normalize_key(k) for k in key_suffixes}
        self._deny = frozenset(deny)
        self._suffixes = tuple(sorted(suffixes))
        self._allow = frozenset(normalize_key(k) for k in allow_keys)
        compiled: list[tuple[str, re.Pattern[str]]] = []
        for name, pattern in (patterns or {}).items():
            try:
                compiled.append((name, re.compile(pattern)))
            except (re.error, TypeError) as exc:
                raise ValueError(f"pattern {name!r} does not compile: {exc}") from None
        self._patterns = tuple(compiled)
        self._callback = callback
        self._key_cache: dict[str, tuple[int, str | None]] = {}
        self._pair_keys: dict[str, int] = {}  # a key=value key found in text -> _pair_rule()
        self._clean: set[object] = set(_ALWAYS_CLEAN)
        self._clean_queries: set[str] = set()  # whole query strings found clean
        self._by_len: dict[int, tuple[Any, ...]] = {}
        self._by_shape: dict[frozenset[str], tuple[Any, ...]] = {}
        self._frozen = True

    def __setattr__(self, name: str, value: Any) -> None:
        # Settings derive from one another (pii adds keys; caches hold decisions), so a
        # changed attribute would leave them inconsistent: build a new policy instead.
        if getattr(self, "_frozen", False):
            raise AttributeError(f"RedactionPolicy is immutable; build a new one to change {name}")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        extra = len(self._patterns)
        return (
            f"RedactionPolicy(pii={self.pii}, entropy={self.entropy}, "
            f"keys={len(self._deny)}+{len(self._suffixes)} suffixes, "
            f"allow={sorted(self._allow)}, patterns=+{extra}, "
            f"callback={'yes' if self._callback else 'no'})"
        )

    # --- keys ---------------------------------------------------------------------------------
    def is_denied(self, key: str) -> bool:
        """Whether values under *key* are redacted (an allowed key never is)."""
        return self._key_info(key, ())[0] == _DENY

    def _key_info(self, key: str, path: KeyPath) -> tuple[int, str | None]:
        """(exempt/plain/deny, the key's own text redacted if it held a secret, else None).

        Own fields are not exempt here: only a record's top-level keys can be servicelog's own
        (``_redact_record`` checks :data:`OWN_FIELDS` first).
        """
        info = self._key_cache.get(key)
        if info is not None:
            return info
        norm = normalize_key(key)
        if norm in self._allow:
            info = (_EXEMPT, None)
        else:
            kind = _DENY if norm in self._deny or norm.endswith(self._suffixes) else _PLAIN
            # A key can itself be a secret (a dict keyed by e-mail or by token).
            new_key, hit = self._scan_all(key, path) if len(key) > 5 else (key, False)
            if hit:
                return (kind, new_key if new_key != key else None)  # not cached: callback
            info = (kind, None)
        if len(key) <= 128:
            if len(self._key_cache) >= _CACHE_MAX:
                self._key_cache.clear()
            self._key_cache[key] = info
        return info

    def _text_key_denied(self, m: re.Match[str]) -> bool:
        """Whether a ``key=value`` found in text has a denied key.

        A key denied by a suffix (``...password``, ``...token``) counts in any form. A short
        whole-word key (``session``, ``auth``, ``key``) counts only quoted (``'key': ...``, as
        JSON and repr write it) or before ``=`` (query strings, ``name = value`` locals):
        ``session:4155`` and ``auth:6280`` in text are cache keys and namespaces, not secrets.
        """
        key = m.group(2)
        if key[:1] == "u":  # (a JSON-escaped "&" before it, ...\u0026key=, is no part of it)
            key = _found_key(m)
        rule = self._pair_keys.get(key)
        if rule is None:
            # Text dense with pairs repeats a few keys (a stack trace's locals, a query string
            # logged whole): the decision is remembered per key (~a quarter of the pair scan).
            # Only short keys: a long one may be a token, which must not stay in memory.
            rule = self._pair_rule(key)
            if len(key) <= 32:
                if len(self._pair_keys) >= _CACHE_MAX:
                    self._pair_keys.clear()
                self._pair_keys[key] = rule
        if rule == _PAIR_WORD:
            return m.group(1) != "" or m.group(3) != ":"
        return rule == _PAIR_DENIED

    def _pair_rule(self, key: str) -> int:
        """How a key found in text is judged: ``_PAIR_ALLOWED`` (never denied),
        ``_PAIR_DENIED`` (denied in any form) or ``_PAIR_WORD`` (denied when quoted or before
        ``=``); see :meth:`_text_key_denied`."""
        norm = normalize_key(key)
        if norm in self._allow:
            return _PAIR_ALLOWED
        if norm.endswith(self._suffixes):
            return _PAIR_DENIED
        return _PAIR_WORD if norm in self._deny else _PAIR_ALLOWED

    # --- the processor ------------------------------------------------------------------------
    # The fast path, a few C-level calls, for a record shaped like one seen before: the plan is
    # found by the record's length, and its getters raise KeyError for a missing key, so all
    # present means the same set of keys; the values that were numbers are still numbers
    # (``sum(..., 0.0)`` raises TypeError on a string, bytes, a container or None); and the
    # strings (with None and booleans) are all known to be clean. Containers and other objects
    # cannot be known clean: the plan names their keys, and only those values are walked (a
    # nested dict used to send the whole record down the slow path: ~7 us more per call).
    # ``__call__`` and ``fuse_emit`` both take it; keep the two copies identical.
    def __call__(self, record: dict[str, Any], levelno: int = 0) -> dict[str, Any]:
        """Redact a record (a pipeline processor). Returns *record* itself when nothing changed.

        Never raises: if redaction itself fails, every value that is not servicelog's own is
        replaced by ``[REDACTION FAILED]``, and the failure is counted.
        """
        try:
            plan = self._by_len[len(record)]
            plan[0](record)
            sum(plan[2](record), 0.0)
            if plan[4](plan[1](record)):
                return self._walk_values(record, plan[5]) if plan[5] else record
        except Exception:
            pass
        return self._process(record)

    def fuse_emit(
        self, after: Callable[[dict[str, Any], int], None]
    ) -> Callable[[dict[str, Any], int], None]:
        """This processor followed by *after*, as one function (the pipeline's hot path saves
        a Python call per record this way)."""
        by_len = self._by_len
        process = self._process
        walk_values = self._walk_values

        def redact_then(record: dict[str, Any], levelno: int) -> None:
            try:
                plan = by_len[len(record)]
                plan[0](record)
                sum(plan[2](record), 0.0)
                clean = plan[4](plan[1](record))
            except Exception:
                clean = False
            if not clean:
                record = process(record)
            elif plan[5]:
                record = walk_values(record, plan[5])
            after(record, levelno)

        return redact_then

    def _process(self, record: dict[str, Any]) -> dict[str, Any]:
        """Everything the fast path let through: a plan for another shape of the same length,
        new strings, or a record never seen. (The fast path's clean-strings test is not
        repeated: ``_redact_planned`` returns the record itself when nothing changed.)"""
        plan: tuple[Any, ...] | None = None
        try:
            plan = self._by_len.get(len(record))
            if plan is not None:
                try:
                    plan[0](record)
                    plan[1](record)
                except KeyError:  # another shape of the same length: its own plan, if any
                    plan = self._by_shape.get(frozenset(record))
                    if plan is None:
                        raise
                    self._by_len[len(record)] = plan  # found by its exact keys: all present
                sum(plan[2](record), 0.0)
        except Exception:
            plan = None  # a value changed kind (a number became a string): the slow path
        try:
            if plan is not None:
                # Same keys, same kinds of values: only the new strings, and the containers
                # and other objects, need a look.
                return self._redact_planned(record, plan)
            return self._redact_record(record)
        except Exception as exc:
            safe = self._paranoid(record)
            _errors.report("redaction", exc)
            return safe

    def _redact_planned(self, record: dict[str, Any], plan: tuple[Any, ...]) -> dict[str, Any]:
        out: dict[str, Any] | None = None
        clean = self._clean
        for key in plan[3]:
            value = record[key]
            if type(value) is not str:
                if value is None or value is True or value is False:
                    continue
                return self._redact_record(record)
            if value in clean:
                continue
            new = self._text(value, (key,))
            if new is not value:
                if out is None:
                    out = dict(record)
                out[key] = new
        return self._walk_values(record if out is None else out, plan[5], raises=True)

    def _walk_values(
        self, record: dict[str, Any], keys: tuple[str, ...], raises: bool = False
    ) -> dict[str, Any]:
        """*record* with the values of *keys* (containers and other objects, which the plan
        cannot know clean) walked; a copy if one changed. Only those values are walked: a
        record's other values were found clean by the plan, or by the caller."""
        try:
            out: dict[str, Any] | None = None
            active = self._new_walk()
            for key in keys:
                value = record[key]
                left, chars = active.left, active.chars
                if key not in _QUERY_FIELDS and self._known_clean(value, 1, active):
                    continue
                active.left, active.chars = left, chars  # (the test's counts: walked again)
                new = self._walk(value, (key,), 1, active)
                if new is not value:
                    if out is None:
                        out = dict(record)
                    out[key] = new
            return record if out is None else out
        except Exception as exc:
            if raises:
                raise
            safe = self._paranoid(record)
            _errors.report("redaction", exc)
            return safe

    def _new_walk(self) -> _Walk:
        """The state of one record's walk: its counts of items and text, whole."""
        active = _Walk()  # (set's own constructor, then the counts: no __init__ to call)
        active.left = self.max_total_items
        active.chars = self.max_text * _TEXT_BUDGET
        return active

    def _known_clean(self, value: Any, depth: int, active: _Walk) -> bool:
        """Whether *value* is plain dicts and lists (or tuples) of numbers, None, booleans and
        strings known clean, under keys known plain: nothing to redact, as a walk would find,
        at a fraction of its cost (no paths, no copies). ``False`` means "walk it". Counts
        the items it looks at in ``active.left``, as the walk does (the caller puts the count
        back when it gets ``False``)."""
        if depth > self.max_depth:
            return False
        clean = self._clean
        cls = type(value)
        if cls is dict or cls is list or cls is tuple:
            size = len(value)
            if size > self.max_items or size > active.left:
                return False  # the walk cuts it
            active.left -= size
        if cls is dict:
            key_info = self._key_cache.get
            for key, item in value.items():
                info = key_info(key) if type(key) is str else None
                if info is None or info[0] == _DENY:
                    return False
                if info[0] == _EXEMPT:
                    continue
                kind = type(item)
                if kind is str:
                    if item not in clean or (active.chars <= 0 and len(item) > _ALWAYS_SCANNED):
                        return False
                    active.chars -= len(item)
                elif not (
                    kind is int or kind is float or kind is bool or item is None
                ) and not self._known_clean(item, depth + 1, active):
                    return False
            return True
        if cls is list or cls is tuple:
            # The same leaf test as for a dict's values, written twice on purpose: collecting a
            # dict's values into a list for one shared loop cost ~150 ns per nested record.
            key_cache = self._key_cache.get
            for item in value:
                kind = type(item)
                if kind is str:
                    if item not in clean or (active.chars <= 0 and len(item) > _ALWAYS_SCANNED):
                        return False
                    active.chars -= len(item)
                elif kind is tuple or kind is list:
                    # A (name, value) pair: its name, seen before, must not deny its value.
                    if len(item) == 2:
                        first = item[0]
                        if type(first) is str and first[:1] != "b":  # not a bytes repr
                            long = len(first) > _MAX_PAIR_NAME  # text, not a name
                            info = _PLAIN_INFO if long else key_cache(first)
                        else:
                            name = _pair_name(item)
                            info = _PLAIN_INFO if name is None else key_cache(name)
                        if info is None or info[0] == _DENY:
                            return False
                    if not self._known_clean(item, depth + 1, active):
                        return False
                elif not (
                    kind is int or kind is float or kind is bool or item is None
                ) and not self._known_clean(item, depth + 1, active):
                    return False
            return True
        return False

    def _redact_record(self, record: dict[str, Any]) -> dict[str, Any]:
        if len(record) > self.max_items:
            # A record of 10^5 fields (``extra=`` a whole payload): its first fields (the head
            # comes first) and a count of the others, as the renderer cuts a too-long line.
            keep = self.max_items - 1
            cut = dict(islice(record.items(), keep))
            cut[DROPPED_FIELDS] = len(record) - keep
            return self._redact_record(cut)
        changes: list[tuple[str, str | None, Any]] = []
        exempt_keys: list[str] = []
        str_keys: list[str] = []
        other_keys: list[str] = []
        walk_keys: list[str] = []
        plannable = True
        active = self._new_walk()
        for key, value in record.items():
            if type(key) is str:
                if key in OWN_FIELDS:
                    exempt_keys.append(key)
                    continue
                kind, new_key = self._key_info(key, (key,))
                if kind == _EXEMPT:
                    exempt_keys.append(key)
                    continue
                text: str | None = key
            else:
                # A str subclass (a ``StrEnum`` member) or bytes is judged by its text, as in a
                # nested mapping (the renderer writes it as text); plans are for str keys.
                plannable = False
                text = _key_text(key)
                kind, new_key = (_PLAIN, None) if text is None else self._key_info(text, (key,))
                if kind == _EXEMPT:
                    continue
            if kind == _DENY:
                plannable = False
                new = self._deny_value(value, (key,), text or "")
            else:
                cls = type(value)
                if cls is int or cls is float:
                    other_keys.append(key)
                elif key in _QUERY_FIELDS:  # looked at on every record, as a query string
                    walk_keys.append(key)
                elif cls is str or value is None or value is True or value is False:
                    str_keys.append(key)  # None and booleans: the clean set always holds them
                else:  # containers and other objects: walked on every record
                    walk_keys.append(key)
                new = self._walk(value, (key,), 1, active)
            if new_key is not None:
                plannable = False
            if new is not value or new_key is not None:
                changes.append((key, new_key, new))
        if plannable and len(record) <= 256:
            self._remember_plan(record, exempt_keys, str_keys, other_keys, walk_keys)
        if not changes:
            return record
        if all(new_key is None for _, new_key, _ in changes):
            out = dict(record)
            for key, _, new in changes:
                out[key] = new
            return out
        renamed = {key: (new_key, new) for key, new_key, new in changes}
        out = {}
        counters: dict[Any, int] = {}
        for key, value in record.items():
            if key in renamed:
                new_key, value = renamed[key]
                key = new_key if new_key is not None else key
            out[_unique_key(key, out, counters)] = value
        return out

    def _remember_plan(
        self,
        record: dict[str, Any],
        exempt: list[str],
        strs: list[str],
        others: list[str],
        walks: list[str],
    ) -> None:
        keys = frozenset(record)
        plan = self._by_shape.get(keys)
        if plan is None or plan[3] != tuple(strs) or plan[5] != tuple(walks):  # changed kind
            # The first getter only proves that the keys are there: the walked ones too.
            getters = (_getter(exempt + walks), _getter(strs), _getter(others))
            plan = (*getters, tuple(strs), self._clean.issuperset, tuple(walks))
            if len(self._by_shape) >= 256:
                self._by_shape.clear()
            self._by_shape[keys] = plan
        self._by_len[len(record)] = plan

    def _paranoid(self, record: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            for key, value in record.items():
                own = type(key) is str and key in OWN_FIELDS
                plain = value is None or type(value) in _SCALARS
                out[key] = value if own or plain else REDACTION_FAILED
        except Exception:
            out["message"] = REDACTION_FAILED
        return out

    # --- values -------------------------------------------------------------------------------
    def _ask(self, path: KeyPath, value: Any, rule: str, text: str, default: Any) -> Any:
        callback = self._callback
        if callback is None:
            return default
        try:
            return callback(path, value, Match(rule, text, default))
        except Exception:
            _errors.counters["redaction_failed"] += 1
            return default

    def _deny_value(self, value: Any, path: KeyPath, key: str) -> Any:
        if value is None or value is True or value is False:
            return value  # says nothing, and "no password given" helps debugging
        if type(value) is str and (not value or value == self.replacement):
            return value
        return self._ask(path, value, "key", key, self.replacement)

    def _walk(self, value: Any, path: KeyPath, depth: int, active: _Walk) -> Any:
        """Redact any value; containers are copied only where something inside changed."""
        cls = type(value)
        if cls is str:
            if depth > 1:  # inside a container
                return self._nested_text(value, path, active)
            if len(path) == 1 and path[0] in _QUERY_FIELDS:
                return self._query(value, path)
            return self._text(value, path)
        if value is None or cls in _SCALARS:
            return value
        if depth > self.max_depth:
            return _TOO_DEEP
        try:
            if cls is dict or isinstance(value, Mapping):
                return self._walk_mapping(value, path, depth, active)
            if cls is list or cls is tuple:
                return self._walk_sequence(value, path, depth, active)
            if isinstance(value, tuple) and (
                isinstance(getattr(cls, "_fields", None), tuple) or _own_repr(cls)
            ):
                return self._walk_written_tuple(value, path, depth, active)
            if isinstance(value, (list, tuple, deque)):
                return self._walk_sequence(value, path, depth, active)
            if isinstance(value, (set, frozenset)):
                return self._walk_set(value, path, depth, active)
            if isinstance(value, str):  # a str subclass: orjson writes its text
                text = str.__str__(value)
                new = self._text(text, path)
                return value if new is text else new
            if isinstance(value, (bytes, bytearray, memoryview)):
                raw = bytes(value[: self.max_text * 4])
                text = raw.decode("utf-8", "backslashreplace")
                new = self._text(text, path)
                return new if new is not text or len(raw) < len(value) else value
            if isinstance(value, _SAFE_TYPES) or type(value).__name__ in _SAFE_NAMES:
                return value
            if isinstance(value, os.PathLike):  # written as its path
                text = os.fspath(value)
                if not isinstance(text, str):
                    return value
                new = self._text(text, path)
                return value if new is text else new
            if isinstance(value, Enum):
                inner = self._walk(value.value, (*path, "value"), depth + 1, active)
                return value if inner is value.value else inner
            if hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type):
                fields = dataclass_fields(value)
                new_fields = self._walk_mapping(fields, path, depth, active)
                return value if new_fields is fields else new_fields
            if depth > 1:  # inside a container: its repr counts as text
                if active.chars <= 0:
                    return f"<{type(value).__name__} cut>"
                return self._walk_opaque(value, path, active)
            return self._walk_opaque(value, path)
        except _Failed:  # a container whose iteration raised
            return self._walk_opaque(value, path)
        except RecursionError:
            return _TOO_DEEP
        except Exception as exc:
            # Something we did not foresee: we could not look inside this value, so it must
            # not be written as it is. Counted, and said on stderr (at most once a minute).
            _errors.counters["redaction_failed"] += 1
            try:
                _errors.report("redaction", exc)
            except Exception:  # strict mode (pytest): a value of the caller's, not a bug to raise
                pass
            return REDACTION_FAILED

    def _walk_opaque(self, value: Any, path: KeyPath, active: _Walk | None = None) -> Any:
        """An object the renderers write as its repr (an exception as "Type: message"); in a
        container (*active*), that text counts against the record's text to scan."""
        try:
            text, made = _describe(value)
        except _Failed:
            # Its repr raises: no renderer can write its contents either (they write a
            # "<unrepresentable ...>" placeholder), so there is nothing to redact.
            return value
        new = self._text(text, path)
        if active is not None:  # what the repr cost to make, at least what is written
            active.chars -= max(made, len(new))
        return value if new is text else new

    def _nested_text(self, text: str, path: KeyPath, active: _Walk) -> str:
        """A string inside a container. Scanned while the record's text to scan lasts (four
        times ``max_text``: a list of a thousand 60 KiB documents took 10 s, for a 16 KiB
        line); past it, a string longer than 64 characters is written as its length alone.
        What is kept counts as written, so that a second walk cuts the same strings."""
        if active.chars <= 0 and len(text) > _ALWAYS_SCANNED:
            new = f"<{len(text)} chars cut>"
        else:
            new = self._text(text, path)
        active.chars -= len(new)
        return new

    def _walk_mapping(
        self, value: Mapping[Any, Any], path: KeyPath, depth: int, active: _Walk
    ) -> Any:
        ident = id(value)
        if ident in active:
            return _CYCLE
        try:
            # dict.items for a dict subclass: orjson reads the dict itself, not an override.
            pairs = dict.items(value) if isinstance(value, dict) else value.items()
            taken = _take(active, value, pairs, self.max_items)
        except Exception:
            raise _Failed from None
        if taken is None:
            return _cut_to_marker(value)
        items, more = taken
        active.add(ident)
        try:
            out: list[tuple[Any, Any]] | None = None
            for i, (key, item) in enumerate(items):
                new_key = None
                text = key if type(key) is str else _key_text(key)
                if text is not None:
                    kind, new_key = self._key_info(text, (*path, key))
                else:
                    kind = _PLAIN
                    if type(key) not in _SCALARS and key is not None:
                        # A tuple or an object: written as its repr (orjson refuses the key),
                        # so it is walked as a value is (a pair by its name); a changed key
                        # becomes its text if it cannot stay a key.
                        walked = self._walk_item(key, (*path, key), depth, active)
                        if walked is not key:
                            new_key = walked if _hashable(walked) else safe_repr(walked)
                if kind == _EXEMPT:
                    new = item
                elif kind == _DENY:
                    new = self._deny_value(item, (*path, key), text or "")
                else:
                    new = self._walk(item, (*path, key), depth + 1, active)
                if out is None and (new is not item or new_key is not None):
                    out = items[:i]
                if out is not None:
                    out.append((new_key if new_key is not None else key, new))
        finally:
            active.discard(ident)
        if out is None:
            if not more:
                return value
            out = items
        result: dict[Any, Any] = {}
        counters: dict[Any, int] = {}
        for key, item in out:
            result[_unique_key(key, result, counters)] = item
        if more:
            result[_unique_key("<truncated>", result, counters)] = f"{more} more items"
        return result

    def _walk_written_tuple(self, value: Any, path: KeyPath, depth: int, active: _Walk) -> Any:
        """A namedtuple, or a tuple subclass with a repr of its own. orjson refuses both, so a
        line holds its repr (the fast path) or its items (the renderer's safe path): its items
        (a namedtuple's fields, by name) are walked, and a repr of its own is judged as text
        too. In a container it counts as text: written as its type once the record's text
        ran out, and a text it became counts for its length, as a second walk will count it."""
        cls = type(value)
        inside = depth > 1
        before = active.chars
        if inside and before <= 0:
            return f"<{cls.__name__} cut>"
        named = isinstance(getattr(cls, "_fields", None), tuple)
        if named:
            new = self._walk_namedtuple(value, path, depth, active)
        else:
            new = self._walk_sequence(value, path, depth, active)
        if new is value and _own_repr(cls):
            new = self._walk_opaque(value, path, active if inside else None)
        if inside and type(new) is str:
            active.chars = before - max(before - active.chars, len(new))
        return new

    def _walk_namedtuple(self, value: Any, path: KeyPath, depth: int, active: _Walk) -> Any:
        """A namedtuple: orjson does not know it, so the renderer writes its repr, field names
        included (``Creds(user='bob', password='hunter2')``). Its fields are walked as a
        mapping (so ``password`` is a denied key, as in a dict); if one changed, the value
        becomes that repr of the redacted fields, as the renderer would have written it."""
        fields = dict(zip(type(value)._fields, tuple.__iter__(value), strict=False))
        new_fields = self._walk_mapping(fields, path, depth, active)
        if new_fields is fields or not isinstance(new_fields, dict):
            return value if new_fields is fields else new_fields  # unchanged, or "<cycle>"
        # (safe_repr: a field whose repr raises is written as the renderers write it.)
        inner = ", ".join(f"{name}={safe_repr(item)}" for name, item in new_fields.items())
        return _cap_repr(f"{type(value).__name__}({inner})")

    def _walk_sequence(self, value: Any, path: KeyPath, depth: int, active: _Walk) -> Any:
        ident = id(value)
        if ident in active:
            return _CYCLE
        # The C-level iterator, as orjson reads a list or tuple subclass, not an override.
        if isinstance(value, list):
            iterator = list.__iter__(value)
        elif isinstance(value, tuple):
            iterator = tuple.__iter__(value)
        else:  # a deque (written as its repr)
            iterator = iter(value)
        taken = _take(active, value, iterator, self.max_items)
        if taken is None:
            return _cut_to_marker(value)
        items, more = taken
        active.add(ident)
        try:
            out: list[Any] | None = None
            for i, item in enumerate(items):
                new = self._walk_item(item, (*path, i), depth, active)
                if out is None and new is not item:
                    out = items[:i]
                if out is not None:
                    out.append(new)
        finally:
            active.discard(ident)
        if out is None:
            if not more:
                return value
            out = items
        if more:
            out.append(f"<{more} more items>")
        if isinstance(value, tuple):
            return tuple(out)
        return deque(out) if isinstance(value, deque) else out

    def _walk_item(self, item: Any, path: KeyPath, depth: int, active: _Walk) -> Any:
        """An item of a sequence or set. A ``(name, value)`` pair, as in ASGI's or httpx's
        raw headers or a dict's ``items()``, is judged by its name: the value of a denied name
        is redacted, as under a mapping key, and a name that is itself a secret (an e-mail in
        it) as a key is."""
        kind = type(item)
        name = _pair_name(item) if kind is tuple or kind is list else None
        if name is None or (info := self._key_info(name, path))[0] != _DENY:
            return self._walk(item, path, depth + 1, active)
        secret = item[1]
        hidden = self._deny_value(secret, (*path, name), name)
        label = item[0] if info[1] is None else info[1]
        if hidden is secret and label is item[0]:
            return item
        return kind((label, hidden))

    def _walk_set(self, value: Any, path: KeyPath, depth: int, active: _Walk) -> Any:
        try:
            taken = _take(active, value, value, self.max_items)
        except Exception:
            raise _Failed from None
        if taken is None:
            return _cut_to_marker(value)
        items, more = taken
        changed = more > 0
        out = []
        for i, item in enumerate(items):
            new = self._walk_item(item, (*path, i), depth, active)
            changed = changed or new is not item
            out.append(new)
        if not changed:
            return value
        if more:
            out.append(f"<{more} more items>")
        if more or active.left <= 0:
            # Cut, or the count ran out inside: a list, in the order walked (the renderers
            # write a set as a list). A new set would iterate in another order, so a second
            # walk would count, and cut, other items; and items cut to one marker would merge.
            return out
        try:
            return frozenset(out) if isinstance(value, frozenset) else set(out)
        except TypeError:  # an unhashable replacement (a redacted dict inside a tuple)
            return out

    # --- text ---------------------------------------------------------------------------------
    def _text(self, text: str, path: KeyPath) -> str:
        """Redact one string, remembering clean strings so they cost a set lookup next time."""
        n = len(text)
        cacheable = n <= _LONG_CLEAN_MAX_LEN
        if cacheable and text in self._clean:
            return text
        new, found = self._scan_all(text, path)
        if not found and cacheable:
            clean = self._clean
            full = len(clean) >= _CACHE_MAX
            if n > _CLEAN_MAX_LEN:
                if len(_long_clean_chars) > 64:  # policies come and go (tests): forget them
                    _long_clean_chars.clear()
                used = _long_clean_chars.get(id(clean), 0) + n
                full = full or used > _LONG_CLEAN_CHARS
                _long_clean_chars[id(clean)] = n if full else used
            elif full:
                _long_clean_chars.pop(id(clean), None)
            if full:
                clean.clear()
                clean.update(_ALWAYS_CLEAN)
            clean.add(text)
        return new

    def _scan_all(self, text: str, path: KeyPath) -> tuple[str, bool]:
        """(redacted text, whether any rule matched or the text was cut).

        Text longer than ``max_text`` is cut first (bounded time). After a match the text is
        scanned again until nothing changes (at most 3 more rounds), so that redacting twice
        is redacting once: a mask can change what precedes a later match ("6789password=" has
        no key, "****password=" has).
        """
        if len(text) > self.max_text:
            return self._scan_cut(text, path), True
        new, found = self._scan_stable(text, path)
        return (text if not found or new == text else new), found

    def _scan_stable(self, text: str, path: KeyPath) -> tuple[str, bool]:
        new, found = self._scan(text, path)
        if found:
            current = text
            for _ in range(3):
                if new == current:
                    break
                current = new
                new, _ = self._scan(current, path)
        return new, found

    def _scan_cut(self, text: str, path: KeyPath) -> str:
        """Over-long text, redacted and cut to its head and tail.

        The tail is redacted before it is cut out, together with the ``_CUT_LEAD`` characters
        before it: a pair that straddles the cut (``password: `` before it, the secret after)
        is found whole, where a tail cut first used to keep the secret without its key. The
        result is scanned once more as a whole (so that redacting it again changes nothing).
        """
        limit = self.max_text
        half = max(limit // 2 - 64, 1)
        # The head too is redacted before it is cut (with what follows it), so that redacting
        # the result again changes nothing: masks longer than what they replace used to push
        # a head redacted afterwards past the limit, to be cut once more, unscanned.
        region, _ = self._scan_stable(text[: half + _CUT_LEAD], path)
        head = _cut_head(region, half)
        begin = max(len(text) - half - _CUT_LEAD, half)
        region, _ = self._scan_stable(text[begin:], path)
        tail = _cut_tail(region, half)
        cut = max(len(text) - len(head) - len(tail), 0)  # about: the tail was redacted
        new, _ = self._scan_stable(f"{head} ...<{cut} chars cut>... {tail}", path)
        return _cut(new, limit) if len(new) > limit else new

    def _scan(self, text: str, path: KeyPath, decoded: bool = False) -> tuple[str, bool]:
        """Apply every text rule once; return the text and whether any rule matched (a match
        the callback kept counts: such a string must not be cached as clean). Order matters:
        URL passwords and key=value pairs go before the patterns that match parts of them.
        *decoded*: *text* is a run :meth:`_encoded` decoded (not decoded again)."""
        n = len(text)
        if n < _PROVIDER_MIN_LEN and not self._patterns and _PLAIN_SHORT.fullmatch(text):
            return text, False  # one regex call instead of ten checks
        original = text
        found = False
        builtin = self.defaults
        if builtin and n >= 27 and "PRIVATE KEY" in text:
            text, hit = self._private_keys(text, path)
            found |= hit
        if builtin and "://" in text and "@" in text:
            text, hit = self._sub(_USERINFO, text, path, self._userinfo_repl)
            found |= hit
        if "=" in text or ":" in text:
            text, hit = self._pairs(text, path)
            found |= hit
        n = len(text)
        if (
            builtin
            and (" " in text or "\t" in text)
            and (
                "earer" in text
                or "asic" in text
                or "oken" in text
                or "EARER" in text
                or "ASIC" in text
                or "OKEN" in text
            )
        ):
            text, hit = self._sub(_AUTH_SCHEME, text, path, self._scheme_repl)
            found |= hit
        if builtin and "eyJ" in text:
            text, hit = self._sub(_JWT, text, path, self._jwt_repl)
            found |= hit
        if builtin and n >= _PROVIDER_MIN_LEN:
            # Every provider pattern starts with one of a few literals: a few substring
            # searches skip the regex (which tries each branch at each position) on most text.
            if any(prefix in text for prefix in _PROVIDER_PREFIXES):
                text, hit = self._sub(_PROVIDER, text, path, self._provider_repl)
                found |= hit
            if self.entropy and n >= 32:
                text, hit = self._sub(_TOKEN, text, path, self._token_repl)
                found |= hit
        # Cards, phone numbers and SSNs all need a run of 9+ digits and separators.
        if n >= 10 and (builtin or self.pii) and _DIGIT_RUN.search(text) is not None:
            if builtin and n >= 13:
                text, hit = self._sub(_CARD, text, path, self._card_repl)
                found |= hit
            if self.pii:
                if "-" in text:
                    text, hit = self._sub(_SSN, text, path, self._ssn_repl)
                    found |= hit
                text, hit = self._sub(_PHONE, text, path, self._phone_repl)
                found |= hit
        if self.pii and "@" in text:
            text, hit = self._sub(_EMAIL, text, path, self._email_repl)
            found |= hit
        for name, pattern in self._patterns:
            text, hit = self._sub(pattern, text, path, self._user_repl(name))
            found |= hit
        if not decoded and "%" in text and _ENCODED_MARK.search(text) is not None:
            text, hit = self._encoded(text, path)
            found |= hit
        return (text if found else original), found

    def _encoded(self, text: str, path: KeyPath) -> tuple[str, bool]:
        """Redact what percent-encoding hides from the rules (see :data:`_ENCODED_MARK`): each
        run of text without whitespace that holds an escape is scanned decoded (every layer),
        and what the rules changed is replaced in the run as written: a secret's encoded
        characters by the mask (``%3Fcode%3D[REDACTED]``); the rest keeps its encoding. After
        :data:`_ENCODED_RUNS` runs, the rest of the text is read as one (a text of thousands
        of them costs a few scans, not thousands)."""
        pieces: list[str] = []
        found = False
        done = 0
        runs = 0
        mark = _ENCODED_MARK.search(text)
        while mark is not None:
            begin, end = _run_bounds(text, mark.start(), mark.end())
            runs += 1
            if runs > _ENCODED_RUNS:  # bounded time: the rest is read as one run
                end = len(text)
            decoded, starts = _fully_decoded(text[begin:end])
            new, hit = self._scan(decoded, path, decoded=True)
            found |= hit
            if new != decoded:
                for i1, i2, j1, j2 in _changes(decoded, new):
                    pieces.append(text[done : begin + starts[i1]])
                    pieces.append(new[j1:j2])
                    done = begin + starts[i2]
            mark = _ENCODED_MARK.search(text, end)
        if not pieces:
            return text, found
        pieces.append(text[done:])
        return "".join(pieces), found

    def _sub(
        self,
        pattern: re.Pattern[str],
        text: str,
        path: KeyPath,
        repl: Callable[[re.Match[str], KeyPath], str | None],
    ) -> tuple[str, bool]:
        """Like ``pattern.sub``, where *repl* returns ``None`` for "not a match after all"."""
        first = pattern.search(text)
        if first is None:  # the common case, without finditer's overhead
            return text, False
        pieces: list[str] = []
        last = 0
        hit = False
        for m in pattern.finditer(text, first.start()):
            new = repl(m, path)
            if new is None:
                continue
            hit = True
            pieces.append(text[last : m.start()])
            pieces.append(new)
            last = m.end()
        if not hit:
            return text, False
        pieces.append(text[last:])
        return "".join(pieces), True

    def _replace(self, path: KeyPath, rule: str, matched: str, default: str) -> str | None:
        """The replacement for a match (the callback's, else *default*); ``None`` when the
        match is already what it would become."""
        if matched == default:
            return None
        got = self._ask(path, matched, rule, matched, default)
        return got if isinstance(got, str) else default  # text can only take text

    # each rule: (match, path) -> replacement text, or None to leave the match alone
    def _userinfo_repl(self, m: re.Match[str], path: KeyPath) -> str | None:
        password = m.group(2)
        if password == self.replacement or _PORT_AND_PATH.match(password):
            return None
        new = self._replace(path, "url_password", password, self.replacement)
        return None if new is None else f"{m.group(1)}{new}@"

    def _scheme_repl(self, m: re.Match[str], path: KeyPath) -> str | None:
        scheme, space, token = m.group(1), m.group(2), m.group(3)
        if scheme.lower() == "basic":
            if not _is_basic_credential(token):
                return None
        elif len(token) < 8 or not (
            len(token) >= 20 or any(c.isdigit() or c in "-._~+/=" for c in token)
        ):
            return None  # "the bearer instrument", "token expired": words, not credentials
        new = self._replace(path, scheme.lower(), token, self.replacement)
        return None if new is None else f"{scheme}{space}{new}"

    def _jwt_repl(self, m: re.Match[str], path: KeyPath) -> str | None:
        return self._replace(path, "jwt", m.group(0), self.replacement)

    def _provider_repl(self, m: re.Match[str], path: KeyPath) -> str | None:
        start = m.start()
        if start and m.string[start - 1] in _TOKEN_CHARS:
            return None  # the middle of a longer token, not a key of its own
        token = m.group(0)
        name = next((n for p, n in _PROVIDER_NAMES if token.startswith(p)), "api_key")
        return self._replace(path, name, token, self.replacement)

    def _token_repl(self, m: re.Match[str], path: KeyPath) -> str | None:
        token = m.group(0)
        if not _looks_random(token):
            return None
        return self._replace(path, "high_entropy", token, self.replacement)

    def _card_repl(self, m: re.Match[str], path: KeyPath) -> str | None:
        run = m.group(0)
        span = _find_card(run)
        if span is None:
            return None
        start, end = span
        number = run[start:end]
        digits = number.replace(" ", "").replace("-", "")  # _CARD's only separators
        new = self._replace(path, "card", number, _CARD_MASK + digits[-4:])
        return None if new is None else run[:start] + new + run[end:]

    def _ssn_repl(self, m: re.Match[str], path: KeyPath) -> str | None:
        if not _valid_ssn(m):
            return None
        return self._replace(path, "ssn", m.group(0), _SSN_MASK)

    def _phone_repl(self, m: re.Match[str], path: KeyPath) -> str | None:
        number = m.group(0)
        count = sum(ch.isdigit() for ch in number)
        if not 8 <= count <= 15:
            return None
        return self._replace(path, "phone", number, _PHONE_MASK)

    def _email_repl(self, m: re.Match[str], path: KeyPath) -> str | None:
        local, tld = m.group(1), m.group(3)
        # The guide's mask (m[:3] + "***@***" + m[-4:]), but never all of a short local part,
        # and only the top-level domain ("x.io"[-4:] would be the whole domain).
        keep = min(3, len(local) - 1)
        return self._replace(path, "email", m.group(0), f"{local[:keep]}***@***.{tld}")

    def _user_repl(self, name: str) -> Callable[[re.Match[str], KeyPath], str | None]:
        def repl(m: re.Match[str], path: KeyPath) -> str | None:
            if not m.group(0):
                return None
            return self._replace(path, name, m.group(0), self.replacement)

        return repl

    def _private_keys(self, text: str, path: KeyPath) -> tuple[str, bool]:
        pieces: list[str] = []
        pos = 0
        hit = False
        while True:
            begin = _PRIVATE_KEY_BEGIN.search(text, pos)
            if begin is None:
                break
            end = _PRIVATE_KEY_END.search(text, begin.end(), begin.end() + _MAX_KEY_BLOCK)
            stop = end.end() if end is not None else min(len(text), begin.end() + _MAX_KEY_BLOCK)
            block = text[begin.start() : stop]
            new = self._replace(path, "private_key", block, self.replacement)
            if new is not None:
                pieces.append(text[pos : begin.start()])
                pieces.append(new)
                hit = True
            else:
                pieces.append(text[pos:stop])
            pos = stop
        if not hit:
            return text, False
        pieces.append(text[pos:])
        return "".join(pieces), True

    def _pairs(self, text: str, path: KeyPath) -> tuple[str, bool]:
        """``key=value`` pairs inside text whose key is denied: the value is replaced."""
        if (
            len(text) > _PAIR_PREFILTER_MIN
            and not self._may_hold_denied_key(text)
            and _QUERY_KEY_HINT.search(text) is None
            and _ESCAPED_AMP_TEXT not in text
        ):
            return text, False
        pieces: list[str] = []
        last = 0
        hit = False
        replacement = self.replacement
        callback = self._callback
        keys = _PAIR_KEY_BYTES if _has_bytes_prefix(text) else _PAIR_KEY
        for m in keys.finditer(text):
            if m.start() < last or not (self._text_key_denied(m) or _query_key(m, text)):
                continue
            vm = _PAIR_VALUE.match(text, m.end())
            if vm is None:
                continue
            start, end = vm.start("value"), vm.end("value")
            value = vm.group("value")
            if not value or text.startswith(replacement, start):
                continue
            bare = "'" not in value and '"' not in value and value[0] not in _OPENERS
            if bare:
                if self._is_code(m, vm, text):
                    continue  # source code in a traceback: password = get_password(...)
                end = _bare_end(text, start, m)
            elif value[0] in _OPENERS:
                end = _balanced_end(text, start, _OPENERS[value[0]])
            value = text[start:end]
            if _unquoted(value) in _KEEP_VALUES:
                continue
            opening = "" if bare else value[:3]
            quote_char = "'" if "'" in opening else '"' if '"' in opening else ""
            default = f"{quote_char}{replacement}{quote_char}" if quote_char else replacement
            new = (
                default
                if callback is None
                else self._ask((*path, key := _found_key(m)), value, "key", key, default)
            )
            hit = True
            pieces.append(text[last:start])
            pieces.append(new if isinstance(new, str) else default)
            last = end
        if not hit:
            return text, False
        pieces.append(text[last:])
        return "".join(pieces), True

    @staticmethod
    def _is_code(key: re.Match[str], value: re.Match[str], text: str) -> bool:
        """Whether a denied key's bare value is a call or a subscript in source code (a
        traceback's line ``password = read_secret("db")``, ``token = headers["x"]``): a name
        followed by "(" or "[", after an "=" spaced as code, is. ``password=Tr0ub4dor(3)x``
        in a message is a value. So is a lambda's head (``sorted(rows, key=lambda row: ...)``,
        in every traceback through such a line); ``key=lambda`` alone is a value."""
        sep_start, sep_end = key.span(3)
        if key.group(3) == "=" and _LAMBDA.match(text, value.start("value")) is not None:
            return value.group("scheme") is None
        return (
            key.group(3) == "="
            and value.group("scheme") is None
            and text[sep_start - 1 : sep_start] in (" ", "\t")
            and text[sep_end : sep_end + 1] in (" ", "\t")
            and _CALL.match(text, value.start("value")) is not None
        )

    def _may_hold_denied_key(self, text: str) -> bool:
        """Whether *text* could hold a ``key=value`` pair with a denied key.

        ``_PAIR_KEY`` tries a key at every word of the text (~0.2 ms for a stack trace); a
        denied key's normalised form contains one of a few words (the denied keys and
        suffixes that contain no other one), and in ASCII text it is a substring of the
        normalised text. So when none of them is there, no pair can be denied. Text that is
        not ASCII is always scanned (case mapping is not per character there).
        """
        if not text.isascii():
            return True
        words = _DENY_WORDS.get((self._deny, self._suffixes))
        if words is None:
            words = _deny_words(self._deny, self._suffixes)
        norm = text.lower().translate(_KEY_SEPARATORS)
        return any(word in norm for word in words)

    # --- the helpers --------------------------------------------------------------------------
    def redact_text(self, text: str) -> str:
        """Redact one piece of text (a message, an exception message, a stack trace).

        Returns:
            The text with every match replaced; *text* itself when nothing matched.
        """
        try:
            return self._text(text, ())
        except Exception as exc:
            _errors.report("redaction", exc)
            return REDACTION_FAILED

    def redact_mapping(self, obj: T) -> T:
        """Redact any value: a mapping, a list, a string, nested to any depth.

        Returns:
            A redacted copy where something changed (containers are copied only along the
            path to a change), otherwise *obj* itself.
        """
        try:
            return self._walk(obj, (), 0, self._new_walk())  # type: ignore[no-any-return]
        except Exception as exc:
            _errors.report("redaction", exc)
            return REDACTION_FAILED  # type: ignore[return-value]

    def redact_headers(self, headers: Any) -> Any:
        """Redact HTTP headers: a mapping, or ``(name, value)`` pairs of ``str`` or ``bytes``
        (an ASGI scope's ``headers``). Returns the same shape.

        Denied headers (``Authorization``, ``Cookie``, ``Set-Cookie``, ``X-API-Key``, anything
        ending in ``token``/``secret``, ...) become ``[REDACTED]``, keeping an authorization
        scheme (``Bearer [REDACTED]``); other values are scanned like any text.
        """
        try:
            if isinstance(headers, Mapping):
                return {k: self._header(k, v) for k, v in headers.items()}
            return [(k, self._header(k, v)) for k, v in headers]
        except Exception as exc:
            _errors.report("redaction", exc)
            return REDACTION_FAILED

    def _header(self, name: Any, value: Any) -> Any:
        as_bytes = isinstance(value, (bytes, bytearray))
        key = name.decode("latin-1") if isinstance(name, (bytes, bytearray)) else str(name)
        text = value.decode("latin-1") if as_bytes else str(value)
        kind, _ = self._key_info(key, (key,))
        if kind == _EXEMPT:
            return value
        if kind == _DENY:
            if not text:
                return value
            scheme, sep, _ = text.partition(" ")
            keep = sep and scheme.lower() in ("bearer", "basic", "token", "digest", "negotiate")
            default = f"{scheme} {self.replacement}" if keep else self.replacement
            new = self._ask((key,), text, "key", key, default)
        else:
            new = self._text(text, (key,))
        if new is text or new == text:
            return value
        new = new if isinstance(new, str) else default
        return new.encode("latin-1", "replace") if as_bytes else new

    def redact_query(self, query: T) -> T:
        """Redact a query string (``str`` or ``bytes``, ``&`` or ``;`` separated).

        The value of a denied key becomes ``[REDACTED]``; other values are scanned as text.
        Unchanged parts keep their exact encoding.
        """
        try:
            if isinstance(query, (bytes, bytearray)):
                text = bytes(query).decode("latin-1")
                new = self._query(text, ())
                return query if new is text else new.encode("latin-1")  # type: ignore[return-value]
            if isinstance(query, str):
                return self._query(query, ())  # type: ignore[return-value]
            return query
        except Exception as exc:
            _errors.report("redaction", exc)
            return REDACTION_FAILED  # type: ignore[return-value]

    def _query(self, query: str, path: KeyPath) -> str:
        clean = self._clean_queries
        if query in clean:  # the same query string again (?page=1, a health check's): as is
            return query
        quote, unquote_plus = _url_codec()
        original = query
        if len(query) > self.max_text:
            query = _cut(query, self.max_text)
        parts = _QUERY_SEPARATORS.split(query)
        changed = False
        for i in range(0, len(parts), 2):
            part = parts[i]
            raw_key, sep, raw_value = part.partition("=")
            # unquote_plus is pure Python: most keys and values have nothing to decode.
            key = unquote_plus(raw_key) if "%" in raw_key or "+" in raw_key else raw_key
            if not sep:  # a bare value ("?AKIA...") is text like any other
                new_part = self._text(key, path)
                if new_part is not key and new_part != key:
                    parts[i] = quote(new_part, safe="[]*@:/")
                    changed = True
                continue
            kind, _ = self._key_info(key, (*path, key))
            if kind == _EXEMPT or not raw_value:
                continue
            if kind == _DENY or (kind == _PLAIN and key.lower() in _QUERY_KEYS):
                if raw_value == self.replacement:
                    continue
                new = self._ask((*path, key), unquote_plus(raw_value), "key", key, REDACTED)
                if new == unquote_plus(raw_value):
                    continue
                parts[i] = f"{raw_key}{sep}{new}"
                changed = True
                continue
            value = unquote_plus(raw_value) if "%" in raw_value or "+" in raw_value else raw_value
            new_value = self._text(value, (*path, key))
            new_raw = raw_value
            if new_value is not value and new_value != value:
                new_raw = quote(new_value, safe="[]*@:/")
            if "%" in new_raw:  # read as written too: decoded, "a%20b&code=" is no single run
                new_raw = self._text(new_raw, (*path, key))
            if new_raw != raw_value:
                parts[i] = f"{raw_key}{sep}{new_raw}"
                changed = True
        if changed:
            return "".join(parts)
        # Unchanged and short: remember it (not with a callback, which must see every match:
        # a denied key's value it kept leaves the query unchanged too).
        if query is original and len(query) <= _CLEAN_QUERY_MAX_LEN and self._callback is None:
            if len(clean) >= _CLEAN_QUERIES_MAX:
                clean.clear()
            clean.add(query)
        return query

    def redact_url(self, url: T) -> T:
        """Redact a URL: the password in ``scheme://user:password@host``, the values of denied
        query (and fragment) parameters, and secrets anywhere else in it."""
        try:
            if isinstance(url, (bytes, bytearray)):
                text = bytes(url).decode("latin-1")
                new = self._url(text)
                return url if new is text else new.encode("latin-1")  # type: ignore[return-value]
            if isinstance(url, str):
                return self._url(url)  # type: ignore[return-value]
            return url
        except Exception as exc:
            _errors.report("redaction", exc)
            return REDACTION_FAILED  # type: ignore[return-value]

    def _url(self, url: str) -> str:
        if len(url) > self.max_text:
            url = _cut(url, self.max_text)
        # Split by hand rather than with urlsplit: it rejects some hostile URLs (unbalanced
        # IPv6 brackets) and respells others; what is not redacted must come out unchanged.
        # The password first: it may hold "#" (and "/"), which would split it.
        if "@" in url:
            url, _ = self._sub(_USERINFO, url, ("url",), self._userinfo_repl)
        head, qmark, rest = url.partition("?")
        if qmark:
            query, hash_, fragment = rest.partition("#")
        else:
            head, hash_, fragment = head.partition("#")
            query = ""
        # The head holds the password in scheme://user:password@host, path parameters
        # (;jsessionid=...) and tokens in the path; the query and fragment are parameters.
        new_head = self._text(head, ("url",))
        new_query = self._query(query, ("url", "query")) if query else query
        new_fragment = fragment
        if "=" in fragment:
            new_fragment = self._query(fragment, ("url", "fragment"))
        elif fragment:
            new_fragment = self._text(fragment, ("url", "fragment"))
        if new_head is head and new_query is query and new_fragment is fragment:
            return url
        return f"{new_head}{qmark}{new_query}{hash_}{new_fragment}"


def _key_text(key: object) -> str | None:
    """The text a mapping key is judged by: a str subclass's own text (an enum member's value,
    not its ``str()``), bytes decoded (a parsed form's ``b"password"``); ``None`` for a key no
    key rule applies to (a number, a tuple)."""
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, bytes):
        return key.decode("utf-8", "backslashreplace")
    return None


#: The longest first item of a pair judged as a name (a header's, a key's).
_MAX_PAIR_NAME = 256


def _pair_name(item: object) -> str | None:
    """The name of *item* if it is a ``(name, value)`` pair (a tuple or list of two whose first
    item is text or bytes: a raw header, a dict's item), else ``None``. A name written as a
    bytes repr (``"b'authorization'"``, as sentry-sdk serialises an ASGI scope's headers) is
    judged by its text."""
    if type(item) is not tuple and type(item) is not list:
        return None
    pair: tuple[Any, ...] | list[Any] = item
    if len(pair) != 2:
        return None
    first = pair[0]
    if isinstance(first, (str, bytes)) and len(first) > _MAX_PAIR_NAME:
        return None  # text, not a name (a search result's (text, score)): walked as a value
    name = _key_text(first)
    if name is not None and len(name) > 3 and name[0] == "b" and name[1] in "'\"":
        return name[2:-1] if name[-1] == name[1] else name
    return name


def _unique_key(key: Any, taken: Mapping[Any, Any], counters: dict[Any, int]) -> Any:
    """*key*, or, when a redacted key collides with another, the first free ``key~2``,
    ``key~3``, ... A counter per key keeps this linear: a dict keyed by thousands of e-mail
    addresses masked alike (``use***@***.com``) used to cost quadratic time."""
    if key not in taken:
        return key
    n = counters.get(key, 1)
    while True:
        n += 1
        candidate = f"{key}~{n}"
        if candidate not in taken:
            counters[key] = n
            return candidate


def _describe(value: Any) -> tuple[str, int]:
    """The text the JSON renderer writes for an object it does not know: "Type: message" for
    an exception, else the repr, cut at 4,096 characters (as ``render.json.default`` does);
    and the length of that text before the cut (what making it cost).

    Raises:
        _Failed: when neither can be had (the renderer then writes a placeholder).
    """
    if isinstance(value, BaseException):
        try:
            text = f"{type(value).__qualname__}: {value}"
            return text, len(text)
        except Exception:
            pass  # the renderer falls back to the repr, and so do we
    try:
        text = guarded_repr(value)
    except Exception:
        raise _Failed from None
    return _cap_repr(text), len(text)


def _cap_repr(text: str) -> str:
    """A repr cut at 4,096 characters, as ``render.json.default`` cuts it."""
    return text if len(text) <= 4096 else f"{text[:4096]}...<{len(text) - 4096} more chars>"


def _own_repr(cls: type) -> bool:
    """Whether a tuple subclass is written as a repr of its own: not tuple's, nor the one
    ``collections.namedtuple`` makes (the fields are walked for that one)."""
    method: object = cls.__repr__
    return method is not tuple.__repr__ and getattr(method, "__module__", None) != "collections"


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except Exception:
        return False
    return True


def _is_basic_credential(token: str) -> bool:
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in raw


def _balanced_end(text: str, start: int, closer: str) -> int:
    """The end of a bracketed value starting at *start*: its matching bracket, else the end
    of the line (no other limit: the text was cut to ``max_text``, and the brackets alone are
    visited)."""
    depth = 0
    for m in _BRACKETS[text[start]].finditer(text, start):
        ch = m.group()
        if ch == closer:
            depth -= 1
            if depth == 0:
                return m.end()
        elif ch == "\n":
            return m.start()
        else:
            depth += 1
    return len(text)


def _bare_end(text: str, start: int, key: re.Match[str]) -> int:
    """Where a denied key's bare (unquoted) value starting at *start* ends: at whitespace or
    a quote, so the whole of ``password=abc;def&ghi`` or ``Tr0ub4dor(3)x`` is the value, but
    before a bracket it did not open and before a next parameter (see ``_BARE_STOPS``). A
    header-style cookie or authorization (``Cookie: a=1; sessid=...``) runs to the end of
    the line. Only the value is visited (text dense with pairs stays linear)."""
    if key.group(3) == ":" and normalize_key(key.group(2)).endswith(_LINE_VALUE_KEYS):
        return _line_end(text, start)
    depth = 0
    for m in _BARE_STOPS.finditer(text, start):
        ch = m.group()
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return m.start()
            depth -= 1
        elif depth == 0 or (ch not in "&;," and ch != "\\u0026"):
            return m.start()  # (whitespace and quotes end it inside brackets too)
    return len(text)


def _line_end(text: str, start: int) -> int:
    """The end of a header-style value: the end of the line, or a quote that closes the
    string the header sits in (``{"h": "Cookie: a=1; b=2"}``). A quote after "=" opens a
    quoted parameter (``Digest username="bob", response="..."``), which is part of it."""
    newline = text.find("\n", start)
    end = len(text) if newline < 0 else newline
    pos = start
    while (stop := _LINE_END.search(text, pos, end)) is not None:
        at, quote = stop.start(), stop.group()[-1]
        if quote == "\r" or text[at - 1 : at] != "=":
            end = at
            break
        close = text.find(quote, stop.end(), end)
        if close < 0:
            break  # a parameter never closed: the rest of the line
        pos = close + 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _unquoted(value: str) -> str:
    """A value without its quotes (and a ``b``/``r``/``u`` prefix before them): ``'None'``
    and ``b''`` reveal nothing, but ``burr`` and ``uNone`` are values (a ``str.strip`` of those
    letters used to let them through). A bare value's trailing "," or ";" is punctuation
    (``password=None,``)."""
    body = value.lstrip("bBrRuU")
    if len(value) - len(body) > 2 or body[:1] not in ("'", '"', "\\"):
        body = value  # letters, not a prefix (rb'' has two)
    if body[:1] == "\\":
        body = body[1:]
    quote = body[:1]
    if quote not in ("'", '"'):
        return value.rstrip(",;")
    body = body[1:]
    body = body[:-1] if body.endswith(quote) else body
    return body[:-1] if body.endswith("\\") else body


# --- module-level helpers ---------------------------------------------------------------------
_defaults: dict[bool, RedactionPolicy] = {}


def default_policy(pii: bool = False) -> RedactionPolicy:
    """The default policy (shared, so its caches stay warm across ``configure()`` calls).

    Args:
        pii: with the PII patterns and keys (what the production profile uses).
    """
    policy = _defaults.get(pii)
    if policy is None:
        policy = _defaults.setdefault(pii, RedactionPolicy(pii=pii))
    return policy


def get_policy() -> RedactionPolicy:
    """The policy ``configure()`` installed; the default policy when there is none.

    Code that calls a helper explicitly asked for redaction, so with ``configure(redaction=
    False)`` (or before ``configure()``) the helpers still redact, with the default policy.
    """
    global _settings
    if _settings is None:  # _config imports this module: import it on first use, then keep it
        from ._config import settings

        _settings = settings
    policy = getattr(_settings(), "redaction", None)
    return policy if isinstance(policy, RedactionPolicy) else default_policy()


_settings: Callable[[], object] | None = None


def redact_text(text: str) -> str:
    """:meth:`RedactionPolicy.redact_text` with the configured policy."""
    return get_policy().redact_text(text)


def redact_mapping(obj: T) -> T:
    """:meth:`RedactionPolicy.redact_mapping` with the configured policy."""
    return get_policy().redact_mapping(obj)


def redact_headers(headers: Any) -> Any:
    """:meth:`RedactionPolicy.redact_headers` with the configured policy."""
    return get_policy().redact_headers(headers)


def redact_query(query: T) -> T:
    """:meth:`RedactionPolicy.redact_query` with the configured policy."""
    return get_policy().redact_query(query)


def redact_url(url: T) -> T:
    """:meth:`RedactionPolicy.redact_url` with the configured policy."""
    return get_policy().redact_url(url)

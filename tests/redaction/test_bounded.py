"""Redaction runs in bounded time on hostile input: no catastrophic backtracking, no quadratic
validation. These are "does not hang" tests with a generous bound, not speed measurements."""

from __future__ import annotations

import collections
from typing import Any

import orjson
import pytest

from servicelog.redaction import REDACTED, RedactionPolicy

MIB = 1 << 20

# Each is 1 MiB of near-misses for one of the patterns (or for the validation behind it).
ADVERSARIAL = {
    "one long word": "a" * MIB,
    "key=value pairs": "a=b " * (MIB // 4),
    "denied keys without values": "password=" * (MIB // 9),
    "denied keys with values": "password=x " * (MIB // 11),
    "quoted values never closed": ('password="' + "x" * 3000) * (MIB // 3010),
    "brackets never closed": ("key=" + "{" * 5000) * (MIB // 5004),
    "digits": "1" * MIB,
    "digits and separators": "1 2-" * (MIB // 4),
    "card-like groups": "4111 1111 1111 111 " * (MIB // 19),
    "phone-like groups": "+1 2 3 4 5 6 7 " * (MIB // 15),
    "SSN-like groups": "123-45-678 " * (MIB // 11),
    "at signs": "a@" * (MIB // 2),
    "e-mail local parts": ("a" * 63 + "@") * (MIB // 64),
    "JWT headers": "eyJ" * (MIB // 3),
    "JWT-ish segments": "eyJaaaaaaaaaa." * (MIB // 14),
    "URL schemes": "a://b:" * (MIB // 6),
    "URL userinfo never closed": ("http://u:" + "p" * 300) * (MIB // 309),
    "bearer words": "Bearer " * (MIB // 7),
    "provider prefixes": "AKIAsk-ghp_xoxb-" * (MIB // 16),
    "mixed-case tokens": ("Ab3" * 11 + " ") * (MIB // 34),
    "private key headers": "-----BEGIN RSA PRIVATE KEY-----" * (MIB // 31),
    "quotes and colons": "'key': '" * (MIB // 8),
    "query-only keys in text": "a=1&code=xyz " * (MIB // 13),
    "query-only keys in one URL": "/cb?" + "&code=x" * (MIB // 7),
    "percent-encoded pairs": "password%3Dx " * (MIB // 13),
    "percent-encoded twice": "a%253D%2526code%253Dxyz " * (MIB // 24),
    "percent-encoded marks": "%3D" * (MIB // 3),
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_a_mebibyte_of_near_misses_is_cut_before_matching(text: str) -> None:
    """Hostile text is cut to max_text before any pattern runs, and redacting the result
    again changes nothing. (How long some of these take is in bench/redaction_bench.py's
    hostile table; a pattern that backtracks for ever would hit the suite's per-test
    timeout.)"""
    policy = RedactionPolicy(pii=True)
    out = policy.redact_text(text)
    assert len(out) <= policy.max_text, "text is cut before matching"
    assert policy.redact_text(out) == out


def test_a_large_structure_is_cut_in_breadth_and_still_redacted() -> None:
    """10^5 keys and a 10^5-item list: the walk is cut at max_items (marked), and what it
    keeps is redacted."""
    policy = RedactionPolicy(pii=True)
    value: dict[str, Any] = {"list": [f"item {i}" for i in range(100_000)]}
    value["password"] = "hunter2"
    value["card"] = "4111 1111 1111 1111"
    value.update({f"key_{i}": f"value {i}" for i in range(100_000)})
    out = policy.redact_mapping(value)
    assert out["password"] == REDACTED
    assert out["card"] == "****-****-****-1111"
    assert len(out) <= policy.max_items + 1 and "<truncated>" in out
    assert len(out["list"]) <= policy.max_items + 1
    assert "hunter2" not in repr(out) and "4111 1111" not in repr(out)


HOSTILE_TEXT = [
    "password=\udcff\udc80",  # lone surrogates (surrogateescape'd bytes)
    "token=abc\x00def",
    "token=abc\r\nINFO forged line",
    "token=a\u2028b\u2029c\u0085d",
    "\x1b[2J\x1b]8;;http://evil\x07password=x",
    "\u202epassword=x",
    "pass\u2028word=x",
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_hostile_text_is_redacted_and_still_renders_as_one_line(text: str) -> None:
    """Control characters, line breaks and lone surrogates neither break redaction nor the
    one-line guarantee of the rendered record (catalog items I1, I2)."""
    from servicelog.render.json import JsonRenderer

    policy = RedactionPolicy(pii=True)
    out = policy({"message": text, "field": text, "nested": [{"password": text}]}, 20)
    assert out["nested"] == [{"password": "[REDACTED]"}]
    line = JsonRenderer()(out)
    assert line.count(b"\n") == 1 and len(line.decode("utf-8").splitlines()) == 1
    assert policy.redact_text(policy.redact_text(text)) == policy.redact_text(text)


# --- breadth (catalog item I3) --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "kept"),
    [
        pytest.param(list(range(10**6)), [*range(999), "<999001 more items>"], id="list"),
        pytest.param(tuple("a" * 5000), (*("a" * 999), "<4001 more items>"), id="tuple"),
        pytest.param(
            {f"k{i}": i for i in range(10**5)},
            {**{f"k{i}": i for i in range(999)}, "<truncated>": "99001 more items"},
            id="dict",
        ),
    ],
)
def test_a_container_longer_than_max_items_is_cut_with_a_marker(value: Any, kept: Any) -> None:
    """A million-item list costs the walk of a thousand: the first ``max_items - 1`` items and
    a marker, as the JSON renderer cuts them; nothing the policy did not look at remains.
    Cutting again changes nothing (the result has exactly ``max_items`` items)."""
    policy = RedactionPolicy(pii=True)
    out = policy({"message": "m", "v": value}, 20)["v"]
    assert out == kept
    assert type(out) is type(value)
    assert policy({"message": "m", "v": out}, 20)["v"] == out


def test_a_secret_in_a_long_container_is_redacted_and_the_rest_is_cut() -> None:
    policy = RedactionPolicy(pii=True, max_items=10)
    rows: list[Any] = [{"password": "hunter2"}, "token=abc", *range(100), "AKIAIOSFODNN7EXAMPLE"]
    out = policy.redact_mapping({"rows": rows})["rows"]
    assert out[:2] == [{"password": "[REDACTED]"}, "token=[REDACTED]"]
    assert out[-1] == "<94 more items>" and len(out) == 10
    assert "AKIA" not in repr(out)
    assert rows[0] == {"password": "hunter2"}, "the caller's list is not modified"


def test_a_set_longer_than_max_items_is_cut_with_a_marker() -> None:
    out = RedactionPolicy(max_items=10).redact_mapping({"s": set(range(50))})["s"]
    assert len(out) == 10 and "<41 more items>" in out


def test_a_record_with_more_fields_than_max_items_keeps_its_head_and_counts_the_rest() -> None:
    """10^5 fields (``extra=`` a whole payload): the first fields, the head among them, and
    ``log.dropped_fields``; the renderer adds what it drops for the line cap to that count."""
    from servicelog.render.json import JsonRenderer

    policy = RedactionPolicy(pii=True)
    record: dict[str, Any] = {"@timestamp": "t", "log.level": "info", "message": "wide"}
    record.update({f"k{i}": "v" * 20 for i in range(10**5)})
    out = policy(record, 20)
    assert len(out) == 1000 and list(out)[:3] == ["@timestamp", "log.level", "message"]
    assert out["log.dropped_fields"] == len(record) - 999
    line = orjson.loads(JsonRenderer(4096)(out))
    kept = [k for k in line if k.startswith("k")]
    assert line["truncated"] is True and kept
    assert line["log.dropped_fields"] == 10**5 - len(kept)


def test_max_items_has_a_floor() -> None:
    with pytest.raises(ValueError, match="max_items"):
        RedactionPolicy(max_items=3)


# --- breadth across nesting: one count for the whole record -----------------------------------
def test_nested_breadth_is_cut_by_one_count_for_the_whole_record() -> None:
    """A list of a thousand dicts of a thousand keys: each container is within ``max_items``,
    but the walk looks at ``max_total_items`` items in all, its markers included; a container
    reached after that is written as its marker alone (``"<N items cut>"``). The secrets it looked at are redacted,
    nothing it did not look at is written, and cutting again changes nothing."""
    policy = RedactionPolicy(pii=True, max_items=10, max_total_items=25)
    rows = [{f"k{i}": f"row {j} value {i}" for i in range(9)} for j in range(5)]
    rows[0]["password"] = "hunter2"
    rows[4]["password"] = "swordfish"
    out = policy({"message": "m", "rows": rows}, 20)["rows"]
    # The list's 5 entries, the first dict's 10 and the second's 9 (24), then one entry left
    # (the third dict's marker), then none.
    assert len(out) == 5
    assert out[0]["password"] == "[REDACTED]" and len(out[0]) == 10
    assert out[1] == rows[1]
    assert out[2:] == [{"<truncated>": "9 more items"}, "<9 items cut>", "<10 items cut>"]
    assert "swordfish" not in repr(out) and "hunter2" not in repr(out)
    assert policy({"message": "m", "rows": out}, 20)["rows"] == out


def test_past_the_count_a_chain_of_one_item_containers_is_cut_at_once() -> None:
    """A container with one item is cut too once the count ran out (as its marker), so chains
    of one-item lists hanging off every kept item cost nothing more (they were walked whole:
    half a million lists, 1.6 s a call, for ten nested lists of shared 58-deep chains)."""
    chain: list[Any] = ["token=abc"]
    for _ in range(50):
        chain = [chain]
    policy = RedactionPolicy(max_items=10, max_total_items=30)
    out = policy.redact_mapping({"rows": [chain] * 5})["rows"]
    text = orjson.dumps(out).decode()
    assert text.count("[") <= 32 and "token=abc" not in text
    assert "<1 item cut>" in text
    assert policy.redact_mapping({"rows": out})["rows"] == out


def test_a_list_whose_own_len_says_fewer_items_is_cut_by_what_it_holds() -> None:
    """A list or dict subclass whose ``__len__`` says fewer items than it holds: orjson writes
    what it holds, so the walk counts that (its items past the cut were written unseen)."""

    class Short(list):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 5

    class ShortDict(dict):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 5

    policy = RedactionPolicy(max_items=10)
    items = Short([f"row {i}" for i in range(50)] + ["token=abc123secret"])
    rows = ShortDict({f"k{i}": i for i in range(50)} | {"k50": "token=abc123secret"})
    out = policy({"message": "m", "items": items, "rows": rows}, 20)
    line = orjson.dumps(out).decode()
    assert "abc123secret" not in line
    assert out["items"][-1] == "<42 more items>" and out["rows"]["<truncated>"] == "42 more items"


def test_a_set_cut_by_the_count_is_written_as_the_list_it_walked() -> None:
    """A set the walk cut, or in which the count ran out, is written as a list in the order
    walked: a new set would iterate in another order (a second walk would count, and cut,
    other items), and items cut to the same marker would merge in it."""
    policy = RedactionPolicy(max_items=10, max_total_items=20)
    value = {(f"t{i}", f"{i}-a", f"{i}-b", f"{i}-c") for i in range(8)}
    out = policy.redact_mapping({"s": value})["s"]
    assert isinstance(out, list) and len(out) == 8
    assert policy.redact_mapping({"s": out})["s"] == out
    markers = [item for item in out if isinstance(item, str)]
    assert markers and all(m == "<4 items cut>" for m in markers)


def test_a_container_shared_along_many_paths_costs_the_count_not_every_path() -> None:
    """``node = [node, node]`` twenty deep is a million leaves along shared paths (walked once
    per path, this took minutes): the count cuts it after ``max_total_items`` items."""
    policy = RedactionPolicy()
    node: list[Any] = ["token=abc"]
    for _ in range(20):
        node = [node, node]
    out = policy.redact_mapping({"tree": node})["tree"]
    text = orjson.dumps(out).decode()
    assert "token=[REDACTED]" in text and "token=abc" not in text
    assert "items cut>" in text
    assert policy.redact_mapping({"tree": out})["tree"] == out


def test_the_known_clean_shortcut_and_the_walk_agree_on_what_the_count_cuts() -> None:
    """The second record of a shape takes the planned path, where values whose strings are all
    known clean skip the walk: it counts the same items, so it cuts the same containers."""
    policy = RedactionPolicy(max_items=10, max_total_items=30)

    def record() -> dict[str, Any]:
        return {"message": "m", "a": [["x"] * 9] * 3, "b": {"k": ["y"] * 9}, "n": 1}

    first = policy(record(), 20)  # the full walk (and the plan is made)
    second = policy(record(), 20)  # the plan: "a" is known clean now
    assert first == second
    assert first["b"] == "<1 item cut>"  # (the count ran out in "a")


@pytest.mark.parametrize("redaction", [True, False])
def test_a_record_of_a_million_nested_values_renders_one_capped_line(redaction: bool) -> None:
    """With or without redaction, a matrix of a million numbers or a list of a thousand
    1,000-key dicts becomes one line within ``max_line_bytes`` that says it was cut (the JSON
    renderer counts items across nesting too, for the policy-free pipeline)."""
    from servicelog.render.json import JsonRenderer

    renderer = JsonRenderer()
    policy = RedactionPolicy()
    shared = {f"k{i}": f"value {i}" for i in range(1000)}
    for value in ([list(range(1000))] * 1000, [shared] * 1000):
        record = {"@timestamp": "t", "log.level": "info", "message": "big", "v": value}
        line = renderer(policy(record, 20) if redaction else record)
        assert len(line) <= renderer.max_line_bytes and line.endswith(b"\n")
        parsed = orjson.loads(line)
        assert parsed["message"] == "big" and parsed["truncated"] is True


def test_max_total_items_is_at_least_max_items() -> None:
    with pytest.raises(ValueError, match="max_total_items"):
        RedactionPolicy(max_items=100, max_total_items=50)


def test_text_inside_containers_is_scanned_up_to_four_max_texts_per_record() -> None:
    """A thousand 60 KiB documents in a list took 10 s a call (every one scanned, for a 16 KiB
    line): the record's containers have ``4 * max_text`` characters of text scanned, then a
    longer string is written as its length alone and an object as its type. Short strings
    are always scanned; secrets before the cut are redacted; cutting again changes nothing."""
    policy = RedactionPolicy(max_text=2048)  # 8 KiB of text to scan
    docs: list[Any] = [f"password=hunter{i} " + "x" * 2000 for i in range(10)]
    docs += ["token=abc123", "short", object(), {"k": "y" * 100}]
    out = policy({"message": "m", "docs": docs}, 20)["docs"]
    # four documents (2,020 characters each, as written) and a fifth begun within the 8 KiB
    assert all(d.startswith("password=[REDACTED] xxx") for d in out[:5])
    assert out[5:10] == ["<2017 chars cut>"] * 5
    assert out[10:12] == ["token=[REDACTED]", "short"]
    assert out[12] == "<object cut>" and out[13] == {"k": "<100 chars cut>"}
    assert "hunter" not in orjson.dumps(out).decode()
    assert policy({"message": "m", "docs": out}, 20)["docs"] == out


def test_the_known_clean_shortcut_counts_text_as_the_walk_does() -> None:
    policy = RedactionPolicy(max_text=1024)

    def record() -> dict[str, Any]:
        return {"message": "m", "a": ["z" * 1000] * 5, "b": ["w" * 100], "n": 1}

    first = policy(record(), 20)
    second = policy(record(), 20)  # "a" is known clean now: its text is counted all the same
    assert first == second
    assert first["a"] == ["z" * 1000] * 5 and first["b"] == ["<100 chars cut>"]


def test_a_tuple_written_as_text_counts_as_text_in_a_container() -> None:
    """A namedtuple (or a tuple subclass with a repr of its own) is written as text: past the
    record's text it is cut to its type, and the text it becomes counts for its length, so a
    second walk cuts the same (a 77-character repr was kept, then cut the second time)."""
    nt = collections.namedtuple("NT", "a b c d password")
    policy = RedactionPolicy(max_text=1024)
    for filler in (["x" * 1000] * 4, ["x" * 1000] * 4 + ["x" * 60]):
        value = {"f": [*filler, nt("a1", "b1", "c1", "d1", "hunter2"), ["y" * 100]]}
        once = policy.redact_mapping(value)
        assert "hunter2" not in repr(once)
        assert policy.redact_mapping(once) == once
    # 36 characters left before it: its 59-character text leaves none for the list after it
    assert once["f"][-2] == "NT(a='a1', b='b1', c='c1', d='d1', password='[REDACTED]')"
    assert once["f"][-1] == ["<100 chars cut>"]
    past = policy.redact_mapping({"f": [*["x" * 1000] * 5, nt(1, 2, 3, 4, "hunter2")]})
    assert past["f"][-1] == "<NT cut>"

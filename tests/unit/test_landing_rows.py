"""Turning 4D entities into landing rows: the record as sent, a hash of its business fields, and
every value PostgreSQL cannot store replaced and noted so that only its record is rejected."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from legacy_sync import landing
from legacy_sync.landing import copy_block


def landed(entity: dict[str, Any], key: str = "ProductID") -> tuple[str, dict[str, Any], str]:
    """(legacy_id, payload, row hash) of one entity, read back from its COPY row."""
    line = copy_block([dict(entity)], key, "run 1").decode()
    run_id, legacy_id, payload, row_hash = line.rstrip("\n").split("\t")
    assert run_id == "run 1"
    return legacy_id, orjson.loads(payload.replace("\\\\", "\\")), row_hash


ENTITY = {
    "__KEY": "7",
    "__STAMP": 3,
    "__TIMESTAMP": '"2017-03-06T14:47:38.001Z"',
    "__GlobalStamp": 9,
    "ProductID": 7,
    "ProductName": "Chain\r\nring\tx",
    "SellStartDate": "30!4!2008",
}


def test_row_keeps_the_record_as_sent_and_hashes_only_business_fields() -> None:
    legacy_id, stored, row_hash = landed(ENTITY)
    assert legacy_id == "7"
    assert stored["ProductName"] == "Chain\r\nring\tx" and stored["SellStartDate"] == "30!4!2008"
    assert stored["__TIMESTAMP"] == "2017-03-06T14:47:38.001Z"  # legacy quoting removed
    # A save that changes nothing but 4D's stamps is not a change.
    assert landed({**ENTITY, "__STAMP": 4, "__GlobalStamp": 12})[2] == row_hash
    assert landed({**ENTITY, "ProductName": "Chainring"})[2] != row_hash


def test_nul_characters_are_replaced_and_flagged_for_rejection() -> None:
    _, stored, _ = landed({"__KEY": "1", "ProductID": 1, "ProductName": "bad\x00name"})
    assert stored["ProductName"] == "bad\ufffdname"
    assert stored["__landing_issues"] == [
        "ProductName contains NUL characters (U+0000), which PostgreSQL cannot store"
    ]


def test_nul_in_the_key_or_a_system_field_fails_only_that_record() -> None:
    legacy_id, stored, _ = landed({"__KEY": "5\x00", "__TIMESTAMP": "2026\x00", "Name": "x"}, "ProductID")
    assert legacy_id == "5\ufffd"
    assert "\x00" not in orjson.dumps(stored).decode()
    assert (
        "__KEY contains NUL characters (U+0000), which PostgreSQL cannot store" in stored["__landing_issues"]
    )
    assert any(issue.startswith("__TIMESTAMP contains NUL") for issue in stored["__landing_issues"])


def test_what_the_client_could_not_read_becomes_a_landing_issue() -> None:
    entity = {"__KEY": "3", "Phone": "123456789012345678901234567890"}
    entity["__value_issues"] = ["Phone holds an integer wider than 64 bits (123456789012345678901234567890)"]
    _, stored, _ = landed(entity)
    assert stored["__landing_issues"] == entity["__value_issues"]
    assert "__value_issues" not in stored


def test_key_falls_back_to___key_when_the_attribute_is_absent() -> None:
    assert landed({"__KEY": "42", "Name": "x"})[0] == "42"


GENERAL_CASES: list[dict[str, Any]] = [
    ENTITY,
    {**ENTITY, "ProductID": "AB12"},  # a text key COPY needs nothing escaped in
    {**ENTITY, "ProductID": "A\tB\\C"},  # a text key COPY must escape
    {"__KEY": "42", "Name": "x"},  # no key attribute: __KEY
    {"__KEY": "1", "ProductID": True, "Name": "x"},
    {"ProductID": 3.5, "Name": "x"},
    {**ENTITY, "__entityModel": "Products"},  # a system attribute landing does not know by name
    {**ENTITY, "Name": "__looks like a system name"},
    {**ENTITY, "Path": "C:\\4D\\data", "Note": 'say "hi"'},
    {**ENTITY, "ProductName": "bad\x00name"},
    {**ENTITY, "__TIMESTAMP": "2026\x00"},
    {**ENTITY, "__value_issues": ["Phone holds an integer wider than 64 bits (1234567890123456789012)"]},
    {"ProductID": 8, "Name": "no system attributes"},
    {"__KEY": "9", "__STAMP": 1, "ProductID": 9},
    {"ProductID": 10},
    {"__GlobalStamp": 5, "Name": "z", "ProductID": 11, "__KEY": "11", "__STAMP": 2},  # another order
]


def rows(block: bytes) -> list[tuple[str, str, dict[str, Any], str]]:
    out = []
    for line in block.decode().splitlines():
        run_id, legacy_id, payload, row_hash = line.split("\t")
        out.append((run_id, legacy_id, orjson.loads(payload.replace("\\\\", "\\")), row_hash))
    return out


def general(entities: list[dict[str, Any]], run_id: str, *, read_again: bool = False) -> bytes:
    """Every record through the general path, one by one."""
    prefix = landing._copy_text(run_id) + b"\t"
    out = b""
    for entity in entities:
        if read_again:
            entity[landing.READ_AGAIN] = True
        out += landing._encoded_row(prefix, entity, "ProductID")
    return out


@pytest.mark.parametrize("read_again", [False, True])
def test_a_page_lands_each_record_as_the_general_path_does(read_again: bool) -> None:
    """The per-page fast path and the general per-record path land the same legacy id, payload
    (as jsonb compares it) and row hash, record for record and in order."""
    page = [dict(e) for e in GENERAL_CASES]
    fast = copy_block([dict(e) for e in page], "ProductID", "run\\1", read_again=read_again)
    slow = general([dict(e) for e in page], "run\\1", read_again=read_again)
    assert rows(fast) == rows(slow)
    assert len(rows(fast)) == len(GENERAL_CASES)
    # The row hash is the MD5 of the business attributes in the order 4D sent them.
    _, _, stored, row_hash = rows(fast)[0]
    business = {k: v for k, v in stored.items() if not k.startswith("__")}
    assert row_hash == hashlib.md5(orjson.dumps(business), usedforsecurity=False).hexdigest()

"""The landing pipeline: a reader thread, an encoder thread and the COPY in the caller's thread.

Pages must reach the COPY whole and in order whatever the threads' timing, and a failure in any
stage must reach the caller (so the table's COPY and transaction fail) with both threads ended.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from legacy_sync import landing
from legacy_sync.fourd.errors import PagingError
from legacy_sync.fourd.wire import Page
from legacy_sync.registry import get_table

TABLE = get_table("Products")
PAGES, SIZE = 12, 50


class FakeCopy:
    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.blocks: list[bytes] = []
        self.delay = delay
        self.fail_on = fail_on

    def write(self, block: bytes) -> None:
        if self.fail_on is not None and len(self.blocks) == self.fail_on:
            raise OSError("server closed the connection")
        time.sleep(self.delay * random.random())
        self.blocks.append(block)


def pages(asked: list[int], fail_after: int | None = None, delay: float = 0.002) -> Iterator[Page]:
    """PAGES pages of SIZE records with ascending keys; each page's request is noted in ``asked``."""
    for number in range(PAGES):
        if fail_after is not None and number == fail_after:
            raise PagingError("4D sent ProductID 7 before ProductID 3, out of key order")
        asked.append(number)
        time.sleep(delay * random.random())
        first = number * SIZE
        entities = [
            {"__KEY": str(k), "__STAMP": 1, "ProductID": k, "ProductName": f"p{k}"}
            for k in range(first, first + SIZE)
        ]
        yield Page(entities=entities, count=PAGES * SIZE - first, global_stamp=None)


def landed_keys(blocks: list[bytes]) -> list[int]:
    return [int(line.split(b"\t")[1]) for block in blocks for line in block.splitlines()]


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("4d-page-reader", "copy-encoder")]


@pytest.mark.parametrize("seed", range(5))
def test_pages_are_written_whole_and_in_order(seed: int) -> None:
    random.seed(seed)
    copy = FakeCopy(delay=0.003)
    writer = landing._Writer(copy, TABLE, "r1")
    counts = list(writer.write(pages([])))
    assert landed_keys(copy.blocks) == list(range(PAGES * SIZE))
    assert len(copy.blocks) == PAGES  # one COPY write per page
    assert counts == [PAGES * SIZE - n * SIZE for n in range(PAGES)]
    assert writer.records == PAGES * SIZE
    assert not pipeline_threads()


def test_a_reader_failure_reaches_the_caller_after_the_pages_before_it() -> None:
    copy = FakeCopy()
    writer = landing._Writer(copy, TABLE, "r1")
    with pytest.raises(PagingError, match="out of key order"):
        for _ in writer.write(pages([], fail_after=3)):
            pass
    assert landed_keys(copy.blocks) == list(range(3 * SIZE))
    assert not pipeline_threads()


def test_an_encoder_failure_reaches_the_caller_and_stops_the_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    real = landing.copy_block
    encoded: list[int] = []

    def failing(entities: list[dict[str, Any]], *args: Any, **kwargs: Any) -> bytes:
        if len(encoded) == 2:
            raise ValueError("cannot encode")
        encoded.append(1)
        return real(entities, *args, **kwargs)

    monkeypatch.setattr(landing, "copy_block", failing)
    asked: list[int] = []
    copy = FakeCopy()
    with pytest.raises(ValueError, match="cannot encode"):
        for _ in landing._Writer(copy, TABLE, "r1").write(pages(asked)):
            pass
    assert len(copy.blocks) <= 2
    assert not pipeline_threads()
    assert len(asked) < PAGES  # the reader stopped a few pages ahead at most


def test_a_copy_failure_stops_both_threads() -> None:
    asked: list[int] = []
    copy = FakeCopy(fail_on=1)
    with pytest.raises(OSError, match="server closed"):
        for _ in landing._Writer(copy, TABLE, "r1").write(pages(asked, delay=0.01)):
            pass
    assert landed_keys(copy.blocks) == list(range(SIZE))
    assert not pipeline_threads()
    assert len(asked) <= 1 + 2 + 1 + 2 + 1  # written + encoder queue + encoding + reader queue + reading


def test_memory_stays_bounded_by_a_few_pages() -> None:
    """The reader never runs more than a few pages ahead of a slow COPY."""
    asked: list[int] = []
    written: list[int] = []

    class Slow(FakeCopy):
        def write(self, block: bytes) -> None:
            time.sleep(0.01)
            written.append(len(asked))
            super().write(block)

    list(landing._Writer(Slow(), TABLE, "r1").write(pages(asked, delay=0.0)))
    # When page n is written, at most n + 1 + 6 pages have been asked for.
    assert all(seen <= n + 1 + 6 for n, seen in enumerate(written))

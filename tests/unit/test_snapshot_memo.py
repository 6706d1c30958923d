"""services/bill_reads/memo.py: results by key, the least recently used go first, a falsy result is a result."""

from services.bill_reads.memo import SnapshotMemo


def test_the_least_recently_used_go_first_and_an_empty_result_is_remembered():
    memo = SnapshotMemo(2)
    assert memo.put("a", []) == [] and memo.get("a", "absent") == []
    memo.put("b", 2)
    memo.get("a")  # "a" is now the most recently used
    memo.put("c", 3)
    assert memo.get("b", "absent") == "absent" and memo.get("a") == [] and memo.get("c") == 3
    memo.clear()
    assert memo.get("c") is None


async def test_a_read_through_reads_once_a_key_and_every_time_without_one():
    memo, reads = SnapshotMemo(4), []

    async def read():
        reads.append(1)
        return []

    assert await memo.read_through("k", read) == [] and await memo.read_through("k", read) == []
    assert await memo.read_through(None, read) == [] and await memo.read_through(None, read) == []
    assert len(reads) == 3  # an empty result is remembered; no key, nothing remembered

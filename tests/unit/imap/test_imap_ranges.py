"""The sequence-set helpers behind VANISHED, QRESYNC's known UIDs and SEARCHRES's ``$``."""

from __future__ import annotations

from gk.mail.imap.protocol import in_ranges, merge, missing, ranges_text, runs


def test_range_helpers():  # type: ignore[no-untyped-def]
    assert runs([]) == []
    assert runs([1, 2, 3, 7, 9, 10]) == [(1, 3), (7, 7), (9, 10)]
    assert ranges_text([(1, 3), (7, 7), (9, 10)]) == "1:3,7,9:10"
    assert merge([(5, 9), (1, 2), (3, 3), (8, 12), (20, 20)]) == [(1, 3), (5, 12), (20, 20)]
    assert missing([(1, 10)], [2, 3, 7, 10]) == [(1, 1), (4, 6), (8, 9)]
    assert missing([(1, 3), (8, 9)], []) == [(1, 3), (8, 9)]
    assert missing([(4, 6)], [1, 4, 5, 6, 20]) == []
    spans = merge([(3, 5), (10, 10), (12, 40)])
    assert [n for n in range(45) if in_ranges(spans, n)] == [3, 4, 5, 10, *range(12, 41)]
    assert not in_ranges([], 1)

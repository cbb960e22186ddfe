"""GK benchmarks (``make bench``): each module measures GK against a named peer in the same run
and prints ratios. They are not part of ``make test``: numbers, not pass/fail."""

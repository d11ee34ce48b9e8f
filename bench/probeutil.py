# SPDX-License-Identifier: MIT
"""What bench/stall-probe.py and bench/loop-probe.py share (each finds this
module beside itself: Python puts a script's own folder first on sys.path)."""


def percentile(sorted_values, p):
    """The nearest-rank p-th percentile of an ascending list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[k]

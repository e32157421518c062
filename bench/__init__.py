"""``make bench``: the performance benchmark of issue 8 (see bench/README.md)."""

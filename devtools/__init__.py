"""Development tools: the demo, a throw-away PostgreSQL, the 4D simulator as a child process.

Not part of the wheel or the production image (only ``plugins/legacy_sync`` is), and never
imported by ``legacy_sync`` (``tests/unit/test_package_layout.py`` checks both).
"""

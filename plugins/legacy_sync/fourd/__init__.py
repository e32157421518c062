"""A client for 4D's REST server: session auth, classified retries, checked paging and reads by
key, tolerant parsing, the server's clock.

Nothing here imports Airflow; ``legacy_sync.hook`` wraps it as an Airflow hook.
"""

from legacy_sync.fourd.client import FourDClient, FourDSettings
from legacy_sync.fourd.errors import FourDError, LicenceExhaustedError, PagingError

__all__ = ["FourDClient", "FourDError", "FourDSettings", "LicenceExhaustedError", "PagingError"]

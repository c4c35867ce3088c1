"""The one place floe reaches into PyMySQL's internals (contract:
``tests/runtime/test_mysql_cdc.py::test_the_pymysql_contract``).

PyMySQL connects in TLS-preferred mode and builds a new default SSL context for every
connection (``_create_ssl_ctx({})``: loading the system's CA certificates, ~23 ms).  A
``mysql_cdc`` run opens three connections (its own, and the binlog reader's control and
stream connections): 70 ms of a 0.36 s run.  The default context holds no per-connection
state, so one is built per process and shared; any explicit ``ssl`` setting still gets its
own context, as PyMySQL builds it.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

import pymysql.connections

_DEFAULT: dict[str, ssl.SSLContext] = {}
_LOCK = threading.Lock()


class Connection(pymysql.connections.Connection):  # type: ignore[misc]
    """A PyMySQL connection that shares the default (no ``ssl`` options) SSL context."""

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        if sslp != {}:
            return super()._create_ssl_ctx(sslp)  # type: ignore[no-any-return]
        with _LOCK:
            if "default" not in _DEFAULT:
                _DEFAULT["default"] = super()._create_ssl_ctx(sslp)
            return _DEFAULT["default"]

#!/usr/bin/env bash
# The database servers the suite starts itself (each test starts its own, on loopback, in a temp
# dir): installed from Debian's packages when missing.  PostgreSQL 15 is on the machine image;
# MariaDB 10.11 (mysql_cdc, MySQL as sql_database) is installed here.  A package's own service
# is stopped: nothing but the tests' servers should run.
set -euo pipefail
if [ ! -x /usr/sbin/mariadbd ] && ! command -v mariadbd >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "MariaDB is missing: run 'sudo apt-get install mariadb-server' (the tests start it)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
    (service mariadb stop || true) >/dev/null 2>&1
fi
if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/prometheus-pushgateway ]; then
    # the metrics tests feed a real Pushgateway scraped by a real Prometheus (and promtool)
    if [ "$(id -u)" -ne 0 ]; then
        echo "Prometheus is missing: run 'sudo apt-get install prometheus prometheus-pushgateway'" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus prometheus-pushgateway >/dev/null
    (service prometheus stop || true) >/dev/null 2>&1
    (service prometheus-pushgateway stop || true) >/dev/null 2>&1
fi
if ! command -v chromium >/dev/null 2>&1; then
    # the docs test opens the built site in headless Chromium
    if [ "$(id -u)" -ne 0 ]; then
        echo "Chromium is missing: run 'sudo apt-get install chromium'" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

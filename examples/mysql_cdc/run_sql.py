"""Run a .sql file against $SHOP_MYSQL_URL (the example's "production" MySQL/MariaDB).

    python run_sql.py seed.sql
"""

import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pymysql

url = os.environ.get("SHOP_MYSQL_URL")
if not url:
    raise SystemExit("set SHOP_MYSQL_URL, e.g. mysql://user:password@localhost:3306/shop")
parts = urlsplit(url)
connection = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                             user=unquote(parts.username or ""),
                             password=unquote(parts.password or ""),
                             database=parts.path.lstrip("/"), autocommit=True,
                             client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
with connection.cursor() as cursor:
    cursor.execute(Path(sys.argv[1]).read_text())
    while cursor.nextset():
        pass
connection.close()
print(f"ran {sys.argv[1]}")

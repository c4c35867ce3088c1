"""MySQL and MariaDB, below the commands that read them (``mysql_cdc``'s copy, ``floe verify``):
connection settings from the URLs users write, column types as Bronze keeps them, and reading
a table into Bronze-typed Arrow."""

"""floe's runtime: reads only compiled artifacts and maps them onto dlt, pyiceberg and Dagster."""

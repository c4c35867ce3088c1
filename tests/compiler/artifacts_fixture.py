"""A project that uses every kind of secret reference."""

PROJECT_WITH_SECRETS = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: shop, version: 1.0.0}
sources:
  - name: shop_api
    source_type: rest_api
    destination_table: bronze.orders
    write_mode: append
    source_config:
      client:
        base_url: http://localhost:8000
        auth: {type: bearer, token: "{{ secret('SHOP_API_TOKEN') }}"}
      resources: [orders]
  - name: crm
    source_type: sql_database
    destination_table: bronze
    source_config:
      credentials: "{{ secret('CRM_DB_URL') }}"
      tables: [customers]
notifications:
  - on: [failure]
    webhook: "{{ secret('ALERT_WEBHOOK') }}"
"""

"""The operator's HTTP API at /admin/v1: bearer-token protected, audited, described by OpenAPI.

`routes.py` is the one table of endpoints; `server.py` serves it, `openapi.py` documents it,
`handlers.py` calls the same service functions as the CLI.
"""

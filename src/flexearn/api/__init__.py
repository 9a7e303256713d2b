"""HTTP entry points: the exchange façades (okx/, later bitget/) in one ASGI application."""

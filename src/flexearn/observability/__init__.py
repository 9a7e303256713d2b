"""What an operator watches: Prometheus metrics, JSON logs with request ids, a health check.

`context` holds the request id (and the answer code) of the request being served; `logs` writes
every log line as JSON carrying that id; `metrics` counts requests and settlements (Prometheus,
imported lazily so `serve` can switch on multi-process mode first); `middleware` ties them to
each HTTP request. It sits below the services (which record into it) and imports none of them,
nor the API: what it exposes of the database it is handed (`prometheus.Stats`); /metrics and
/healthz are routes of the API (`api/ops.py`).
"""

"""What an operator watches: Prometheus metrics, JSON logs with request ids, a health check.

`context` holds the request id (and the answer code) of the request being served; `logs` writes
every log line as JSON carrying that id; `metrics` counts requests and settlements (Prometheus,
imported lazily so `serve` can switch on multi-process mode first); `middleware` ties them to
each HTTP request; `routes` serves /metrics and /healthz.
"""

"""The embedded Linksfield sandbox: a real HTTP server speaking API contract v1.

    seed.py     the deterministic world a new state file starts with (group ids as constants)
    state.py    that world in SQLite, shared by every process using the file; async operations
    faults.py   the spec string of faults and limits (`latency=50ms,5xx=0.1,...`)
    app.py      the ASGI application: endpoints, rate limits, fault injection, request log
    server.py   `running_sandbox` (a server in a thread) and `serve` (blocking, for the CLI)

Nothing is re-exported here, so that importing `seed` or `state` does not load the web stack.
"""

PARTNER = "P000270"  # the partner the sandbox serves by default

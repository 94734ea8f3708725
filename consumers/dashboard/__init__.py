"""The live dashboard (`plate-ocr dashboard`): readings, vehicle events, the queue and workers.

Read-only and light: Redis, RQ and the `[dashboard]` extra (starlette, uvicorn), never the model
stack. `app` is the web app, `snapshot` what it reads from Redis, `live` the server-sent events,
`crop` where a reading's thumbnail comes from, `server` how it is served. Importing this package
imports none of them, so that the CLI can say what to install when starlette is missing.
"""

__all__: list[str] = []

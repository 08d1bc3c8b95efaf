"""Small applications served by real servers (gunicorn, uvicorn, Celery) in the server tests.

Each tracks one event per request or task, named by the caller's id, with a client made at
import as applications do. The client never writes on its own before shutdown (a batch never
fills, the interval never passes), so every event reaches the table only if the server's way
of ending the process closes the client.
"""

#: The environment variable the applications read their DSN from.
DSN_VARIABLE = "ANALYTICS_SERVER_TEST_DSN"
#: The directory the Celery application keeps its broker's queue and its results in.
BROKER_DIR_VARIABLE = "ANALYTICS_SERVER_TEST_BROKER_DIR"

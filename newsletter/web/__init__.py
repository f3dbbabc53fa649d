"""`newsletter serve`: the web side of every email.

One-click unsubscribe (RFC 8058), double opt-in confirmation, preferences, the public
subscribe form and the web archive of what was sent, as a Starlette app on uvicorn. It
shares the database and the configuration with the rest of the tool and writes no table
itself: subscriber changes go through the subscriber module (its events included), sending
a confirmation through the delivery engine.
"""

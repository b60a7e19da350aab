"""The server layer: the WSGI app, routing, HTTP objects, the stream pipeline, the stdlib server."""

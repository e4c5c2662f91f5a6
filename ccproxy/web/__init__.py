"""The twisted.web edge: resources, the SSE relay and error bodies."""

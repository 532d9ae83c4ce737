"""What the tests share: WSGI calls, real servers, workers, processes and faults."""

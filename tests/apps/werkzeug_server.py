"""Serve ``tests.apps.server_app`` with Werkzeug's threaded dev server on an ephemeral port.

Run as a script by the tests; prints ``Listening at: http://127.0.0.1:PORT`` once bound.
"""

from __future__ import annotations

import sys

from werkzeug.serving import make_server

from tests.apps.server_app import app

if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"Listening at: http://127.0.0.1:{server.port}", flush=True)
    print("Booting worker", flush=True)
    sys.stdout.flush()
    server.serve_forever()

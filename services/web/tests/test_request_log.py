"""The development server's request log: what people do, not what pages poll for."""

from __future__ import annotations

import logging
import re
import threading

import requests
from werkzeug.serving import make_server


def test_the_request_log_leaves_out_static_files_and_status_polls_but_not_failures(
    app, sponsor, caplog
):
    # The real development server (werkzeug's, as `make run` starts it) on loopback.
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.port}"
    session = requests.Session()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            assert session.get(f"{base}/auth/login", timeout=10).status_code == 200
            session.post(  # the test configuration needs no CSRF token
                f"{base}/auth/login",
                data={"email": sponsor.email, "password": sponsor.password},
                timeout=10,
                allow_redirects=False,
            )
            assert session.get(f"{base}/static/css/app.css", timeout=10).status_code == 200
            polled = session.get(f"{base}/documents/machine-text?ids=1,2", timeout=10)
            assert polled.status_code == 200
            assert session.get(f"{base}/documents/987/machine-text", timeout=10).status_code == 404
            assert session.get(f"{base}/static/missing.css", timeout=10).status_code == 404
    finally:
        server.shutdown()
        thread.join(timeout=10)

    lines = [
        re.sub(r"\x1b\[[0-9;]*m", "", r.getMessage())
        for r in caplog.records
        if r.name == "werkzeug"
    ]
    logged = "\n".join(lines)
    assert '"GET /auth/login HTTP/1.1" 200' in logged
    assert '"POST /auth/login HTTP/1.1" 303' in logged
    assert "/static/css/app.css" not in logged
    assert "/documents/machine-text?ids=1,2" not in logged
    assert '"GET /documents/987/machine-text HTTP/1.1" 404' in logged  # failures stay
    assert '"GET /static/missing.css HTTP/1.1" 404' in logged

"""A decoding backend for Rampart's hardening tests: Flask behind a real WSGI server.

It answers what a typical Python API would understand of a request: the percent-decoded
path, the WSGI environ's HTTP_* variables (header names folded as CGI folds them), the body
as read and the JSON Flask parses from it (Flask detects UTF-8/16/32 on its own).
`/flask/admin...` is the "protected" resource the tests must never reach unauthenticated.

Usage: flask_app.py PORT [werkzeug|wsgiref]. werkzeug decodes chunked bodies and drops
underscore headers; wsgiref (the standard library's server) folds `_` and `-` alike.
"""
import json
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

from flask import Flask, jsonify, request

app = Flask(__name__)


def describe(kind):
    env = request.environ
    return jsonify(
        kind=kind,
        path=request.path,
        raw_uri=env.get("RAW_URI") or env.get("REQUEST_URI"),
        headers={k: v for k, v in env.items() if k.startswith("HTTP_")},
        content_type=env.get("CONTENT_TYPE"),
        body=request.get_data(as_text=True, cache=True),
        json=request.get_json(silent=True, force=True),
        form=request.form.to_dict(flat=False),
    )


@app.route("/flask/admin", methods=["GET", "POST"])
@app.route("/flask/admin/<path:rest>", methods=["GET", "POST"])
def admin(rest=None):
    return describe("admin")


@app.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT"])
@app.route("/<path:rest>", methods=["GET", "POST", "PUT"])
def anything(rest):
    return describe("public")


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


if __name__ == "__main__":
    port = int(sys.argv[1])
    server = sys.argv[2] if len(sys.argv) > 2 else "werkzeug"
    if server == "wsgiref":
        make_server("127.0.0.1", port, app, server_class=ThreadingWSGIServer).serve_forever()
    else:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app.run(host="127.0.0.1", port=port, threaded=True)

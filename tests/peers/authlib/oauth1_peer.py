"""Local OAuth 1.0a (RFC 5849) provider (authlib + Flask) used by the Junction test suite.

Protocol with the spawning process, as peer.py:
  * listens on 127.0.0.1:$PORT (default 0 = ephemeral port);
  * prints exactly one line on stdout when ready: `READY http://127.0.0.1:<port>`;
  * exits when its stdin reaches EOF.

Environment:
  PORT       listen port (default 0)
  CLIENTS    JSON array of {client_id, client_secret} (default: junction-test /
             junction-test-secret)

Signature methods: HMAC-SHA1 (authlib's own) and HMAC-SHA256 (the same base string with
SHA-256, as providers that offer it define it).

Endpoints: POST /oauth/request_token (temporary credentials, RFC 5849 §2.1),
GET /oauth/authorize (automatic consent, §2.2; login_hint=deny refuses),
POST /oauth/access_token (token credentials, §2.3), and the signed API: GET /api/me and
POST /api/echo (answers the form fields it received, which the signature covers).
"""

import base64
import hashlib
import hmac
import json
import logging
import os
import sys
import threading
import time

os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # loopback http

from authlib.integrations.flask_oauth1 import AuthorizationServer, ResourceProtector, current_credential
from authlib.oauth1 import ClientMixin, TemporaryCredential, TokenCredentialMixin
from authlib.oauth1.errors import OAuth1Error
from authlib.oauth1.rfc5849.signature import generate_signature_base_string
from authlib.oauth1.rfc5849.util import escape
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

PORT = int(os.environ.get("PORT") or 0)
DEFAULT_CLIENTS = [{"client_id": "junction-test", "client_secret": "junction-test-secret"}]
METHODS = ["HMAC-SHA1", "HMAC-SHA256"]


class Client(ClientMixin):
    def __init__(self, client_id, client_secret, **_):
        self.client_id, self.client_secret = client_id, client_secret
    def get_default_redirect_uri(self): return None
    def get_client_secret(self): return self.client_secret
    def get_rsa_public_key(self): return None


class Token(dict, TokenCredentialMixin):
    def get_oauth_token(self): return self["oauth_token"]
    def get_oauth_token_secret(self): return self["oauth_token_secret"]


CLIENTS = {c["client_id"]: Client(**c) for c in json.loads(os.environ.get("CLIENTS") or "null") or DEFAULT_CLIENTS}
LOCK = threading.Lock()
TEMPORARY = {}   # oauth_token -> TemporaryCredential
TOKENS = {}      # oauth_token -> Token (with client_id and user)
NONCES = set()


def verify_hmac_sha256(req):
    if not req.client_secret:
        return False
    base = generate_signature_base_string(req)
    key = escape(req.client_secret) + "&" + escape(req.token_secret or "")
    expected = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, req.signature)


AuthorizationServer.register_signature_method("HMAC-SHA256", verify_hmac_sha256)
ResourceProtector.register_signature_method("HMAC-SHA256", verify_hmac_sha256)

app = Flask(__name__)
app.config["OAUTH1_SUPPORTED_SIGNATURE_METHODS"] = METHODS


def exists_nonce(nonce, timestamp, client_id, token):
    key = (nonce, timestamp, client_id, token)
    with LOCK:
        if key in NONCES:
            return True
        NONCES.add(key)
        return False


def create_temporary_credential(token, client_id, redirect_uri):
    credential = TemporaryCredential(token, client_id=client_id, oauth_callback=redirect_uri)
    with LOCK:
        TEMPORARY[token["oauth_token"]] = credential
    return credential


def get_temporary_credential(oauth_token):
    with LOCK:
        return TEMPORARY.get(oauth_token)


def delete_temporary_credential(oauth_token):
    with LOCK:
        TEMPORARY.pop(oauth_token, None)


def create_authorization_verifier(credential, grant_user, verifier):
    credential["user_id"] = grant_user
    credential["oauth_verifier"] = verifier


def create_token_credential(token, temporary_credential):
    credential = Token(token, client_id=temporary_credential.get_client_id(),
                       user_id=temporary_credential.get_user_id())
    with LOCK:
        TOKENS[credential["oauth_token"]] = credential
    return credential


server = AuthorizationServer(app, query_client=CLIENTS.get)
for name, hook in [("exists_nonce", exists_nonce),
                   ("create_temporary_credential", create_temporary_credential),
                   ("get_temporary_credential", get_temporary_credential),
                   ("delete_temporary_credential", delete_temporary_credential),
                   ("create_authorization_verifier", create_authorization_verifier),
                   ("create_token_credential", create_token_credential)]:
    server.register_hook(name, hook)


def query_token(client_id, oauth_token):
    with LOCK:
        token = TOKENS.get(oauth_token)
    return token if token and token["client_id"] == client_id else None


require_oauth = ResourceProtector(app, query_client=CLIENTS.get, query_token=query_token, exists_nonce=exists_nonce)


@app.post("/oauth/request_token")
def request_token():
    return server.create_temporary_credentials_response()


@app.get("/oauth/authorize")
def authorize():  # automatic consent; login_hint=deny refuses
    user = request.args.get("login_hint") or "user1"
    try:
        return server.create_authorization_response(grant_user=None if user == "deny" else user)
    except OAuth1Error as error:
        return jsonify(error.get_body()), error.status_code


@app.post("/oauth/access_token")
def access_token():
    return server.create_token_response()


@app.get("/api/me")
@require_oauth()
def me():
    return jsonify(id=current_credential["user_id"], client=current_credential["client_id"])


@app.post("/api/echo")
@require_oauth()
def echo():
    return jsonify(form=request.form.to_dict(flat=True), by=current_credential["user_id"]), 201


def exit_on_stdin_eof():
    for _ in sys.stdin.buffer:
        pass
    os._exit(0)


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.INFO if os.environ.get("PEER_LOG") == "1" else logging.WARNING)
    if os.environ.get("EXIT_ON_STDIN_EOF") != "0":
        threading.Thread(target=exit_on_stdin_eof, daemon=True).start()
    httpd = make_server("127.0.0.1", PORT, app, threaded=True)
    print(f"READY http://127.0.0.1:{httpd.server_port}", flush=True)
    httpd.serve_forever()

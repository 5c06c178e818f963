"""Local OAuth2 authorization server (authlib + Flask) used by the Junction test suite
as a second, independently written stand-in for a SaaS provider.

Protocol with the spawning process:
  * listens on 127.0.0.1:$PORT (default 0 = ephemeral port);
  * prints exactly one line on stdout when ready: `READY http://127.0.0.1:<port>`;
  * logs go to stderr (request logs only with PEER_LOG=1);
  * exits when its stdin reaches EOF, so it dies with the test process.

Environment:
  PORT       listen port (default 0)
  CLIENTS    JSON array of {client_id, client_secret, redirect_uris}
             (default: junction-test / junction-test-secret,
              redirect_uris ["https://app.example.test/oauth/callback"])
  ROTATE     "1": every refresh issues a new refresh token and revokes the old one
  AT_TTL     access token lifetime in seconds (default 3600)
  INSTANCE_URL  "1": token responses carry instance_url = <base>/api
  EXIT_ON_STDIN_EOF  "0" keeps the server running when stdin closes (manual use)

Endpoints: GET /oauth/authorize (automatic consent; login_hint=deny -> access_denied;
without redirect_uri the client's single registered redirect URI is used),
POST /oauth/token (authorization_code, refresh_token, client_credentials; client_secret_basic or
client_secret_post), GET /api/me and POST /api/echo (bearer token).
"""

import json
import logging
import os
import sys
import threading
import time

os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # loopback http

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

PORT = int(os.environ.get("PORT") or 0)
AT_TTL = int(os.environ.get("AT_TTL") or 3600)
ROTATE = os.environ.get("ROTATE") == "1"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
DEFAULT_CLIENTS = [{"client_id": "junction-test", "client_secret": "junction-test-secret",
                    "redirect_uris": ["https://app.example.test/oauth/callback"]}]


class Client(ClientMixin):
    def __init__(self, client_id, client_secret, redirect_uris, **_):
        self.client_id, self.client_secret, self.redirect_uris = client_id, client_secret, redirect_uris
    def get_client_id(self): return self.client_id
    def get_default_redirect_uri(self): return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None
    def get_allowed_scope(self, scope): return scope or ""
    def check_redirect_uri(self, redirect_uri): return redirect_uri in self.redirect_uris
    def check_client_secret(self, client_secret): return client_secret == self.client_secret
    def check_endpoint_auth_method(self, method, endpoint): return method in AUTH_METHODS
    def check_response_type(self, response_type): return response_type == "code"
    def check_grant_type(self, grant_type): return grant_type in ("authorization_code", "refresh_token", "client_credentials")


class Code(AuthorizationCodeMixin):
    def __init__(self, **kw): self.__dict__.update(kw, created=time.time())
    def get_redirect_uri(self): return self.redirect_uri
    def get_scope(self): return self.scope


class Token(TokenMixin):
    def __init__(self, client_id, user, token):
        self.client_id, self.user, self.issued_at, self.revoked = client_id, user, time.time(), False
        self.access_token, self.refresh_token = token["access_token"], token.get("refresh_token")
        self.scope, self.expires_in = token.get("scope", ""), token.get("expires_in", AT_TTL)
    def check_client(self, client): return client.get_client_id() == self.client_id
    def get_scope(self): return self.scope
    def get_expires_in(self): return self.expires_in
    def is_expired(self): return time.time() >= self.issued_at + self.expires_in
    def is_revoked(self): return self.revoked
    def get_user(self): return self.user
    def get_client(self): return CLIENTS[self.client_id]


CLIENTS = {c["client_id"]: Client(**c) for c in json.loads(os.environ.get("CLIENTS") or "null") or DEFAULT_CLIENTS}
CODES, ACCESS, REFRESH = {}, {}, {}  # code -> Code; access token -> Token; refresh token -> Token
LOCK = threading.Lock()  # token requests are serialized: concurrent reuse of a rotated RT is detected


def save_token(token, req):
    t = Token(req.client.get_client_id(), req.user, token)
    ACCESS[t.access_token] = t
    if t.refresh_token:
        REFRESH[t.refresh_token] = t
    if os.environ.get("INSTANCE_URL") == "1":
        token["instance_url"] = request.host_url + "api"


class AuthCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    def save_authorization_code(self, code, req):
        CODES[code] = Code(code=code, client_id=req.client.get_client_id(), user=req.user,
                           redirect_uri=req.payload.redirect_uri, scope=req.scope)
    def query_authorization_code(self, code, client):
        c = CODES.get(code)
        if c and c.client_id == client.get_client_id() and time.time() - c.created < 60:
            return c
    def delete_authorization_code(self, authorization_code): CODES.pop(authorization_code.code, None)
    def authenticate_user(self, authorization_code): return authorization_code.user


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = ROTATE
    def authenticate_refresh_token(self, refresh_token):
        t = REFRESH.get(refresh_token)
        return t if t and not t.revoked else None
    def authenticate_user(self, refresh_token): return refresh_token.user
    def revoke_old_credential(self, refresh_token):
        if ROTATE:
            refresh_token.revoked = True


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS


class Validator(BearerTokenValidator):
    def authenticate_token(self, token_string): return ACCESS.get(token_string)


app = Flask(__name__)
app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True  # otherwise no refresh_token is issued
app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"authorization_code": AT_TTL, "refresh_token": AT_TTL,
                                        "client_credentials": AT_TTL}
server = AuthorizationServer(app, query_client=CLIENTS.get, save_token=save_token)
server.register_grant(AuthCodeGrant)
server.register_grant(RefreshGrant)
server.register_grant(ClientCredentialsGrant)
require_oauth = ResourceProtector()
require_oauth.register_token_validator(Validator())


@app.get("/oauth/authorize")
def authorize():  # automatic consent; login_hint=deny gives an access_denied redirect
    user = request.args.get("login_hint") or "user1"
    try:
        grant = server.get_consent_grant(end_user=user)  # unknown client or redirect URI: 400 JSON
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    return server.create_authorization_response(grant=grant, grant_user=None if user == "deny" else user)


@app.post("/oauth/token")
def issue_token():
    with LOCK:
        return server.create_token_response()


@app.get("/api/me")
@require_oauth()
def me():
    return jsonify(id=current_token.user, scope=current_token.scope, client=current_token.client_id)


@app.post("/api/echo")
@require_oauth()
def echo():
    return jsonify(got=request.get_json(silent=True), by=current_token.user), 201


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

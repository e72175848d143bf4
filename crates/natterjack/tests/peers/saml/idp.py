#!/usr/bin/env python3
"""A real SAML 2.0 identity provider for Natterjack's tests: pysaml2's IdP (`saml2.server.Server`),
signing with Debian's `xmlsec1`, served over plain HTTP on 127.0.0.1.

Run: `python3 idp.py` (no arguments). It listens on a free loopback port and prints one line,
`listening http://127.0.0.1:PORT`, when it is ready. It exits when its stdin reaches end of file,
so a test that holds the pipe kills it by closing it, or by dying.

At start it makes, in a private temporary directory (removed at exit), two RSA keys with their
self-signed certificates (`openssl req`): the IdP's own, published in its metadata, and "another"
key that no metadata names, for the forged-signature tests.

The entity id is `http://127.0.0.1:PORT/metadata`. This is a test IdP: it is given no SP metadata,
and trusts the AssertionConsumerServiceURL and Issuer of each AuthnRequest (registering the SP as
its requests arrive), where a real IdP takes them from the SP's registered metadata.

Users (NameID, format unspecified; attributes `uid` and `groups`):
  alice     no groups
  bob       groups natterjack-admins
  bob.evil  no groups; a name that begins with bob's, for the comment-in-NameID test

Endpoints:
  GET /metadata   the IdP's metadata (EntityDescriptor with its signing certificate and the
                  HTTP-Redirect SingleSignOnService).
  GET /sso        the SSO service, HTTP-Redirect binding: `SAMLRequest` (deflated, base64) and
                  optional `RelayState`; optional `user` (default alice). Answers an HTML page
                  (no JavaScript) whose form posts `SAMLResponse` and `RelayState` to the request's
                  AssertionConsumerServiceURL with a button "Continue", and a second form, button
                  "Switch user", to sign in as another user (a select named `user`).
  GET /_test/response
                  The same response as JSON {"SAMLResponse", "RelayState", "acs", "request_id"}
                  for a test to post itself. Parameters: `SAMLRequest` (required), `RelayState`,
                  `user`, and the knobs:
                    sign=assertion (default) | response | both | none
                    key=idp (default) | other     sign with the key no metadata names
                    audience=URI                  another Audience than the request's Issuer
                    in_response_to=ID             another InResponseTo (empty: none, unsolicited)
                    lifetime=SECONDS              assertion lifetime (default 300; negative: expired)
"""

import base64
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# pysaml2 imports cipher modes that `cryptography` has deprecated; not ours to fix.
warnings.simplefilter("ignore")

from saml2 import BINDING_HTTP_REDIRECT
from saml2.assertion import Policy
from saml2.attribute_converter import AttributeConverterNOOP
from saml2.config import IdPConfig
from saml2.mdstore import MetadataStore
from saml2.metadata import entity_descriptor
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_UNSPECIFIED, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

USERS = {
    "alice": {"uid": ["alice"], "groups": []},
    "bob": {"uid": ["bob"], "groups": ["natterjack-admins"]},
    "bob.evil": {"uid": ["bob.evil"], "groups": []},
}

AUTHN = {
    "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
    "authn_auth": "natterjack-test-idp",
}

XMLSEC1 = shutil.which("xmlsec1") or "/usr/bin/xmlsec1"


def make_key(work, name):
    """An RSA key and its self-signed certificate in `work`; returns (key_file, cert_file)."""
    key = os.path.join(work, f"{name}.key")
    cert = os.path.join(work, f"{name}.crt")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN=natterjack test IdP ({name})", "-keyout", key, "-out", cert,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return key, cert


def idp_server(base, key_file, cert_file):
    """A pysaml2 IdP whose entity id and endpoints are under `base`, signing with the key."""
    config = IdPConfig()
    config.load(
        {
            "entityid": f"{base}/metadata",
            "xmlsec_binary": XMLSEC1,
            "key_file": key_file,
            "cert_file": cert_file,
            "accepted_time_diff": 60,
            "service": {
                "idp": {
                    "name": "Natterjack test IdP",
                    "endpoints": {
                        "single_sign_on_service": [(f"{base}/sso", BINDING_HTTP_REDIRECT)],
                    },
                    "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
                    "want_authn_requests_signed": False,
                    "signing_algorithm": SIG_RSA_SHA256,
                    "digest_algorithm": DIGEST_SHA256,
                    "policy": {"default": {"lifetime": {"seconds": 300}, "name_form": NAME_FORMAT_URI}},
                },
            },
        }
    )
    server = Server(config=config)
    # Attribute names pass through as they are (`uid`, `groups`), in the URI name format.
    server.config.attribute_converters = [AttributeConverterNOOP(NAME_FORMAT_URI)]
    # SPs are registered as their requests arrive (`register_sp`).
    server.metadata = MetadataStore(server.config.attribute_converters, server.config)
    return server


def register_sp(server, entity_id, acs):
    """Makes `entity_id` known to pysaml2 (which looks every SP up) with the ACS its request
    names: this test IdP trusts any SP, where a real one takes SP metadata from its operator."""
    try:
        server.metadata[entity_id]
        return
    except KeyError:
        pass
    e = html.escape
    server.metadata.load(
        "inline",
        f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{e(entity_id)}">
<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{e(acs)}" index="0"/>
</md:SPSSODescriptor></md:EntityDescriptor>""",
    )


class Idp:
    """The state of the running IdP: its two signers and a lock (pysaml2's Server keeps state)."""

    def __init__(self, base, work):
        self.base = base
        key, cert = make_key(work, "idp")
        other_key, other_cert = make_key(work, "other")
        self.signers = {"idp": idp_server(base, key, cert), "other": idp_server(base, other_key, other_cert)}
        self.lock = threading.Lock()

    def metadata(self):
        return str(entity_descriptor(self.signers["idp"].config))

    def response(self, query):
        """The signed response (base64) and where it goes, for the query's AuthnRequest."""
        saml_request = one(query, "SAMLRequest")
        if saml_request is None:
            raise BadRequest("SAMLRequest is required")
        user = one(query, "user") or "alice"
        if user not in USERS:
            raise BadRequest(f"unknown user {user!r}")
        sign = one(query, "sign") or "assertion"
        if sign not in ("assertion", "response", "both", "none"):
            raise BadRequest(f"sign={sign!r}")
        key = one(query, "key") or "idp"
        if key not in self.signers:
            raise BadRequest(f"key={key!r}")
        lifetime = int(one(query, "lifetime") or "300")
        with self.lock:
            server = self.signers[key]
            request = server.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT).message
            sp = request.issuer.text
            acs = request.assertion_consumer_service_url
            if not acs:
                raise BadRequest("the AuthnRequest names no AssertionConsumerServiceURL")
            in_response_to = one(query, "in_response_to")
            if in_response_to is None:
                in_response_to = request.id
            audience = one(query, "audience") or sp
            register_sp(server, audience, acs)
            policy = Policy(
                {"default": {"lifetime": {"seconds": lifetime}, "name_form": NAME_FORMAT_URI}},
                mds=server.metadata,
            )
            response = server.create_authn_response(
                identity=USERS[user],
                in_response_to=in_response_to or None,
                destination=acs,
                sp_entity_id=audience,
                name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=user),
                authn=AUTHN,
                release_policy=policy,
                sign_assertion=sign in ("assertion", "both"),
                sign_response=sign in ("response", "both"),
                sign_alg=SIG_RSA_SHA256,
                digest_alg=DIGEST_SHA256,
            )
        # Signed responses come back as the signed XML text; str() of either is the document.
        encoded = base64.b64encode(str(response).encode("utf-8")).decode("ascii")
        return {
            "SAMLResponse": encoded,
            "RelayState": one(query, "RelayState") or "",
            "acs": acs,
            "request_id": request.id,
        }


class BadRequest(Exception):
    pass


def one(query, name):
    values = query.get(name)
    return values[0] if values else None


def continue_page(idp, query, answer):
    e = html.escape
    hidden_request = f'<input type="hidden" name="SAMLRequest" value="{e(one(query, "SAMLRequest"))}">'
    hidden_relay = f'<input type="hidden" name="RelayState" value="{e(answer["RelayState"])}">'
    current = one(query, "user") or "alice"
    options = "".join(
        f'<option value="{e(u)}"{" selected" if u == current else ""}>{e(u)}</option>' for u in USERS
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Natterjack test IdP</title></head>
<body>
<h1>Natterjack test IdP</h1>
<p>Signed in as <strong id="user">{e(current)}</strong>.</p>
<form method="post" action="{e(answer["acs"])}">
<input type="hidden" name="SAMLResponse" value="{e(answer["SAMLResponse"])}">
{hidden_relay}
<button type="submit">Continue</button>
</form>
<form method="get" action="{e(idp.base)}/sso">
{hidden_request}
{hidden_relay}
<label>User <select name="user">{options}</select></label>
<button type="submit">Switch user</button>
</form>
</body></html>
"""


def handler_for(idp):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            sys.stderr.write("idp: " + (format % args) + "\n")

        def send(self, status, content_type, body):
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlparse(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            try:
                if url.path == "/metadata":
                    self.send(200, "application/samlmetadata+xml", idp.metadata())
                elif url.path == "/sso":
                    answer = idp.response(query)
                    self.send(200, "text/html; charset=utf-8", continue_page(idp, query, answer))
                elif url.path == "/_test/response":
                    self.send(200, "application/json", json.dumps(idp.response(query)))
                else:
                    self.send(404, "text/plain", "not found\n")
            except BadRequest as e:
                self.send(400, "text/plain", f"{e}\n")
            except Exception:
                traceback.print_exc()
                self.send(500, "text/plain", "internal error\n")

    return Handler


def main():
    work = tempfile.mkdtemp(prefix="natterjack-saml-idp-")
    try:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), None)
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        idp = Idp(base, work)
        httpd.RequestHandlerClass = handler_for(idp)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        print(f"listening {base}", flush=True)
        # Until the parent closes our stdin (or dies).
        while sys.stdin.buffer.read(4096):
            pass
        httpd.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

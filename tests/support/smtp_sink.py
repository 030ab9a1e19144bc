#!/usr/bin/python3
"""An SMTP server for tests (Debian's python3-aiosmtpd): every message it
accepts becomes one file in DIR, msg-<n>.eml: a first line of JSON
({"mail_from", "rcpt_tos", "login", "tls"}) and then the DATA as received. Files
appear whole (written aside, then renamed). Once listening it writes the
bound port to DIR/port (written aside, then renamed).

  smtp_sink.py --dir DIR [--port P] [--auth USER:PASSWORD] [--refuse-rcpt ADDR]
               [--tls starttls|smtps --cert PEM --key PEM]

--port 0 (the default) takes a free port. --auth requires AUTH PLAIN/LOGIN
with that user (over plain TCP: it is a loopback test). --refuse-rcpt
answers 550 to RCPT TO for that address. --tls starttls offers STARTTLS
and refuses MAIL before it; --tls smtps speaks TLS from the first byte.
"tls" is the TLS version the message came over, null without.
"""
import argparse
import asyncio
import itertools
import json
import os
import signal
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def write_whole(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def tls_version(server):
    obj = server.transport.get_extra_info("ssl_object") if server.transport else None
    return obj.version() if obj is not None else None


class Sink:
    def __init__(self, directory, refuse):
        self.directory = directory
        self.refuse = refuse
        self.seq = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": session.auth_data if session.authenticated else None,
            "tls": tls_version(server),
        }
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        name = "msg-%d-%05d.eml" % (os.getpid(), next(self.seq))
        write_whole(os.path.join(self.directory, name),
                    json.dumps(meta).encode() + b"\n" + data)
        return "250 OK stored"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--auth", default="")
    ap.add_argument("--refuse-rcpt", default="")
    ap.add_argument("--tls", choices=["", "starttls", "smtps"], default="")
    ap.add_argument("--cert", default="")
    ap.add_argument("--key", default="")
    args = ap.parse_args()

    kwargs = {}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login == user.encode()
                  and auth_data.password == password.encode())
            return AuthResult(success=ok, auth_data=user if ok else None)

        kwargs = dict(authenticator=authenticator, auth_required=True,
                      auth_require_tls=False)

    server_ssl = None
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if args.tls == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True)
        else:
            server_ssl = ctx

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sink = Sink(args.dir, args.refuse_rcpt)
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(sink, **kwargs), host="127.0.0.1", port=args.port,
        reuse_address=True, ssl=server_ssl))
    port = server.sockets[0].getsockname()[1]
    write_whole(os.path.join(args.dir, "port"), str(port).encode())
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


if __name__ == "__main__":
    main()

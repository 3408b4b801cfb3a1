"""The slow shadow for benches/compare.sh's `shadow-slow` scenario: an HTTP/1.1 server that
answers every request after DELAY seconds, with the answer of the upstream it copies (side "a":
200, the same 1 KiB body and headers, a fresh Date), so that ficus's comparison finds a match.

    python3 slow-upstream.py PORT DELAY COPY_PORT

It listens on 127.0.0.1:PORT, fetches its answer once from 127.0.0.1:COPY_PORT at start, and
prints one line per request as it arrives (before the delay), which compare.sh counts. Keep-alive
connections are kept; a request body is read by its Content-Length (a chunked one is not
understood: the connection is closed after the answer). Only the standard library, as nginx
cannot wait before answering without a third-party module.
"""

import asyncio
import email.utils
import http.client
import sys

DROPPED = {"date", "connection", "keep-alive", "transfer-encoding"}


def copied_answer(port):
    """The status line and headers (without Date) and the body that COPY_PORT answers to GET /."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    head = f"HTTP/1.1 {resp.status} {resp.reason}\r\n"
    for name, value in resp.getheaders():
        if name.lower() not in DROPPED:
            head += f"{name}: {value}\r\n"
    return head, body


async def serve(reader, writer, head, body, delay):
    try:
        while True:
            try:
                request = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = request.decode("latin-1").split("\r\n")
            method = lines[0].split(" ", 1)[0]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or "0")
            if length:
                await reader.readexactly(length)
            print(lines[0], flush=True)
            close = "chunked" in headers.get("transfer-encoding", "") or headers.get("connection", "").lower() == "close"
            await asyncio.sleep(delay)
            date = email.utils.formatdate(usegmt=True)
            connection = "close" if close else "keep-alive"
            writer.write(f"{head}Date: {date}\r\nConnection: {connection}\r\n\r\n".encode("latin-1"))
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
            if close:
                return
    except ConnectionError:
        return
    finally:
        writer.close()


async def main():
    port, delay, copy_port = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    head, body = copied_answer(copy_port)
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, head, body, delay), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

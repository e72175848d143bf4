"""One HTTP/1.1 exchange on an open asyncio stream, for the load harness's own clients
(bench/load/flood.py, bench/load/idle.py), which need nothing of a client library but this."""


async def exchange(reader, writer, request):
    """Sends `request` and reads one answer (Content-Length bodies); returns its status and
    whether the server announced that it closes the connection."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)[1].decode()
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close

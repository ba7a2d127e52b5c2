"""A tiny MLLP server built on python-hl7's asyncio `hl7.mllp` module, used as a third-party receiver.

Answers every message with python-hl7's own ACK (`Message.create_ack`): AA, or AR when MSH-10 starts with
"REJECT". Prints "listening PORT" once ready and "got <MSH-10>" per message (stdout, flushed).
Usage: python python_mllp_server.py [PORT]   (0 or nothing: a free port)
"""
import asyncio
import sys

import hl7
from hl7.mllp import start_hl7_server


async def serve_connection(reader, writer):
    try:
        while not reader.at_eof():
            message = await reader.readmessage()
            control_id = str(message.segment("MSH")(10))
            print(f"got {control_id}", flush=True)
            code = "AR" if control_id.startswith("REJECT") else "AA"
            writer.writemessage(message.create_ack(ack_code=code))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    finally:
        writer.close()


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = await start_hl7_server(serve_connection, "127.0.0.1", port)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass

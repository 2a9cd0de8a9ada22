"""LocalStack's runtime with its hypercorn gateway, which binds the address GATEWAY_LISTEN names.

That gateway asks for the main thread's event loop, which Python 3.14 no longer creates on demand:
one is set first. As a container's first process, Python would ignore `docker stop`'s SIGTERM
(no default action for PID 1): it stops LocalStack as Ctrl-C does.
"""

import asyncio
import runpy
import signal

signal.signal(signal.SIGTERM, signal.default_int_handler)
asyncio.set_event_loop(asyncio.new_event_loop())
runpy.run_module("localstack.runtime.main", run_name="__main__")

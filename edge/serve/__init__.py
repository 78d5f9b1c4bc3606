"""The policy server (`tinyvla-edge serve`) and its client. See docs/python-api.md.

`edge.serve.client` and `edge.serve.wire` need only websockets, msgpack and numpy (no torch), so
a ROS 2 node or a notebook can query a policy running in another process or on another machine.
"""

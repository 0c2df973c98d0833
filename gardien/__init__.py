"""The composition root: the `gardien` command, the launcher and the embedded stack control.

It wires ``services`` and ``shared`` together; nothing under either imports it.
"""

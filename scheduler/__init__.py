"""corral's scheduler: binds each pending pod to the best feasible node.

``python -m scheduler`` (``corral scheduler``) runs it; see ``docs/scheduler.md``.
"""

"""Who may do what: request attributes, RBAC, the node authorizer, the default policy.

See docs/security.md for how the pieces sit in the request path.
"""

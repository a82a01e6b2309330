"""The console's usage-series paths (controlplane/usage/history), apart so the gate can
name them without importing the handlers."""

NODES_PATH = "/usage/nodes"
PODS_PATH = "/usage/pods"
PATHS = (NODES_PATH, PODS_PATH)

"""Resource usage reported by node agents: kept in memory, served as metrics.k8s.io."""

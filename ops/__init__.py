"""Operating Stagepass: Prometheus metrics, health and readiness, per-viewer quality."""

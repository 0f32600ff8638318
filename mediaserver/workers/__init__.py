"""Media workers: one process per core owning peer connections and fanouts, beside the control plane."""

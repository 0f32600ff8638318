"""Recording while live: the crash-safe writer and frame assembly."""

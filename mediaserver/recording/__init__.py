"""Recording while live: the recorder, its media clock, its crash-safe writer and file
format, frame assembly, and the folder's manifest."""

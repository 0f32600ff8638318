"""Packaging a finished recording into an HLS replay (``packager`` and its passes: ``scan``,
``timeline``, ``audio``, ``video``, ``thumbnails``, ``segmenter``, ``playlist``), the
background ``jobs`` that run it, and the ``replays`` it produces."""

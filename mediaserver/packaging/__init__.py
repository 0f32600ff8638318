"""After the broadcast: a recording becomes a replay.

``packager`` runs one packaging job in passes, one module each (``scan``, ``timeline``,
``audio``, ``video``, ``thumbnails``, ``segmenter``, ``playlist``; ``options``, ``files``
and ``h264`` are shared by them); ``jobs`` runs those jobs in the background; ``uploads``
publishes packaged replays to the object store (``migrate``: the CLI that publishes the
ones made before), ``stored_replays`` finds them there again; ``replays`` is what is
served: the replays on this disk and in the store.
"""

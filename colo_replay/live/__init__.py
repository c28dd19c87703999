"""Live mode: the sans-I/O engine on real sockets, speaking colo-compare's chardev protocol.

``colo-replay live`` stands where QEMU's colo-compare object would sit on a test rig (or beside
it, on mirrored streams).  One module per job:

* ``endpoint``  QEMU-style chardev specs (``socket,path=...`` / ``socket,host=..,port=..``,
  ``server=on|off``, ``wait=off``, ``reconnect=SECONDS``) parsed and validated;
* ``clock``     the engine's clock: monotonic, strictly increasing, epoch-aligned to whole ms;
* ``channel``   one chardev on a non-blocking socket: listen/accept or connect/reconnect, reads
  of up to 124 KiB, and QEMU 7.2's outdev send queue (FIFO while the socket takes everything,
  newest-first once it pushes back);
* ``checkpoint_sim``  ``--flush-on-request``: the offline checkpoint model on the live clock, for
  rigs without a COLO frame;
* ``recorder``  ``--record DIR``: one pcapng per stream (``captures.writer``) plus the flush times,
  replayable offline;
* ``stats``     counters and the periodic stats line (the summary is printed by ``output.summary``);
* ``logs``      structured logging on stderr (text or JSON lines);
* ``runtime``   ``LiveCompare``: wires the engine, the channels and all of the above;

The run as a function is ``colo_replay.api.live``; the ``colo-replay live`` command is
``colo_replay.cli.live``.

Nothing here imports pandas until a timeline is written at the very end.
"""

"""The offline replay: captures in, the engine driven on the captures' clock.

* ``settings``     the one ``Settings`` value of every command, validated when built
* ``pair``         the one reader factory of a capture pair (guest, alignment, filter-rewriter)
* ``outcome``      ``Timeline``, the outcome of a replay
* ``driver``       merges the two sides' frames by arrival time and drives the engine, the
                   expiry-scan grid and the checkpoint model (``ReplayOptions``, ``replay_partial``)
* ``checkpoints``  the COLO checkpoint cycle: request, duration, coalescing, periodic checkpoints
* ``rewriter``     filter-rewriter's TCP sequence shift for pair captures
* ``guest``        outbound-frame selection (``--guest``) on captures holding both directions
* ``align``        the secondary's clock offset estimated from identical frames
* ``chardev``      captures of colo-compare's own chardev sockets, decoded into its inputs
* ``verify``       a chardev replay's releases against the captured outdev stream
* ``replay_warnings``  the warnings after a replay (a second look at samples of the captures)
"""

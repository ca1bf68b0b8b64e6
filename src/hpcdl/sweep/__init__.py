"""Hyperparameter sweeps: a space of points, each trained once, over MPI ranks, a local pool or
scheduler job arrays, with optional successive halving and a report page.

``hpcdl sweep-plan`` (:mod:`.plan`) checks a definition and writes it; ``hpcdl sweep``
(:mod:`.run`) runs trials; ``hpcdl sweep-report`` (:mod:`.report`) checks that every point has a
result and renders the page.
"""
